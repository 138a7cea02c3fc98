package settle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/protocol"
)

// Params are the market's chain parameters. Every node of a chain must use
// the same values (they belong in the genesis file with the ledger's
// Params); the market fee is the ledger's Params.MarketFee.
//
// In the genesis file they are the object "market" (docs/GENESIS.md),
// read by ParseParams.
type Params struct {
	// ChallengeWindow is how many blocks a verified segment waits before
	// its providers are paid (the time for a later challenge).
	ChallengeWindow uint64 `json:"challenge_window"`
	// BlockTimeMs is the expected block interval; it converts a spec's
	// per-segment deadline (seconds) into blocks, rounded up.
	BlockTimeMs uint64 `json:"block_time_ms"`
	// SlashAmount is the provider stake burned for each missed deadline
	// and each wrong result.
	SlashAmount uint64 `json:"slash_amount"`
	// ExpiryGraceMs is the tolerance of the bid expiry check: a carried bid
	// is accepted if its Expiry is after header time minus ExpiryGraceMs.
	// Header time is set by the proposer; the grace absorbs the delay
	// between the renter's award and the block that carries it.
	ExpiryGraceMs int64 `json:"expiry_grace_ms"`
	// CheckBlocks is how many blocks validators have to attest a disputed
	// or spot-checked segment; then a check lapses to verified and a
	// dispute to open (unpaid, nobody slashed).
	CheckBlocks uint64 `json:"check_blocks"`
}

// DefaultParams: a 10-block challenge window, 1-second blocks, 1000 units
// slashed per missed deadline or wrong result, 30 s of expiry grace
// (market.MaxClockSkew), 20 blocks for validators' attestations.
func DefaultParams() Params {
	return Params{ChallengeWindow: 10, BlockTimeMs: 1000, SlashAmount: 1000, ExpiryGraceMs: market.MaxClockSkew.Milliseconds(), CheckBlocks: 20}
}

// ErrBadParams is wrapped by Validate and ParseParams errors.
var ErrBadParams = errors.New("settle: bad market params")

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.BlockTimeMs == 0 {
		return fmt.Errorf("%w: block_time_ms must be > 0", ErrBadParams)
	}
	if p.ExpiryGraceMs < 0 {
		return fmt.Errorf("%w: expiry_grace_ms must be >= 0", ErrBadParams)
	}
	if p.CheckBlocks == 0 {
		return fmt.Errorf("%w: check_blocks must be > 0", ErrBadParams)
	}
	return nil
}

// ParseParams reads the genesis file's "market" object: absent or empty
// gives DefaultParams; each field given overrides its default; an unknown
// field is an error (a typo must not fall back to a default). The result
// is validated.
func ParseParams(raw json.RawMessage) (Params, error) {
	p := DefaultParams()
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return p, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Params{}, fmt.Errorf("%w: %w", ErrBadParams, err)
	}
	if dec.More() {
		return Params{}, fmt.Errorf("%w: trailing data after the market object", ErrBadParams)
	}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

// deadlineBlocks converts a spec deadline in seconds to blocks (at least 1).
func (p Params) deadlineBlocks(sec uint32) uint64 {
	ms := uint64(sec) * 1000
	return max(1, (ms+p.BlockTimeMs-1)/p.BlockTimeMs)
}

// Options returns the ledger options that install the market: its six tx
// handlers and its end-of-block hook "market".
func Options(p Params) ([]ledger.Option, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	m := &machine{p: p}
	return []ledger.Option{
		ledger.WithTxHandler(TxOpenJob, m.openJob),
		ledger.WithTxHandler(TxAwardLease, m.awardLease),
		ledger.WithTxHandler(TxSubmitResult, m.submitResult),
		ledger.WithTxHandler(TxCancelJob, m.cancelJob),
		ledger.WithTxHandler(TxAttest, m.attest),
		ledger.WithTxHandler(TxExit, m.exit),
		ledger.WithEndBlock("market", m.endBlock),
	}, nil
}

// machine holds the parameters; it has no state of its own.
type machine struct{ p Params }

// loadOwnOpenJob loads job id for a tx only its renter may send and only
// while the job is not cancelled (award_lease, cancel_job).
func loadOwnOpenJob(c *ledger.TxContext, id string) (*Job, error) {
	j, err := loadJob(c, id)
	if err != nil {
		return nil, err
	}
	if c.Sender != j.Renter {
		return nil, fmt.Errorf("%w: %s", ErrNotRenter, c.Sender)
	}
	if j.Cancelled {
		return nil, fmt.Errorf("%w: %s", ErrJobCancelled, id)
	}
	return j, nil
}

