package agent

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// leaseKey names one lease of this provider.
type leaseKey struct {
	Job     string `json:"job"`
	Segment uint32 `json:"segment"`
}

// leaseRun is the provider's local record of a lease.
type leaseRun struct {
	key      leaseKey
	price    uint64
	deadline uint64
	status   string // fetching, queued, running, submitted, failed: ...
	output   string
}

// provider is the provider role: offers, bids, lease execution.
type provider struct {
	a      *Agent
	cfg    *ProviderConfig
	engine market.BidEngine
	slots  chan struct{} // one token per segment running
	saveMu sync.Mutex    // serialises save (one writer of leases.json)

	mu        sync.Mutex // guards the fields below
	seq       uint64
	nonce     uint64
	exiting   bool
	leases    map[leaseKey]*leaseRun
	active    int // leases not yet finished (queued or running)
	running   int
	earned    uint64
	last      *market.Offer
	nextOffer time.Time
	step      time.Duration // re-announce back-off after start
	dirty     bool          // status changed: announce at the next tick
}

func newProvider(a *Agent, cfg *ProviderConfig) *provider {
	if cfg.Slots == 0 {
		cfg.Slots = 1
	}
	if cfg.OfferTTL <= 0 {
		cfg.OfferTTL = 30 * time.Second
	}
	if cfg.Reannounce <= 0 {
		cfg.Reannounce = 10 * time.Second
	}
	now := a.clk.Now()
	return &provider{
		a:      a,
		cfg:    cfg,
		engine: market.BidEngine{Provider: a.cfg.Self.String(), Strategy: cfg.Strategy},
		slots:  make(chan struct{}, cfg.Slots),
		leases: map[leaseKey]*leaseRun{},
		// Nonces start at the clock so a restarted provider never reuses one.
		nonce: uint64(now.UnixMilli()),
		seq:   uint64(now.UnixMilli()),
		step:  500 * time.Millisecond,
	}
}

func (p *provider) start() {
	p.resume()
	p.announce()
}

// tick re-announces the offer: quickly after start (0.5, 1, 2, 4 s ... so
// peers that join late see it), then every Reannounce, and at once when
// the status changed.
func (p *provider) tick(now time.Time) {
	p.mu.Lock()
	due := p.dirty || !now.Before(p.nextOffer)
	p.mu.Unlock()
	if due {
		p.announce()
	}
}

func (p *provider) inventory() market.Inventory {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inventoryLocked()
}

func (p *provider) inventoryLocked() market.Inventory {
	free := uint32(0)
	if p.active < int(p.cfg.Slots) {
		free = p.cfg.Slots - uint32(p.active)
	}
	return market.Inventory{Hardware: p.cfg.Hardware, Prices: p.cfg.Prices, FreeSlots: free, TotalSlots: p.cfg.Slots, Exiting: p.exiting}
}

func (p *provider) status(inv market.Inventory) market.Status {
	switch {
	case inv.Exiting:
		return market.StatusDisconnected
	case inv.FreeSlots == 0:
		return market.StatusReserved
	case inv.FreeSlots < inv.TotalSlots:
		return market.StatusSharing
	}
	return market.StatusIdle
}

// announce gossips a fresh offer.
func (p *provider) announce() {
	a := p.a
	now := a.clk.Now()
	st := a.state()
	p.mu.Lock()
	inv := p.inventoryLocked()
	p.seq++
	o := &market.Offer{
		Provider:  a.cfg.Self.String(),
		Seq:       p.seq,
		IssuedAt:  now.UnixMilli(),
		TTL:       uint32(p.cfg.OfferTTL / time.Second),
		Status:    p.status(inv),
		GPUs:      p.cfg.Hardware.GPUs,
		CPUCores:  p.cfg.CPUs,
		Memory:    p.cfg.Memory,
		Executors: p.cfg.Hardware.Executors,
		Region:    p.cfg.Hardware.Region,
		Prices:    p.cfg.Prices,
		Stake:     st.Bond(a.cfg.Self.String()).Provider,
		FreeSlots: inv.FreeSlots,
	}
	p.last = o
	p.dirty = false
	if p.step < p.cfg.Reannounce {
		p.nextOffer = now.Add(p.step)
		p.step *= 2
	} else {
		p.nextOffer = now.Add(p.cfg.Reannounce)
	}
	p.mu.Unlock()
	if err := a.offers.Publish(a.ctx, protocol.KindOffer, o); err != nil && a.ctx.Err() == nil {
		a.log.Warn("market: publish offer", "err", err)
	}
}

