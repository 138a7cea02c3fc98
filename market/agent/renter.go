package agent

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// round is one auction round of a job.
type round struct {
	n        int
	req      *market.JobRequest
	segments []uint32
	closeAt  time.Time
	closed   bool
	bids     *market.BidSet
	envs     map[string][]byte // provider -> signed envelope of its latest bid
	answered map[string]bool
	awarded  []uint32
	err      string
}

// rjob is the renter's record of one of its jobs.
type rjob struct {
	id      protocol.CID
	spec    market.JobSpec
	deposit uint64
	window  time.Duration

	rounds    []*round
	cur       *round    // the open round, if any
	awarding  bool      // an award_lease is on its way
	nextRound time.Time // zero: none scheduled
	idle      int       // rounds in a row without an award

	leasePrice map[string]uint64 // provider/segment -> price
	paid       map[string]uint64
	slashed    map[string]uint64
	fees       uint64
	refund     uint64
	missed     int
	wrong      int
	events     []JobEvent
	nobids     map[string]NoBidView
	outputs    map[string]string // segment -> the verified output CID
	done       bool
	cancelled  bool
}

// txWait is a caller waiting for its tx's outcome.
type txWait struct {
	ch chan txOutcome
}

type txOutcome struct {
	height uint64
	err    error
}

// renter is the renter role.
type renter struct {
	a *Agent

	mu      sync.Mutex // guards jobs and waits
	jobs    map[string]*rjob
	order   []string // job IDs in submission order
	waits   map[string]*txWait
	opening map[string]bool // jobs whose open_job is on its way
}

func newRenter(a *Agent) *renter {
	return &renter{a: a, jobs: map[string]*rjob{}, waits: map[string]*txWait{}, opening: map[string]bool{}}
}

// submitTx sends a tx and waits until a committed block executes it.
func (r *renter) submitTx(ctx context.Context, typ ledger.TxType, body any) (string, uint64, error) {
	return submitAndWait(ctx, r.a, &r.mu, r.waits, typ, body)
}

func submitAndWait(ctx context.Context, a *Agent, mu *sync.Mutex, waits map[string]*txWait, typ ledger.TxType, body any) (string, uint64, error) {
	// Register before submitting: the commit may come before Submit returns.
	w := &txWait{ch: make(chan txOutcome, 1)}
	a.submitMu.Lock()
	h, _, err := a.cfg.Chain.SubmitOwn(ctx, typ, 0, body)
	id := hex.EncodeToString(h[:])
	if err == nil {
		mu.Lock()
		waits[id] = w
		mu.Unlock()
	}
	a.submitMu.Unlock()
	if err != nil {
		return "", 0, fmt.Errorf("agent: submit %s: %w", typ, err)
	}
	// The outcome may already be in a block processed before the wait was
	// registered: the chain's own tx index answers that.
	defer func() {
		mu.Lock()
		delete(waits, id)
		mu.Unlock()
	}()
	select {
	case o := <-w.ch:
		return id, o.height, o.err
	case <-ctx.Done():
		return id, 0, fmt.Errorf("agent: waiting for %s tx %s: %w", typ, id[:12], ctx.Err())
	}
}

func resolveWait(mu *sync.Mutex, waits map[string]*txWait, e ledger.Event) {
	if e.Kind != ledger.EventTx && e.Kind != ledger.EventTxFailed {
		return
	}
	mu.Lock()
	w := waits[e.Tx]
	mu.Unlock()
	if w == nil {
		return
	}
	o := txOutcome{height: e.Height}
	if e.Kind == ledger.EventTxFailed {
		o.err = fmt.Errorf("%w: %s", ErrTxFailed, e.Error)
	}
	select {
	case w.ch <- o:
	default:
	}
}