// loadJob loads the record of job id; ErrUnknownJob if there is none.
func loadJob(c *ledger.TxContext, id string) (*Job, error) {
	b, ok := c.Ext(jobKey(id))
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	return DecodeJob(b)
}

func saveJob(c *ledger.TxContext, id string, j *Job) error {
	b, err := protocol.Marshal(j)
	if err != nil {
		return err
	}
	c.SetExt(jobKey(id), b)
	return nil
}

// loadSeg reads segment i of job id; an absent record is an open segment.
func loadSeg(c *ledger.TxContext, id string, i uint32) (Segment, error) {
	var s Segment
	b, ok := c.Ext(segKey(id, i))
	if !ok {
		return s, nil
	}
	if err := protocol.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return s, nil
}

// saveSeg writes segment i of job id; an open segment has no record.
func saveSeg(c *ledger.TxContext, id string, i uint32, s Segment) error {
	if s.State == SegOpen && len(s.Leases) == 0 {
		c.DeleteExt(segKey(id, i))
		return nil
	}
	b, err := protocol.Marshal(s)
	if err != nil {
		return err
	}
	c.SetExt(segKey(id, i), b)
	return nil
}

func loadRep(c *ledger.TxContext, p string) (Reputation, error) {
	var r Reputation
	b, ok := c.Ext(repKey(p))
	if !ok {
		return r, nil
	}
	if err := protocol.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return r, nil
}

func updateRep(c *ledger.TxContext, p string, f func(*Reputation)) error {
	r, err := loadRep(c, p)
	if err != nil {
		return err
	}
	f(&r)
	b, err := protocol.Marshal(r)
	if err != nil {
		return err
	}
	c.SetExt(repKey(p), b)
	return nil
}

// schedule makes the end-block hook of height h examine segments of job.
func schedule(c *ledger.TxContext, h uint64, job string, segs ...uint32) error {
	var d due
	if b, ok := c.Ext(dueKey(h)); ok {
		if err := protocol.Unmarshal(b, &d); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
	}
	for _, s := range segs {
		d.Refs = append(d.Refs, dueRef{job, s})
	}
	b, err := protocol.Marshal(d)
	if err != nil {
		return err
	}
	c.SetExt(dueKey(h), b)
	return nil
}

func (m *machine) openJob(c *ledger.TxContext, body []byte) error {
	o, err := DecodeOpenJob(body)
	if err != nil {
		return err
	}
	cid, err := o.Spec.ID()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	id := cid.String()
	if _, ok := c.Ext(jobKey(id)); ok {
		return fmt.Errorf("%w: %s", ErrJobExists, id)
	}
	pol, _ := o.Spec.Policy() // Check parsed it
	// Spec.Check guarantees the product does not overflow.
	need := o.Spec.MaxPrice * uint64(o.Spec.Segments) * uint64(pol.Replicas())
	if o.Deposit < need {
		return fmt.Errorf("%w: %d < %d", ErrDeposit, o.Deposit, need)
	}
	if err := c.Lock(c.Sender, EscrowID(cid), o.Deposit); err != nil {
		return err
	}
	j := &Job{Renter: c.Sender, Spec: o.Spec, Opened: c.Height(), Deposit: o.Deposit, Unsettled: o.Spec.Segments}
	if err := saveJob(c, id, j); err != nil {
		return err
	}
	c.Emit(ledger.Event{Kind: EventJobOpened, Account: c.Sender, Counterparty: id, Amount: o.Deposit})
	return nil
}