// setInventory replaces what the provider offers (GPUs came or went) and
// announces it at once.
func (p *provider) setInventory(hw market.Hardware, cpus uint32, mem uint64, prices []market.Price) {
	p.mu.Lock()
	p.cfg.Hardware, p.cfg.CPUs, p.cfg.Memory, p.cfg.Prices = hw, cpus, mem, prices
	p.mu.Unlock()
	p.markDirty()
}

func (p *provider) markDirty() {
	p.mu.Lock()
	p.dirty = true
	p.mu.Unlock()
	select {
	case p.a.wake <- struct{}{}:
	default:
	}
}

// onJob answers a job request with a bid or a reason not to bid.
func (p *provider) onJob(req *market.JobRequest) {
	a := p.a
	inv := p.inventory()
	p.mu.Lock()
	p.nonce++
	nonce := p.nonce
	p.mu.Unlock()
	bid, no := p.engine.Decide(&inv, req, a.clk.Now(), nonce)
	if no != nil {
		a.log.Info("market: no bid", "job", req.Job, "reason", no.String())
		if err := a.bids.Publish(a.ctx, market.KindNoBid, no); err != nil && a.ctx.Err() == nil {
			a.log.Warn("market: publish no-bid", "err", err)
		}
		return
	}
	a.log.Info("market: bid", "job", req.Job, "price", bid.Price, "capacity", bid.Capacity)
	if err := a.bids.Publish(a.ctx, protocol.KindBid, bid); err != nil && a.ctx.Err() == nil {
		a.log.Warn("market: publish bid", "err", err)
		return
	}
	// Warm up while the auction runs: fetch and compile the program so a
	// won lease starts at once.
	if req.Spec.Program.Defined() {
		if renter, err := peer.Decode(req.Renter); err == nil {
			a.loop(func() {
				ctx, cancel := context.WithTimeout(a.ctx, 2*time.Minute)
				defer cancel()
				if _, err := a.program(ctx, req.Spec.Program.Cid, []peer.ID{renter}); err != nil && a.ctx.Err() == nil {
					a.log.Warn("market: program warm-up", "program", req.Spec.Program, "err", err)
				}
			})
		}
	}
}

// onEvent starts the leases this provider wins and follows its payments.
func (p *provider) onEvent(e ledger.Event, st *ledger.State) {
	self := p.a.cfg.Self.String()
	if e.Account != self {
		return
	}
	switch e.Kind {
	case settle.EventLease:
		seg, err := strconv.ParseUint(e.Detail, 10, 32)
		if err != nil {
			return
		}
		p.startLease(leaseKey{e.Counterparty, uint32(seg)}, e.Amount, e.Release, st)
	case settle.EventPaid:
		p.mu.Lock()
		p.earned += e.Amount
		p.mu.Unlock()
	case settle.EventExit:
		p.mu.Lock()
		p.exiting = true
		p.mu.Unlock()
		p.markDirty()
	}
}

func (p *provider) startLease(k leaseKey, price, deadline uint64, st *ledger.State) {
	a := p.a
	id, err := protocol.ParseCID(k.Job)
	if err != nil {
		return
	}
	job, ok, err := settle.JobOf(st, id)
	if err != nil || !ok {
		a.log.Warn("market: lease for a job not on chain", "job", k.Job, "err", err)
		return
	}
	p.mu.Lock()
	// A (job, segment) comes back to the same provider when a segment is
	// reopened and re-awarded: a new deadline is a new lease.
	if old, dup := p.leases[k]; dup && old.deadline == deadline {
		p.mu.Unlock()
		return
	}
	lr := &leaseRun{key: k, price: price, deadline: deadline, status: "fetching"}
	p.leases[k] = lr
	p.active++
	p.mu.Unlock()
	p.save()
	p.markDirty()
	a.log.Info("market: lease won", "job", k.Job, "segment", k.Segment, "price", price, "deadline", deadline)
	a.publish("market.lease.started", LeaseView{Job: k.Job, Segment: k.Segment, Provider: a.cfg.Self.String(), Price: price, Deadline: deadline})
	a.loop(func() { p.runLease(lr, id, job) })
}

