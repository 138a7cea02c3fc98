package settle

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/protocol"
)

const chain = "settle-test"

// fixture is a chain with the market installed: keys 0..nVals-1 are the
// validators (equal stakes), the next key the renter, the rest providers
// (provider-staked in block 1).
type fixture struct {
	t       testing.TB
	keys    *ledger.Keyring
	st      *ledger.State
	l       *ledger.Ledger
	p       Params
	vals    []string
	renter  string
	provs   []string
	pending map[string]uint64 // txs built per sender since the last block
	fees    map[string]uint64 // tx fees paid per sender
}

const (
	fee       = 1
	startBal  = 1_000_000
	provStake = 5_000
	valStake  = 10_000
	slashAmt  = 700
	challenge = 6
	checkBlks = 8  // blocks validators have to attest
	deadlineS = 10 // spec deadline seconds = blocks at 1 s blocks
)

// newFixture is a chain with one validator and nProvs providers.
func newFixture(t testing.TB, nProvs int) *fixture { return newFixtureVals(t, 1, nProvs) }

func newFixtureVals(t testing.TB, nVals, nProvs int) *fixture {
	t.Helper()
	keys := ledger.NewKeyring(rand.New(rand.NewPCG(7, 9)), nVals+1+nProvs)
	g := keys.TestGenesis(chain, nVals, startBal, valStake)
	st, err := ledger.InitialState(g)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{ChallengeWindow: challenge, BlockTimeMs: 1000, SlashAmount: slashAmt, ExpiryGraceMs: 2_000, CheckBlocks: checkBlks}
	opts, err := Options(p)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, keys: keys, st: st, l: l, p: p, vals: keys.IDs[:nVals], renter: keys.IDs[nVals], provs: keys.IDs[nVals+1:],
		pending: map[string]uint64{}, fees: map[string]uint64{}}
	var txs [][]byte
	for _, pr := range f.provs {
		txs = append(txs, f.tx(pr, ledger.TxStake, ledger.Stake{Role: ledger.RoleProvider, Amount: provStake}))
	}
	f.mustOK(f.block(txs...))
	clear(f.fees) // tests count fees from here on
	return f
}