// Submit opens a job: checks the request, sends market.open_job with the
// deposit, waits for its block, and starts the first auction round.
func (r *renter) submit(ctx context.Context, in SubmitJobRequest) (SubmitJobResponse, error) {
	spec, window, err := r.specOf(in)
	if err != nil {
		return SubmitJobResponse{}, err
	}
	id, err := spec.ID()
	if err != nil {
		return SubmitJobResponse{}, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	pol, _ := spec.Policy()
	deposit := spec.MaxPrice * uint64(spec.Segments) * uint64(pol.Replicas())
	if spec.MaxPrice != 0 && deposit/spec.MaxPrice != uint64(spec.Segments)*uint64(pol.Replicas()) {
		return SubmitJobResponse{}, fmt.Errorf("%w: deposit overflows", ErrBadJob)
	}
	j := &rjob{id: id, spec: *spec, deposit: deposit, window: window,
		leasePrice: map[string]uint64{}, paid: map[string]uint64{}, slashed: map[string]uint64{}, nobids: map[string]NoBidView{},
		outputs: map[string]string{}}
	key := id.String()
	r.mu.Lock()
	if _, ok := r.jobs[key]; ok || r.opening[key] {
		r.mu.Unlock()
		return SubmitJobResponse{}, fmt.Errorf("%w: job %s already submitted (change the salt to run it again)", ErrBadJob, key)
	}
	r.opening[key] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.opening, key)
		r.mu.Unlock()
	}()
	tx, height, err := r.submitTx(ctx, settle.TxOpenJob, settle.OpenJob{Spec: *spec, Deposit: deposit})
	if err != nil {
		return SubmitJobResponse{}, err
	}
	r.mu.Lock()
	r.jobs[key] = j
	r.order = append(r.order, key)
	r.mu.Unlock()
	r.a.log.Info("market: job opened", "job", key, "segments", spec.Segments, "deposit", deposit, "height", height)
	r.a.publish("market.job.opened", map[string]any{"job": key, "deposit": deposit, "height": height})
	r.startRound(j, r.a.clk.Now())
	return SubmitJobResponse{Job: key, Deposit: deposit, Tx: tx, Height: height}, nil
}

func (r *renter) specOf(in SubmitJobRequest) (*market.JobSpec, time.Duration, error) {
	bad := func(format string, args ...any) (*market.JobSpec, time.Duration, error) {
		return nil, 0, fmt.Errorf("%w: %s", ErrBadJob, fmt.Sprintf(format, args...))
	}
	s := &market.JobSpec{Runtime: in.Runtime, Segments: in.Segments, MaxPrice: in.MaxPrice, Deadline: in.Deadline,
		Verify: in.Verify, Salt: in.Salt}
	if in.Program != "" {
		c, err := protocol.ParseCID(in.Program)
		if err != nil {
			return bad("program: %v", err)
		}
		s.Program = c
	}
	for i, x := range in.Inputs {
		c, err := protocol.ParseCID(x)
		if err != nil {
			return bad("input %d: %v", i, err)
		}
		s.Inputs = append(s.Inputs, c)
	}
	if s.Deadline == 0 {
		s.Deadline = 60
	}
	if s.Verify == "" {
		s.Verify = "replicate:1"
	}
	pol, err := market.ParsePolicy(s.Verify)
	if err != nil {
		return bad("%v", err)
	}
	s.Verify = pol.String()
	exe := in.Executor
	if exe == "" {
		exe = "wasm"
		if in.Runtime != "" {
			exe = "process"
		}
	}
	s.Require = market.Requirements{GPUModels: slices.Clone(in.GPUModels), MinVRAM: in.MinVRAM, GPUCount: in.GPUCount, Executor: exe, Region: in.Region}
	slices.Sort(s.Require.GPUModels)
	s.Require.GPUModels = slices.Compact(s.Require.GPUModels)
	if err := s.Check(); err != nil {
		return bad("%v", err)
	}
	window := r.a.cfg.AuctionWindow
	if in.AuctionMs > 0 {
		window = time.Duration(in.AuctionMs) * time.Millisecond
	}
	if window > market.MaxAuctionWindow {
		return bad("auction of %s longer than %s", window, market.MaxAuctionWindow)
	}
	return s, window, nil
}

// openSegments lists the job's segments that are open on chain.
func openSegments(st *ledger.State, id protocol.CID) ([]uint32, bool) {
	job, ok, err := settle.JobOf(st, id)
	if err != nil || !ok || job.Cancelled {
		return nil, false
	}
	var out []uint32
	for i, s := range job.Segments {
		if s.State == settle.SegOpen {
			out = append(out, uint32(i))
		}
	}
	return out, true
}