// openBid authenticates and checks one carried bid against the job and the
// state.
func (m *machine) openBid(c *ledger.TxContext, raw []byte, cid protocol.CID, j *Job) (*market.Bid, error) {
	env, err := protocol.Open(raw, c.ChainID())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBid, err)
	}
	if env.Kind != protocol.KindBid {
		return nil, fmt.Errorf("%w: envelope kind %q", ErrBadBid, env.Kind)
	}
	author, err := env.AuthorID()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBid, err)
	}
	b, err := market.DecodeBid(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBid, err)
	}
	switch {
	case b.Provider != author.String():
		return nil, fmt.Errorf("%w: bid of %s signed by %s", ErrBadBid, b.Provider, author)
	case !b.Job.Equals(cid.Cid):
		return nil, fmt.Errorf("%w: bid names job %s", ErrBadBid, b.Job)
	case b.Price > j.Spec.MaxPrice:
		return nil, fmt.Errorf("%w: price %d above max %d", ErrBadBid, b.Price, j.Spec.MaxPrice)
	case b.Expiry <= c.Time()-m.p.ExpiryGraceMs:
		return nil, fmt.Errorf("%w: %s at %d, block time %d", ErrBidExpired, b.Provider, b.Expiry, c.Time())
	}
	if bond := c.Bond(b.Provider); bond.Provider < c.Params().MinProviderStake || bond.Jailed {
		return nil, fmt.Errorf("%w: %s", ErrNotStaked, b.Provider)
	}
	if _, exiting := c.Ext(exitKey(b.Provider)); exiting {
		return nil, fmt.Errorf("%w: %s", ErrExiting, b.Provider)
	}
	if _, used := j.usedIndex(b.Provider, b.Nonce); used {
		return nil, fmt.Errorf("%w: %s nonce %d", ErrBidUsed, b.Provider, b.Nonce)
	}
	return b, nil
}

func (m *machine) awardLease(c *ledger.TxContext, body []byte) error {
	a, err := DecodeAwardLease(body)
	if err != nil {
		return err
	}
	id := a.Job.String()
	j, err := loadOwnOpenJob(c, id)
	if err != nil {
		return err
	}
	segs := a.Segments
	if len(segs) == 0 {
		for i := range j.Spec.Segments {
			if _, taken := c.Ext(segKey(id, i)); !taken {
				segs = append(segs, i)
			}
		}
		if len(segs) == 0 {
			return fmt.Errorf("%w: no open segment", ErrSegmentTaken)
		}
	}
	for _, s := range segs {
		if s >= j.Spec.Segments {
			return fmt.Errorf("%w: %d of %d", ErrBadSegment, s, j.Spec.Segments)
		}
		if st, err := loadSeg(c, id, s); err != nil {
			return err
		} else if st.State != SegOpen {
			return fmt.Errorf("%w: segment %d is %s", ErrSegmentTaken, s, st.State)
		}
	}
	cands := make([]market.Candidate, 0, len(a.Bids))
	for _, raw := range a.Bids {
		b, err := m.openBid(c, raw, a.Job, j)
		if err != nil {
			return err
		}
		rep, err := loadRep(c, b.Provider)
		if err != nil {
			return err
		}
		cands = append(cands, market.Candidate{Bid: *b, Reputation: rep.Score()})
	}
	// The renter's own assignment is not trusted: the ledger decides.
	res, err := market.Award(&market.AwardRequest{
		Job:            &market.JobRequest{Job: a.Job, Spec: j.Spec, Renter: j.Renter},
		Now:            time.UnixMilli(c.Time() - m.p.ExpiryGraceMs),
		Segments:       segs,
		MaxPerProvider: a.MaxPerProvider,
		Bids:           cands,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBid, err)
	}
	if len(res.Awarded) == 0 {
		return fmt.Errorf("%w: capacity of %d bids", ErrNothingAwarded, len(cands))
	}
	esc := EscrowID(a.Job)
	if have, owed := c.EscrowBalance(esc), j.Owed; owed > have || res.Cost > have-owed {
		return fmt.Errorf("%w: escrow %d, owed %d, award costs %d", ErrEscrowShort, have, owed, res.Cost)
	}
	price := make(map[string]uint64, len(res.Winners))
	for _, w := range res.Winners {
		price[w.Provider] = w.Bid.Price
		i, _ := j.usedIndex(w.Provider, w.Bid.Nonce)
		j.Used = slices.Insert(j.Used, i, UsedBid{w.Provider, w.Bid.Nonce})
	}
	deadline := c.Height() + m.p.deadlineBlocks(j.Spec.Deadline)
	for i, s := range res.Awarded {
		seg := Segment{State: SegLeased, Leases: make([]Lease, 0, len(res.Assignees[i]))}
		for _, p := range res.Assignees[i] {
			seg.Leases = append(seg.Leases, Lease{Provider: p, Price: price[p], Deadline: deadline})
			c.Emit(ledger.Event{Kind: EventLease, Account: p, Counterparty: id, Amount: price[p], Release: deadline, Detail: strconv.FormatUint(uint64(s), 10)})
		}
		if err := saveSeg(c, id, s, seg); err != nil {
			return err
		}
	}
	j.Owed += res.Cost
	if err := schedule(c, deadline+1, id, res.Awarded...); err != nil {
		return err
	}
	return saveJob(c, id, j)
}