func (p *provider) setStatus(lr *leaseRun, s string) {
	p.mu.Lock()
	lr.status = s
	p.mu.Unlock()
}

// runLease fetches, runs and submits one segment.
func (p *provider) runLease(lr *leaseRun, id protocol.CID, job *settle.Job) {
	a := p.a
	defer func() {
		p.mu.Lock()
		p.active--
		p.mu.Unlock()
		p.save()
		p.markDirty()
	}()
	fail := func(err error) {
		if a.ctx.Err() != nil {
			// The node is stopping: the lease is not lost, it stays in
			// leases.json and resumes when the node starts again.
			p.setStatus(lr, "interrupted")
			a.log.Info("market: segment interrupted by shutdown; resumes after restart", "job", lr.key.Job, "segment", lr.key.Segment)
			return
		}
		p.setStatus(lr, "failed: "+err.Error())
		a.log.Warn("market: segment failed", "job", lr.key.Job, "segment", lr.key.Segment, "err", err)
	}
	deadline := time.Duration(job.Spec.Deadline) * time.Second
	ctx, cancel := context.WithTimeout(a.ctx, deadline)
	defer cancel()
	res, err := runSegment(ctx, a, job, id, lr.key.Segment, deadline, nil, func() {
		p.setStatus(lr, "queued")
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		p.running++
		lr.status = "running"
		p.mu.Unlock()
	}, func() {
		select {
		case <-p.slots:
		default:
		}
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	})
	if err != nil {
		fail(err)
		return
	}
	out := res.Output
	if p.cfg.BeforeSubmit != nil {
		p.cfg.BeforeSubmit(a.ctx, id, lr.key.Segment)
	}
	if p.cfg.Tamper != nil && p.cfg.Tamper(id, lr.key.Segment) {
		// A cheating provider: any other CID stands for a wrong output.
		out = protocol.BlockCID([]byte(fmt.Sprintf("wrong %s %d", lr.key.Job, lr.key.Segment)))
	}
	body := settle.SubmitResult{Job: id, Segment: lr.key.Segment, Output: protocol.NewCID(out), Receipt: res.Receipt}
	if _, err := a.submit(a.ctx, settle.TxSubmitResult, body); err != nil {
		fail(err)
		return
	}
	p.mu.Lock()
	lr.status = "submitted"
	lr.output = out.String()
	p.mu.Unlock()
	a.log.Info("market: result submitted", "job", lr.key.Job, "segment", lr.key.Segment, "output", out)
	a.publish("market.lease.submitted", LeaseView{Job: lr.key.Job, Segment: lr.key.Segment, Provider: a.cfg.Self.String(), Output: out.String()})
}

// runSegment fetches a segment's program and input from the renter (and
// the job's other holders found on the DHT), runs it and returns the
// output. acquire and release bracket the execution (slot accounting).
func runSegment(ctx context.Context, a *Agent, job *settle.Job, id protocol.CID, seg uint32, wall time.Duration, more []peer.ID, acquire, release func()) (SegmentResult, error) {
	var from []peer.ID
	if r, err := peer.Decode(job.Renter); err == nil && r != a.cfg.Self {
		from = append(from, r)
	}
	for _, p := range more {
		if p != a.cfg.Self {
			from = append(from, p)
		}
	}
	dir, err := os.MkdirTemp(a.cfg.WorkDir, "seg-")
	if err != nil {
		return SegmentResult{}, err
	}
	defer os.RemoveAll(dir)
	run := SegmentRun{Job: id, Segment: seg, Spec: &job.Spec, Seed: segmentSeed(id, seg), WallTime: wall}
	if job.Spec.Program.Defined() {
		if run.Program, err = a.program(ctx, job.Spec.Program.Cid, from); err != nil {
			return SegmentResult{}, err
		}
	}
	if int(seg) < len(job.Spec.Inputs) {
		in := job.Spec.Inputs[seg].Cid
		if err := a.cfg.Data.Fetch(ctx, in, from); err != nil {
			return SegmentResult{}, fmt.Errorf("fetch input: %w", err)
		}
		run.Input = filepath.Join(dir, "input")
		if err := a.cfg.Data.Export(ctx, in, run.Input); err != nil {
			return SegmentResult{}, fmt.Errorf("export input: %w", err)
		}
	}
	acquire()
	defer release()
	if err := ctx.Err(); err != nil {
		return SegmentResult{}, err
	}
	return a.cfg.Runner.Run(ctx, run)
}