// startRound announces a new auction round over the job's open segments.
func (r *renter) startRound(j *rjob, now time.Time) {
	a := r.a
	segs, ok := openSegments(a.state(), j.id)
	if !ok || len(segs) == 0 {
		r.mu.Lock()
		j.nextRound = time.Time{}
		if !ok && !j.done && !j.cancelled {
			// Not in this node's state yet: look again shortly.
			j.nextRound = now.Add(200 * time.Millisecond)
		}
		r.mu.Unlock()
		return
	}
	req := &market.JobRequest{Job: j.id, Spec: j.spec, Renter: a.cfg.Self.String(), CloseAt: now.Add(j.window).UnixMilli()}
	rd := &round{req: req, segments: segs, closeAt: time.UnixMilli(req.CloseAt), bids: market.NewBidSet(j.id),
		envs: map[string][]byte{}, answered: map[string]bool{}}
	r.mu.Lock()
	rd.n = len(j.rounds) + 1
	j.rounds = append(j.rounds, rd)
	j.cur = rd
	j.nextRound = time.Time{}
	r.mu.Unlock()
	a.rememberRequest(req)
	a.log.Info("market: auction round", "job", j.id, "round", rd.n, "segments", len(segs), "close_at", rd.closeAt)
	a.publish("market.auction.started", map[string]any{"job": j.id.String(), "round": rd.n, "segments": len(segs)})
	if err := a.jobs.Publish(a.ctx, protocol.KindJob, req); err != nil && a.ctx.Err() == nil {
		a.log.Warn("market: publish job request", "err", err)
	}
}

func (r *renter) onBid(b *market.Bid, env []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[b.Job.String()]
	if j == nil || j.cur == nil || j.cur.closed {
		return
	}
	if j.cur.bids.AddBid(*b) {
		j.cur.envs[b.Provider] = env
	}
	j.cur.answered[b.Provider] = true
	delete(j.nobids, b.Provider)
}

func (r *renter) onNoBid(n *market.NoBid) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[n.Job.String()]
	if j == nil {
		return
	}
	j.nobids[n.Provider] = NoBidView{Provider: n.Provider, Reason: n.Reason.String(), Detail: n.Detail}
	if j.cur == nil || j.cur.closed {
		return
	}
	j.cur.bids.AddNoBid(*n)
	j.cur.answered[n.Provider] = true
}

// tick closes rounds that are due (at CloseAt, or as soon as every
// provider in the order book that could serve the job has answered) and
// starts the rounds that are scheduled.
func (r *renter) tick(now time.Time) {
	r.mu.Lock()
	var closeJobs, startJobs []*rjob
	for _, k := range r.order {
		j := r.jobs[k]
		if j.done || j.cancelled {
			continue
		}
		if j.cur != nil && !j.cur.closed && !j.awarding {
			if !now.Before(j.cur.closeAt) || r.allAnsweredLocked(j, now) {
				j.cur.closed = true
				j.awarding = true
				closeJobs = append(closeJobs, j)
			}
		}
		if (j.cur == nil || j.cur.closed) && !j.awarding && !j.nextRound.IsZero() && !now.Before(j.nextRound) {
			startJobs = append(startJobs, j)
		}
	}
	r.mu.Unlock()
	for _, j := range closeJobs {
		r.a.loop(func() { r.award(j) })
	}
	for _, j := range startJobs {
		r.startRound(j, now)
	}
}

func (r *renter) allAnsweredLocked(j *rjob, now time.Time) bool {
	cands := r.a.book.Match(&j.spec.Require, now)
	if len(cands) == 0 {
		return false
	}
	for _, o := range cands {
		if !j.cur.answered[o.Provider] {
			return false
		}
	}
	return true
}