func (m *machine) submitResult(c *ledger.TxContext, body []byte) error {
	s, err := DecodeSubmitResult(body)
	if err != nil {
		return err
	}
	id := s.Job.String()
	j, err := loadJob(c, id)
	if err != nil {
		return err
	}
	if s.Segment >= j.Spec.Segments {
		return fmt.Errorf("%w: %d of %d", ErrBadSegment, s.Segment, j.Spec.Segments)
	}
	seg, err := loadSeg(c, id, s.Segment)
	if err != nil {
		return err
	}
	li := slices.IndexFunc(seg.Leases, func(l Lease) bool { return l.Provider == c.Sender })
	switch {
	case li < 0:
		return fmt.Errorf("%w: %s on segment %d", ErrNoLease, c.Sender, s.Segment)
	case seg.State != SegLeased:
		return fmt.Errorf("%w: segment %d is %s", ErrNotLeased, s.Segment, seg.State)
	case seg.Leases[li].Output.Defined():
		return fmt.Errorf("%w: segment %d", ErrSubmitted, s.Segment)
	case c.Height() > seg.Leases[li].Deadline:
		return fmt.Errorf("%w: deadline %d, height %d", ErrDeadlinePassed, seg.Leases[li].Deadline, c.Height())
	}
	rh := sha256.Sum256(s.Receipt)
	seg.Leases[li].Output, seg.Leases[li].Receipt = s.Output, rh[:]
	segStr := strconv.FormatUint(uint64(s.Segment), 10)
	c.Emit(ledger.Event{Kind: EventResult, Account: c.Sender, Counterparty: id, Detail: segStr})
	agree, all := true, true
	for _, l := range seg.Leases {
		if !l.Output.Defined() {
			all = false
		} else if !l.Output.Equals(s.Output.Cid) {
			agree = false
		}
	}
	switch {
	case !agree:
		seg.State, seg.Since = SegDisputed, c.Height()
		c.Emit(ledger.Event{Kind: EventDisputed, Counterparty: id, Detail: segStr})
		if err := schedule(c, c.Height()+m.p.CheckBlocks, id, s.Segment); err != nil {
			return err
		}
	case all:
		pol, err := j.Spec.Policy()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
		if pol.Kind == market.SpotCheck && SpotCheckDrawn(c.PrevBlockHash(), s.Job, s.Segment, pol.PPM) {
			seg.State, seg.Since = SegChecking, c.Height()
			c.Emit(ledger.Event{Kind: EventCheck, Counterparty: id, Detail: segStr})
			if err := schedule(c, c.Height()+m.p.CheckBlocks, id, s.Segment); err != nil {
				return err
			}
			break
		}
		pay, err := m.verify(c, id, s.Segment, &seg)
		if err != nil {
			return err
		}
		c.Emit(ledger.Event{Kind: EventVerified, Counterparty: id, Release: pay, Detail: segStr})
	}
	return saveSeg(c, id, s.Segment, seg)
}

// SpotCheckDrawn reports whether segment seg of job is drawn for a spot
// check at a probability of ppm parts per million, when its result is
// accepted in the block whose previous block hash is prev: the first 8
// bytes of sha256(prev || job CID string || seg as 4 bytes big-endian),
// read big-endian, modulo 1,000,000, are below ppm. The previous block's
// proposer has some influence on the draw.
func SpotCheckDrawn(prev [32]byte, job protocol.CID, seg uint32, ppm uint32) bool {
	h := sha256.New()
	h.Write(prev[:])
	h.Write([]byte(job.String()))
	h.Write(binary.BigEndian.AppendUint32(nil, seg))
	sum := h.Sum(nil)
	return binary.BigEndian.Uint64(sum[:8])%1_000_000 < uint64(ppm)
}