// segmentSeed is the random seed every honest provider uses for a segment.
func segmentSeed(id protocol.CID, seg uint32) uint64 {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", id, seg))
	return binary.BigEndian.Uint64(h[:8])
}

// exit announces the provider's exit on chain.
func (p *provider) exit(ctx context.Context) (string, error) {
	h, err := p.a.submit(ctx, settle.TxExit, settle.Exit{})
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.exiting = true
	p.mu.Unlock()
	p.markDirty()
	return fmt.Sprintf("%x", h), nil
}

func (p *provider) view() ProviderView {
	p.mu.Lock()
	defer p.mu.Unlock()
	inv := p.inventoryLocked()
	v := ProviderView{Provider: p.a.cfg.Self.String(), TotalSlots: inv.TotalSlots, FreeSlots: inv.FreeSlots,
		Exiting: p.exiting, Running: p.running, Earned: p.earned}
	if p.last != nil {
		o := offerView(p.last, settle.Reputation{})
		v.Offer = &o
	}
	return v
}

func (p *provider) leaseViews() []LeaseView {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]LeaseView, 0, len(p.leases))
	for _, l := range p.leases {
		out = append(out, LeaseView{Job: l.key.Job, Segment: l.key.Segment, Provider: p.a.cfg.Self.String(),
			Price: l.price, Deadline: l.deadline, Output: l.output, Local: l.status})
	}
	slices.SortFunc(out, func(x, y LeaseView) int {
		if x.Job != y.Job {
			if x.Job < y.Job {
				return -1
			}
			return 1
		}
		return int(x.Segment) - int(y.Segment)
	})
	return out
}

// The provider keeps its unfinished leases in StateDir/leases.json, so a
// restarted provider resumes them (the chain says whether they are still
// its own and still open).
type savedLease struct {
	leaseKey
	Price    uint64 `json:"price"`
	Deadline uint64 `json:"deadline"`
}

func (p *provider) leaseFile() string {
	if p.a.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(p.a.cfg.StateDir, "leases.json")
}

func (p *provider) save() {
	path := p.leaseFile()
	if path == "" {
		return
	}
	p.saveMu.Lock() // one writer of the file (and of its temp file) at a time
	defer p.saveMu.Unlock()
	p.mu.Lock()
	var out []savedLease
	for _, l := range p.leases {
		if l.status != "submitted" && !isFailed(l.status) {
			out = append(out, savedLease{l.key, l.price, l.deadline})
		}
	}
	p.mu.Unlock()
	b, err := json.Marshal(out)
	if err == nil {
		err = writeFileAtomic(path, b)
	}
	if err != nil {
		p.a.log.Warn("market: save leases", "err", err)
	}
}

func isFailed(s string) bool { return len(s) >= 6 && s[:6] == "failed" }

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync() // the new content is on disk before it replaces the old
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// resume restarts the leases saved before a restart that the chain still
// shows as this provider's, leased and without its result.
func (p *provider) resume() {
	path := p.leaseFile()
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var saved []savedLease
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		p.a.log.Warn("market: saved leases unreadable; not resumed", "path", path, "err", err)
		return
	}
	st := p.a.state()
	self := p.a.cfg.Self.String()
	for _, s := range saved {
		id, err := protocol.ParseCID(s.Job)
		if err != nil {
			continue
		}
		job, ok, err := settle.JobOf(st, id)
		if err != nil || !ok || int(s.Segment) >= len(job.Segments) {
			continue
		}
		seg := job.Segments[s.Segment]
		if seg.State != settle.SegLeased {
			continue
		}
		for _, l := range seg.Leases {
			if l.Provider == self && !l.Output.Defined() && st.Height() <= l.Deadline {
				p.a.log.Info("market: resuming lease after restart", "job", s.Job, "segment", s.Segment)
				p.startLease(s.leaseKey, s.Price, s.Deadline, st)
			}
		}
	}
}