// award closes the job's current round: the local award picks the winning
// bids, and market.award_lease carries them to the chain, which awards
// again by the same rule.
func (r *renter) award(j *rjob) {
	a := r.a
	r.mu.Lock()
	rd := j.cur
	bids := rd.bids.Bids()
	r.mu.Unlock()
	finish := func(awarded []uint32, errMsg string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		j.awarding = false
		rd.awarded = awarded
		rd.err = errMsg
		if len(awarded) == 0 {
			j.idle++
		} else {
			j.idle = 0
		}
		if j.idle >= a.cfg.MaxIdleRounds {
			a.log.Warn("market: no award in a row; stop auctioning (cancel the job or submit again)", "job", j.id, "rounds", j.idle)
			return
		}
		// Segments left over (no bid, too little capacity) go to a new round.
		if len(awarded) < len(rd.segments) {
			j.nextRound = a.clk.Now().Add(a.cfg.RetryAfter)
		}
	}
	if len(bids) == 0 {
		finish(nil, "no bids")
		return
	}
	st := a.state()
	cands := make([]market.Candidate, 0, len(bids))
	for _, b := range bids {
		rep, _ := settle.ReputationOf(st, b.Provider)
		cands = append(cands, market.Candidate{Bid: b, Reputation: rep.Score()})
	}
	now := a.clk.Now()
	res, err := market.Award(&market.AwardRequest{Job: rd.req, Now: now, Segments: rd.segments, Bids: cands})
	if err != nil || len(res.Awarded) == 0 {
		msg := "no eligible bid"
		if err != nil {
			msg = err.Error()
		}
		finish(nil, msg)
		return
	}
	var envs [][]byte
	r.mu.Lock()
	for _, w := range res.Winners {
		if env := rd.envs[w.Provider]; env != nil && len(envs) < settle.MaxAwardBids {
			envs = append(envs, env)
		}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
	defer cancel()
	_, height, err := r.submitTx(ctx, settle.TxAwardLease, settle.AwardLease{Job: j.id, Bids: envs, Segments: res.Awarded})
	if err != nil {
		a.log.Warn("market: award failed", "job", j.id, "round", rd.n, "err", err)
		finish(nil, err.Error())
		return
	}
	a.prices.RecordAward(&j.spec, res)
	a.log.Info("market: awarded", "job", j.id, "round", rd.n, "segments", len(res.Awarded), "winners", len(res.Winners), "height", height)
	a.publish("market.auction.awarded", map[string]any{"job": j.id.String(), "round": rd.n, "segments": res.Awarded, "height": height})
	finish(res.Awarded, "")
}

// onEvent follows the chain events of the renter's jobs.
func (r *renter) onEvent(e ledger.Event, st *ledger.State) {
	resolveWait(&r.mu, r.waits, e)
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[e.Counterparty]
	if j == nil {
		return
	}
	j.events = append(j.events, JobEvent{Height: e.Height, Kind: string(e.Kind), Account: e.Account, Amount: e.Amount, Segment: e.Detail})
	reauction := false
	switch e.Kind {
	case settle.EventLease:
		j.leasePrice[e.Account+"/"+e.Detail] = e.Amount
	case settle.EventVerified, settle.EventResolved:
		// The job record goes when the job closes: keep the output now.
		if i, err := strconv.ParseUint(e.Detail, 10, 32); err == nil && st != nil {
			if job, ok, err := settle.JobOf(st, j.id); err == nil && ok && int(i) < len(job.Segments) {
				if out := agreedOutput(job.Segments[i].Leases); out != "" {
					j.outputs[e.Detail] = out
				}
			}
		}
	case settle.EventPaid:
		j.paid[e.Account] += e.Amount
		if p, ok := j.leasePrice[e.Account+"/"+e.Detail]; ok && p >= e.Amount {
			j.fees += p - e.Amount
		}
	case settle.EventMissed:
		j.missed++
		if e.Amount > 0 {
			j.slashed[e.Account] += e.Amount
		}
		reauction = true
	case settle.EventWrong:
		j.wrong++
		if e.Amount > 0 {
			j.slashed[e.Account] += e.Amount
		}
	case settle.EventReopened:
		reauction = true
	case settle.EventCancelled:
		j.refund += e.Amount
		j.cancelled = true
	case settle.EventJobClosed:
		j.refund += e.Amount
		j.done = true
		r.a.log.Info("market: job closed", "job", e.Counterparty, "refund", e.Amount)
	}
	if reauction && !j.cancelled && j.nextRound.IsZero() {
		// Segments came back: a fresh round (new bids, new nonces) soon,
		// once the rest of this block's events are in.
		j.nextRound = r.a.clk.Now().Add(100 * time.Millisecond)
		j.idle = 0
	}
}

// cancel cancels a job.
func (r *renter) cancel(ctx context.Context, id protocol.CID) (TxResponse, error) {
	r.mu.Lock()
	j := r.jobs[id.String()]
	r.mu.Unlock()
	if j == nil {
		return TxResponse{}, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	tx, height, err := r.submitTx(ctx, settle.TxCancelJob, settle.CancelJob{Job: id})
	if err != nil {
		return TxResponse{}, err
	}
	return TxResponse{Tx: tx, Height: height}, nil
}

// fill adds the renter's view of job id to v; false if it is not its job.
func (r *renter) fill(v *JobView, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[id]
	if j == nil {
		return false
	}
	v.Auctions = len(j.rounds)
	v.Paid = maps(j.paid)
	v.Slashed = maps(j.slashed)
	v.Fees, v.Refund, v.Missed, v.Wrong = j.fees, j.refund, j.missed, j.wrong
	v.Events = slices.Clone(j.events)
	for _, n := range j.nobids {
		v.NoBids = append(v.NoBids, n)
	}
	slices.SortFunc(v.NoBids, func(x, y NoBidView) int { return cmpStr(x.Provider, y.Provider) })
	if v.Deposit == 0 {
		v.Deposit = j.deposit
	}
	if v.State == "unknown" {
		// Closed on chain, and this node has not yet processed the block.
		v.State = "open"
	}
	switch {
	case j.done && j.cancelled:
		v.State = "cancelled"
	case j.done:
		v.State = "done"
	case j.cancelled && v.State == "open":
		v.State = "cancelled"
	}
	if j.done && v.SegmentList == nil {
		// The chain deleted the job record at close; the events tell.
		v.Segments = j.spec.Segments
		v.Verify = j.spec.Verify
		v.MaxPrice = j.spec.MaxPrice
		v.SegmentList = segmentsFromEvents(j)
		for _, s := range v.SegmentList {
			if s.State == "paid" {
				v.SegmentsPaid++
				v.SegmentsDone++
			}
		}
	}
	return true
}

// segmentsFromEvents rebuilds a closed job's segments from its events.
func segmentsFromEvents(j *rjob) []SegmentView {
	segs := make([]SegmentView, j.spec.Segments)
	for i := range segs {
		segs[i] = SegmentView{Index: uint32(i), State: "cancelled"}
	}
	for _, e := range j.events {
		i, err := strconv.ParseUint(e.Segment, 10, 32)
		if err != nil || int(i) >= len(segs) {
			continue
		}
		switch ledger.EventKind(e.Kind) {
		case settle.EventPaid:
			segs[i].State = "paid"
			segs[i].Output = j.outputs[e.Segment]
			segs[i].Leases = append(segs[i].Leases, LeaseView{Job: j.id.String(), Segment: uint32(i), Provider: e.Account, Price: j.leasePrice[e.Account+"/"+e.Segment]})
		}
	}
	return segs
}

func (r *renter) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

func (r *renter) bidsView(id string) (BidsView, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[id]
	if j == nil {
		return BidsView{}, false
	}
	v := BidsView{Job: id}
	for _, rd := range j.rounds {
		rv := RoundView{Round: rd.n, Segments: rd.segments, CloseAt: rd.closeAt.UnixMilli(), Closed: rd.closed, Awarded: rd.awarded, Error: rd.err,
			Bids: []BidView{}, NoBids: []NoBidView{}}
		for _, b := range rd.bids.Bids() {
			rv.Bids = append(rv.Bids, BidView{Provider: b.Provider, Price: b.Price, Capacity: b.Capacity, Expiry: b.Expiry, Nonce: b.Nonce})
		}
		for _, n := range rd.bids.NoBids() {
			rv.NoBids = append(rv.NoBids, NoBidView{Provider: n.Provider, Reason: n.Reason.String(), Detail: n.Detail})
		}
		v.Rounds = append(v.Rounds, rv)
	}
	return v, true
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