// verify makes seg verified at this height, payable ChallengeWindow blocks
// later; it returns the payment height.
func (m *machine) verify(c *ledger.TxContext, id string, i uint32, seg *Segment) (uint64, error) {
	pay := c.Height() + m.p.ChallengeWindow
	seg.State, seg.Since = SegVerified, c.Height()
	return pay, schedule(c, pay, id, i)
}

// penalize burns up to Params.SlashAmount of provider's stake and counts a
// failure, and a slash if anything was burned: the penalty of a missed
// deadline and of a wrong result. It returns the amount burned.
func (m *machine) penalize(c *ledger.TxContext, provider string) (uint64, error) {
	burned, err := c.SlashStake(provider, ledger.RoleProvider, m.p.SlashAmount)
	if err != nil {
		return 0, err
	}
	err = updateRep(c, provider, func(r *Reputation) {
		r.Failed++
		if burned > 0 {
			r.Slashed++
		}
	})
	return burned, err
}

// reopen returns a segment to its job: its leases' prices are no longer
// owed (their results, if any, go unpaid) and it is open again for a
// re-auction, or cancelled if the job was cancelled. It reports whether
// the segment is open.
func reopen(j *Job, seg *Segment) bool {
	for _, l := range seg.Leases {
		j.Owed -= l.Price
	}
	*seg = Segment{State: SegOpen}
	if j.Cancelled {
		seg.State = SegCancelled
		j.Unsettled--
		return false
	}
	return true
}

// attest records a validator's re-run output for a disputed or checking
// segment and resolves the segment once validators holding more than a
// third of the current set's stake agree on one output.
func (m *machine) attest(c *ledger.TxContext, body []byte) error {
	a, err := DecodeAttest(body)
	if err != nil {
		return err
	}
	id := a.Job.String()
	j, err := loadJob(c, id)
	if err != nil {
		return err
	}
	if a.Segment >= j.Spec.Segments {
		return fmt.Errorf("%w: %d of %d", ErrBadSegment, a.Segment, j.Spec.Segments)
	}
	vals := c.Validators()
	if !slices.ContainsFunc(vals, func(v ledger.Validator) bool { return v.ID == c.Sender }) || c.Bond(c.Sender).Jailed {
		return fmt.Errorf("%w: %s", ErrNotValidator, c.Sender)
	}
	seg, err := loadSeg(c, id, a.Segment)
	if err != nil {
		return err
	}
	if seg.State != SegDisputed && seg.State != SegChecking {
		return fmt.Errorf("%w: segment %d is %s", ErrNotChecking, a.Segment, seg.State)
	}
	if slices.ContainsFunc(seg.Attests, func(x Attestation) bool { return x.Validator == c.Sender }) {
		return fmt.Errorf("%w: %s on segment %d", ErrAttested, c.Sender, a.Segment)
	}
	seg.Attests = append(seg.Attests, Attestation{Validator: c.Sender, Output: a.Output})
	segStr := strconv.FormatUint(uint64(a.Segment), 10)
	c.Emit(ledger.Event{Kind: EventAttested, Account: c.Sender, Counterparty: id, Detail: segStr})
	// Weigh the attestations for this output by the current set's stakes:
	// a validator that has left the set no longer counts.
	var total, agree uint64
	for _, v := range vals {
		total += v.Stake // a set's stakes are parts of the supply: no overflow
		if slices.ContainsFunc(seg.Attests, func(x Attestation) bool { return x.Validator == v.ID && x.Output.Equals(a.Output.Cid) }) {
			agree += v.Stake
		}
	}
	if hi, lo := bits.Mul64(agree, 3); hi == 0 && lo <= total {
		return saveSeg(c, id, a.Segment, seg)
	}
	return m.resolve(c, a.Job, j, a.Segment, seg, a.Output)
}

