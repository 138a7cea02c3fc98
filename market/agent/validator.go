package agent

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// validator is the validator role's market duty: re-run disputed and
// spot-checked segments and attest the output on chain.
type validator struct {
	a *Agent

	mu   sync.Mutex // guards done
	done map[string]bool
}

func newValidator(a *Agent) *validator { return &validator{a: a, done: map[string]bool{}} }

func (v *validator) onEvent(e ledger.Event, st *ledger.State) {
	if e.Kind != settle.EventDisputed && e.Kind != settle.EventCheck {
		return
	}
	seg, err := strconv.ParseUint(e.Detail, 10, 32)
	if err != nil {
		return
	}
	// Only validators of the current set attest.
	if b := st.Bond(v.a.cfg.Self.String()); b.Validator == 0 || b.Jailed {
		return
	}
	key := e.Counterparty + "/" + e.Detail + "/" + strconv.FormatUint(e.Height, 10)
	v.mu.Lock()
	if v.done[key] {
		v.mu.Unlock()
		return
	}
	v.done[key] = true
	v.mu.Unlock()
	id, err := protocol.ParseCID(e.Counterparty)
	if err != nil {
		return
	}
	job, ok, err := settle.JobOf(st, id)
	if err != nil || !ok || int(seg) >= len(job.Segments) {
		return
	}
	leases := job.Segments[seg].Leases
	v.a.loop(func() { v.check(id, job, uint32(seg), leases) })
}

func (v *validator) check(id protocol.CID, job *settle.Job, seg uint32, leases []settle.Lease) {
	a := v.a
	deadline := time.Duration(job.Spec.Deadline) * time.Second
	ctx, cancel := context.WithTimeout(a.ctx, deadline+time.Minute)
	defer cancel()
	// The renter holds the inputs; the providers hold them too by now.
	var holders []peer.ID
	for _, l := range leases {
		if p, err := peer.Decode(l.Provider); err == nil {
			holders = append(holders, p)
		}
	}
	res, err := runSegment(ctx, a, job, id, seg, deadline, holders, func() {}, func() {})
	if err != nil {
		a.log.Warn("market: re-run for attestation failed", "job", id, "segment", seg, "err", err)
		return
	}
	if _, err := a.submit(a.ctx, settle.TxAttest, settle.Attest{Job: id, Segment: seg, Output: protocol.NewCID(res.Output)}); err != nil {
		a.log.Warn("market: attest", "job", id, "segment", seg, "err", err)
		return
	}
	a.log.Info("market: attested", "job", id, "segment", seg, "output", res.Output)
}