// tx signs a tx from id with its next nonce.
func (f *fixture) tx(id string, typ ledger.TxType, body any) []byte {
	f.t.Helper()
	a, _ := f.st.Account(id)
	tx, err := ledger.NewTx(typ, a.Nonce+f.pending[id], fee, body)
	if err != nil {
		f.t.Fatal(err)
	}
	raw, err := f.keys.Sign(chain, id, tx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.pending[id]++
	f.fees[id] += fee
	return raw
}

// block proposes and applies a block of txs at time height*1000 ms,
// re-applies it as a follower would (same state hash), and checks the
// supply invariant.
func (f *fixture) block(txs ...[]byte) []ledger.Event { return f.blockEv(nil, txs...) }

// blockEv is block with evidence of validator misbehaviour.
func (f *fixture) blockEv(ev []ledger.Evidence, txs ...[]byte) []ledger.Event {
	f.t.Helper()
	vals, err := ledger.ValidatorSet(f.st, f.st.Height()+1)
	if err != nil {
		f.t.Fatal(err)
	}
	hdr := ledger.Header{ChainID: chain, Proposer: vals[0].ID, Time: int64(f.st.Height()+1) * 1000}
	b, next, _, skipped, err := f.l.Propose(f.st, hdr, txs, ev)
	if err != nil || len(skipped) != 0 || len(b.Evidence) != len(ev) {
		f.t.Fatalf("Propose: %v, skipped %v", err, skipped)
	}
	again, evs, err := f.l.Apply(f.st, b)
	if err != nil {
		f.t.Fatalf("Apply: %v", err)
	}
	if again.Hash() != next.Hash() {
		f.t.Fatal("Apply and Propose disagree on the state")
	}
	if err := ledger.CheckInvariant(again); err != nil {
		f.t.Fatalf("height %d: %v", again.Height(), err)
	}
	for _, e := range evs {
		if e.Kind == ledger.EventHookFailed {
			f.t.Fatalf("hook failed: %s", e.Error)
		}
	}
	f.st = again
	clear(f.pending)
	return evs
}

func (f *fixture) mustOK(evs []ledger.Event) []ledger.Event {
	f.t.Helper()
	for _, e := range evs {
		if e.Kind == ledger.EventTxFailed {
			f.t.Fatalf("tx %s failed: %s", e.TxType, e.Error)
		}
	}
	return evs
}

func (f *fixture) idle(n int) {
	for range n {
		f.block()
	}
}

func (f *fixture) balance(id string) uint64 { a, _ := f.st.Account(id); return a.Balance }

func spec(segs uint32, maxPrice uint64, policy string) market.JobSpec {
	return market.JobSpec{Runtime: "echo", Require: market.Requirements{Executor: "wasm"}, Segments: segs, MaxPrice: maxPrice, Deadline: deadlineS, Verify: policy}
}

func jobID(t testing.TB, s market.JobSpec) protocol.CID {
	t.Helper()
	id, err := s.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// bid seals a bid of provider for job.
func (f *fixture) bid(provider string, job protocol.CID, price uint64, capacity uint32, nonce uint64) []byte {
	f.t.Helper()
	return f.sealBid(provider, chain, protocol.KindBid, market.Bid{Job: job, Provider: provider, Price: price, Capacity: capacity, Expiry: 1_000_000, Nonce: nonce})
}

func (f *fixture) sealBid(signer, chainID string, kind protocol.Kind, b market.Bid) []byte {
	f.t.Helper()
	raw, _, err := protocol.Seal(f.keys.Key(signer), chainID, kind, time.UnixMilli(0), b)
	if err != nil {
		f.t.Fatal(err)
	}
	return raw
}

func output(s string) protocol.CID { return protocol.NewCID(protocol.BlockCID([]byte(s))) }

func (f *fixture) job(id protocol.CID) *Job {
	f.t.Helper()
	j, ok, err := JobOf(f.st, id)
	if err != nil || !ok {
		f.t.Fatalf("job %s: ok=%v err=%v", id, ok, err)
	}
	return j
}

func (f *fixture) rep(p string) Reputation {
	f.t.Helper()
	r, err := ReputationOf(f.st, p)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func kinds(evs []ledger.Event, k ledger.EventKind) []ledger.Event {
	var out []ledger.Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// snapshot is everything a failed market tx must leave alone: balances
// (but the validators', which earn fees and rewards), bonds, the job's
// escrow, every market record of the known jobs and accounts, and the next
// heights' schedules.
func (f *fixture) snapshot(jobs ...protocol.CID) string {
	var b bytes.Buffer
	for _, id := range f.keys.IDs {
		if f.isVal(id) {
			fmt.Fprintf(&b, "val %s %v\n", id, f.st.Bond(id))
		} else {
			a, _ := f.st.Account(id)
			fmt.Fprintf(&b, "acct %s %d %v\n", id, a.Balance, f.st.Bond(id))
		}
		if r, ok := f.st.Ext(repKey(id)); ok {
			fmt.Fprintf(&b, "rep %s %x\n", id, r)
		}
		if r, ok := f.st.Ext(exitKey(id)); ok {
			fmt.Fprintf(&b, "exit %s %x\n", id, r)
		}
	}
	for _, j := range jobs {
		r, _ := f.st.Ext(jobKey(j.String()))
		fmt.Fprintf(&b, "job %s %d %x\n", j, f.st.Escrow(EscrowID(j)), r)
		for i := range uint32(16) {
			r, _ := f.st.Ext(segKey(j.String(), i))
			fmt.Fprintf(&b, "seg %d %x\n", i, r)
		}
	}
	for h := range uint64(200) {
		r, _ := f.st.Ext(dueKey(h))
		fmt.Fprintf(&b, "due %d %x\n", h, r)
	}
	return b.String()
}

func (f *fixture) isVal(id string) bool { return slices.Contains(f.vals, id) }

// expectFail runs raw (from sender) alone in a block and checks that it
// failed with want and changed nothing but the sender's fee.
func (f *fixture) expectFail(sender string, raw []byte, want error, jobs ...protocol.CID) {
	f.t.Helper()
	before := f.snapshot(jobs...)
	bal := f.balance(sender)
	evs := f.block(raw)
	failed := kinds(evs, ledger.EventTxFailed)
	if len(failed) != 1 {
		f.t.Fatalf("want 1 failed tx, got events %+v", evs)
	}
	if !strings.Contains(failed[0].Error, want.Error()) {
		f.t.Fatalf("failed with %q, want %q", failed[0].Error, want)
	}
	if f.isVal(sender) {
		// Its balance is not in the snapshot.
	} else if got := f.balance(sender); got != bal-fee {
		f.t.Fatalf("sender balance %d, want %d", got, bal-fee)
	}
	// Undo the fee in the comparison: only the sender's balance may differ.
	after := strings.Replace(f.snapshot(jobs...), fmt.Sprintf("acct %s %d ", sender, bal-fee), fmt.Sprintf("acct %s %d ", sender, bal), 1)
	if before != after {
		f.t.Fatalf("failed tx changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