// resolve settles a disputed or checking segment for the output the
// validators agreed on: leases with that output are kept and the segment
// is verified; every other lease is slashed and dropped unpaid; with no
// lease left the segment is reopened.
func (m *machine) resolve(c *ledger.TxContext, cid protocol.CID, j *Job, i uint32, seg Segment, out protocol.CID) error {
	id := cid.String()
	segStr := strconv.FormatUint(uint64(i), 10)
	var keep []Lease
	for _, l := range seg.Leases {
		if l.Output.Defined() && l.Output.Equals(out.Cid) {
			keep = append(keep, l)
			continue
		}
		burned, err := m.penalize(c, l.Provider)
		if err != nil {
			return err
		}
		j.Owed -= l.Price
		c.Emit(ledger.Event{Kind: EventWrong, Account: l.Provider, Counterparty: id, Amount: burned, Detail: segStr})
	}
	seg.Leases = keep
	if len(keep) > 0 {
		pay, err := m.verify(c, id, i, &seg)
		if err != nil {
			return err
		}
		c.Emit(ledger.Event{Kind: EventResolved, Counterparty: id, Release: pay, Detail: segStr})
		if err := saveSeg(c, id, i, seg); err != nil {
			return err
		}
		return saveJob(c, id, j)
	}
	if reopen(j, &seg) {
		c.Emit(ledger.Event{Kind: EventReopened, Counterparty: id, Detail: segStr})
	}
	if err := saveSeg(c, id, i, seg); err != nil {
		return err
	}
	return m.finishOrSave(c, id, cid, j)
}

// exit records the sender's notice to leave the market.
func (m *machine) exit(c *ledger.TxContext, body []byte) error {
	if _, err := DecodeExit(body); err != nil {
		return err
	}
	if c.Bond(c.Sender).Provider == 0 {
		return fmt.Errorf("%w: %s", ErrNotProvider, c.Sender)
	}
	if _, ok := c.Ext(exitKey(c.Sender)); ok {
		return fmt.Errorf("%w: %s already gave notice", ErrExiting, c.Sender)
	}
	b, err := protocol.Marshal(c.Height())
	if err != nil {
		return err
	}
	c.SetExt(exitKey(c.Sender), b)
	c.Emit(ledger.Event{Kind: EventExit, Account: c.Sender})
	return nil
}

func (m *machine) cancelJob(c *ledger.TxContext, body []byte) error {
	cj, err := DecodeCancelJob(body)
	if err != nil {
		return err
	}
	id := cj.Job.String()
	j, err := loadOwnOpenJob(c, id)
	if err != nil {
		return err
	}
	var n uint32
	for i := range j.Spec.Segments {
		if _, taken := c.Ext(segKey(id, i)); !taken {
			if err := saveSeg(c, id, i, Segment{State: SegCancelled}); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNothingToCancel, id)
	}
	j.Cancelled = true
	j.Unsettled -= n
	esc := EscrowID(cj.Job)
	have, owed := c.EscrowBalance(esc), j.Owed
	if have < owed {
		return fmt.Errorf("%w: escrow %d below owed %d", ErrBadRecord, have, owed)
	}
	refund := have - owed
	if refund > 0 {
		if err := c.Release(esc, j.Renter, refund); err != nil {
			return err
		}
	}
	c.Emit(ledger.Event{Kind: EventCancelled, Account: j.Renter, Counterparty: id, Amount: refund})
	return m.finishOrSave(c, id, cj.Job, j)
}

// finishOrSave closes a job whose segments are all settled (refunding the
// rest of its escrow to the renter and deleting its record), or saves it.
func (m *machine) finishOrSave(c *ledger.TxContext, id string, cid protocol.CID, j *Job) error {
	if j.Unsettled > 0 {
		return saveJob(c, id, j)
	}
	esc := EscrowID(cid)
	rest := c.EscrowBalance(esc)
	if rest > 0 {
		if err := c.Release(esc, j.Renter, rest); err != nil {
			return err
		}
	}
	c.DeleteExt(jobKey(id))
	for i := range j.Spec.Segments {
		c.DeleteExt(segKey(id, i))
	}
	c.Emit(ledger.Event{Kind: EventJobClosed, Account: j.Renter, Counterparty: id, Amount: rest})
	return nil
}

// endBlock settles the segments scheduled for this height: missed
// deadlines, verified segments past their challenge window, and closes jobs
// whose last segment settled.
func (m *machine) endBlock(c *ledger.TxContext) error {
	h := c.Height()
	// Settling may schedule this very height again (a lapsed check
	// verified with a zero challenge window): loop until nothing is due.
	for {
		b, ok := c.Ext(dueKey(h))
		if !ok {
			return nil
		}
		c.DeleteExt(dueKey(h))
		var d due
		if err := protocol.Unmarshal(b, &d); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
		for _, r := range d.Refs {
			if err := m.settleSegment(c, r.Job, r.Segment); err != nil {
				return fmt.Errorf("settle: job %s segment %d: %w", r.Job, r.Segment, err)
			}
		}
	}
}

func (m *machine) settleSegment(c *ledger.TxContext, id string, i uint32) error {
	h := c.Height()
	b, ok := c.Ext(jobKey(id))
	if !ok {
		return nil // closed since it was scheduled
	}
	j, err := DecodeJob(b)
	if err != nil {
		return err
	}
	if i >= j.Spec.Segments {
		return fmt.Errorf("%w: segment %d of %d", ErrBadRecord, i, j.Spec.Segments)
	}
	cid, err := protocol.ParseCID(id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	seg, err := loadSeg(c, id, i)
	if err != nil {
		return err
	}
	esc := EscrowID(cid)
	segStr := strconv.FormatUint(uint64(i), 10)
	switch {
	case seg.State == SegLeased && seg.Leases[0].Deadline < h:
		// All leases of a segment share one deadline. Every missing
		// result is a failure; the whole segment returns to the job
		// (results already submitted by others are not paid).
		for _, l := range seg.Leases {
			if l.Output.Defined() {
				continue
			}
			burned, err := m.penalize(c, l.Provider)
			if err != nil {
				return err
			}
			c.Emit(ledger.Event{Kind: EventMissed, Account: l.Provider, Counterparty: id, Amount: burned, Detail: segStr})
		}
		reopen(j, &seg)
	case seg.State == SegChecking && h >= seg.Since+m.p.CheckBlocks:
		// No quorum of validators re-ran it in time: the provider's
		// result stands.
		pay, err := m.verify(c, id, i, &seg)
		if err != nil {
			return err
		}
		c.Emit(ledger.Event{Kind: EventResolved, Counterparty: id, Release: pay, Detail: segStr})
	case seg.State == SegDisputed && h >= seg.Since+m.p.CheckBlocks:
		// Nobody can tell who was right: nobody is paid or slashed, and
		// the segment runs again.
		if reopen(j, &seg) {
			c.Emit(ledger.Event{Kind: EventReopened, Counterparty: id, Detail: segStr})
		}
	case seg.State == SegVerified && h >= seg.Since+m.p.ChallengeWindow:
		fee := c.Params().MarketFee
		pol, err := j.Spec.Policy()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadRecord, err)
		}
		for _, l := range seg.Leases {
			f := fee.Of(l.Price)
			if err := c.Release(esc, l.Provider, l.Price-f); err != nil {
				return err
			}
			if f > 0 {
				if err := c.PayValidators(esc, f); err != nil {
					return err
				}
			}
			if err := updateRep(c, l.Provider, func(r *Reputation) {
				r.Completed++
				if pol.Replicas() >= 2 {
					r.Verified++
				}
			}); err != nil {
				return err
			}
			j.Owed -= l.Price
			c.Emit(ledger.Event{Kind: EventPaid, Account: l.Provider, Counterparty: id, Amount: l.Price - f, Detail: segStr})
		}
		seg.State = SegPaid
		j.Unsettled--
	default:
		return nil
	}
	if err := saveSeg(c, id, i, seg); err != nil {
		return err
	}
	return m.finishOrSave(c, id, cid, j)
}

// Exiting reports whether provider has given notice with market.exit: no
// new lease is awarded to it.
func Exiting(st *ledger.State, provider string) bool {
	_, ok := st.Ext(exitKey(provider))
	return ok
}

// JobOf reads job id's record from st; false if no such job is open.
func JobOf(st *ledger.State, id protocol.CID) (*Job, bool, error) {
	b, ok := st.Ext(jobKey(id.String()))
	if !ok {
		return nil, false, nil
	}
	j, err := DecodeJob(b)
	if err != nil {
		return nil, false, err
	}
	j.Segments = make([]Segment, j.Spec.Segments)
	for i := range j.Spec.Segments {
		if b, ok := st.Ext(segKey(id.String(), i)); ok {
			if err := protocol.Unmarshal(b, &j.Segments[i]); err != nil {
				return nil, false, fmt.Errorf("%w: %w", ErrBadRecord, err)
			}
		}
	}
	return j, true, nil
}

// ReputationOf reads provider's counters from st (zero if it has none).
func ReputationOf(st *ledger.State, provider string) (Reputation, error) {
	var r Reputation
	b, ok := st.Ext(repKey(provider))
	if !ok {
		return r, nil
	}
	if err := protocol.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return r, nil
}
