package settle

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/protocol"
)

// The market's tx types.
const (
	TxOpenJob      ledger.TxType = "market.open_job"
	TxAwardLease   ledger.TxType = "market.award_lease"
	TxSubmitResult ledger.TxType = "market.submit_result"
	TxCancelJob    ledger.TxType = "market.cancel_job"
	TxAttest       ledger.TxType = "market.attest"
	TxExit         ledger.TxType = "market.exit"
)

// Event kinds the market's handlers and hook emit. Counterparty is the job
// ID, Account the renter or provider concerned.
const (
	EventJobOpened ledger.EventKind = "market.job_opened" // Amount: deposit
	EventLease     ledger.EventKind = "market.lease"      // Amount: price; Detail: segment; Release: deadline height
	EventResult    ledger.EventKind = "market.result"     // Detail: segment
	EventVerified  ledger.EventKind = "market.verified"   // Detail: segment; Release: payment height
	EventDisputed  ledger.EventKind = "market.disputed"   // Detail: segment
	EventMissed    ledger.EventKind = "market.missed"     // Detail: segment; Amount: stake slashed
	EventPaid      ledger.EventKind = "market.paid"       // Detail: segment; Amount: price minus fee
	EventCancelled ledger.EventKind = "market.cancelled"  // Amount: refund
	EventJobClosed ledger.EventKind = "market.job_closed" // Amount: rest of the escrow refunded to the renter
	EventCheck     ledger.EventKind = "market.check"      // Detail: segment drawn for a validator re-run
	EventAttested  ledger.EventKind = "market.attested"   // Account: validator; Detail: segment
	EventResolved  ledger.EventKind = "market.resolved"   // Detail: segment; Release: payment height
	EventWrong     ledger.EventKind = "market.wrong"      // Account: provider; Amount: stake slashed; Detail: segment
	EventReopened  ledger.EventKind = "market.reopened"   // Detail: segment (open again, re-auctionable)
	EventExit      ledger.EventKind = "market.exit"       // Account: provider giving notice
)

// Limits on tx bodies, checked by the decoders.
const (
	MaxAwardBids = 64   // signed bids in one award_lease
	MaxReceipt   = 4096 // bytes of a result receipt
	maxBidEnv    = 8192 // bytes of one carried bid envelope
)

// Sentinel errors of the market's txs. A tx failing with one of them gets
// a failure receipt whose Error contains the message; nothing else changes.
var (
	ErrBadBody         = errors.New("settle: malformed tx body")
	ErrJobExists       = errors.New("settle: job already open")
	ErrUnknownJob      = errors.New("settle: unknown job")
	ErrDeposit         = errors.New("settle: deposit below max price x segments x replicas")
	ErrNotRenter       = errors.New("settle: sender is not the job's renter")
	ErrJobCancelled    = errors.New("settle: job cancelled")
	ErrSegmentTaken    = errors.New("settle: segment not open")
	ErrBadSegment      = errors.New("settle: segment out of range")
	ErrBadBid          = errors.New("settle: invalid bid")
	ErrNotStaked       = errors.New("settle: provider below minimum stake or jailed")
	ErrBidExpired      = errors.New("settle: bid expired")
	ErrBidUsed         = errors.New("settle: bid already used for this job")
	ErrNothingAwarded  = errors.New("settle: award assigns no segment")
	ErrEscrowShort     = errors.New("settle: escrow does not cover the award")
	ErrNoLease         = errors.New("settle: sender holds no lease on the segment")
	ErrNotLeased       = errors.New("settle: segment is not awaiting results")
	ErrSubmitted       = errors.New("settle: result already submitted")
	ErrDeadlinePassed  = errors.New("settle: lease deadline passed")
	ErrNothingToCancel = errors.New("settle: no unleased segment to cancel")
	ErrBadRecord       = errors.New("settle: corrupt market record")
	ErrNotValidator    = errors.New("settle: sender is not an unjailed validator of the current set")
	ErrAttested        = errors.New("settle: validator already attested the segment")
	ErrNotChecking     = errors.New("settle: segment is not disputed or being checked")
	ErrExiting         = errors.New("settle: provider is exiting")
	ErrNotProvider     = errors.New("settle: sender has no provider stake")
)

// OpenJob (market.open_job) opens a job: Deposit moves from the sender's
// balance into the job's escrow.
type OpenJob struct {
	Spec    market.JobSpec `cbor:"1,keyasint"`
	Deposit uint64         `cbor:"2,keyasint"`
}

// AwardLease (market.award_lease) awards segments of the sender's job. Bids
// are the providers' signed KindBid envelopes; the ledger re-runs
// market.Award over them. Segments lists the segments to award (ascending,
// unique); empty means every open segment. MaxPerProvider is passed to
// market.Award.
type AwardLease struct {
	Job            protocol.CID `cbor:"1,keyasint"`
	Bids           [][]byte     `cbor:"2,keyasint"`
	Segments       []uint32     `cbor:"3,keyasint"`
	MaxPerProvider uint32       `cbor:"4,keyasint"`
}

// SubmitResult (market.submit_result) reports a leased segment's output.
// Receipt is the executor's receipt, opaque to the ledger, which keeps its
// sha256.
type SubmitResult struct {
	Job     protocol.CID `cbor:"1,keyasint"`
	Segment uint32       `cbor:"2,keyasint"`
	Output  protocol.CID `cbor:"3,keyasint"`
	Receipt []byte       `cbor:"4,keyasint"`
}

// CancelJob (market.cancel_job) cancels the sender's job: unleased segments
// are cancelled and what the escrow holds beyond the leased segments'
// prices is refunded at once.
type CancelJob struct {
	Job protocol.CID `cbor:"1,keyasint"`
}

// Attest (market.attest) is a validator's re-run result for a disputed or
// spot-checked segment.
type Attest struct {
	Job     protocol.CID `cbor:"1,keyasint"`
	Segment uint32       `cbor:"2,keyasint"`
	Output  protocol.CID `cbor:"3,keyasint"`
}

// Exit (market.exit) is a provider's notice that it is leaving: from then
// on no new lease is awarded to it; its current leases run on.
type Exit struct{}

// DecodeOpenJob strictly decodes and checks an open_job body.
func DecodeOpenJob(body []byte) (*OpenJob, error) {
	var o OpenJob
	if err := protocol.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	if err := o.Spec.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	if o.Deposit == 0 {
		return nil, fmt.Errorf("%w: zero deposit", ErrBadBody)
	}
	return &o, nil
}

// DecodeAwardLease strictly decodes and checks an award_lease body's shape
// (the bids themselves are checked against the state by the handler).
func DecodeAwardLease(body []byte) (*AwardLease, error) {
	var a AwardLease
	if err := protocol.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	switch {
	case !a.Job.Defined():
		return nil, fmt.Errorf("%w: no job", ErrBadBody)
	case len(a.Bids) == 0 || len(a.Bids) > MaxAwardBids:
		return nil, fmt.Errorf("%w: %d bids not in [1, %d]", ErrBadBody, len(a.Bids), MaxAwardBids)
	case len(a.Segments) > market.MaxSegments:
		return nil, fmt.Errorf("%w: %d segments", ErrBadBody, len(a.Segments))
	}
	for i, b := range a.Bids {
		if len(b) == 0 || len(b) > maxBidEnv {
			return nil, fmt.Errorf("%w: bid %d has %d bytes", ErrBadBody, i, len(b))
		}
	}
	for i := 1; i < len(a.Segments); i++ {
		if a.Segments[i] <= a.Segments[i-1] {
			return nil, fmt.Errorf("%w: segments not ascending and unique", ErrBadBody)
		}
	}
	return &a, nil
}

// DecodeSubmitResult strictly decodes and checks a submit_result body.
func DecodeSubmitResult(body []byte) (*SubmitResult, error) {
	var s SubmitResult
	if err := protocol.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	switch {
	case !s.Job.Defined():
		return nil, fmt.Errorf("%w: no job", ErrBadBody)
	case !s.Output.Defined():
		return nil, fmt.Errorf("%w: no output CID", ErrBadBody)
	case len(s.Receipt) > MaxReceipt:
		return nil, fmt.Errorf("%w: receipt of %d bytes > %d", ErrBadBody, len(s.Receipt), MaxReceipt)
	}
	return &s, nil
}

// DecodeCancelJob strictly decodes and checks a cancel_job body.
func DecodeCancelJob(body []byte) (*CancelJob, error) {
	var c CancelJob
	if err := protocol.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	if !c.Job.Defined() {
		return nil, fmt.Errorf("%w: no job", ErrBadBody)
	}
	return &c, nil
}

// DecodeAttest strictly decodes and checks an attest body.
func DecodeAttest(body []byte) (*Attest, error) {
	var a Attest
	if err := protocol.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	switch {
	case !a.Job.Defined():
		return nil, fmt.Errorf("%w: no job", ErrBadBody)
	case !a.Output.Defined():
		return nil, fmt.Errorf("%w: no output CID", ErrBadBody)
	}
	return &a, nil
}

// DecodeExit strictly decodes an exit body (an empty map).
func DecodeExit(body []byte) (*Exit, error) {
	var e Exit
	if err := protocol.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	return &e, nil
}

// SegState is where a segment is in its life.
type SegState uint8

// Segment states.
const (
	SegOpen      SegState = 0 // waiting for an award
	SegLeased    SegState = 1 // leased, waiting for results
	SegVerified  SegState = 2 // results agree; paid after the challenge window
	SegDisputed  SegState = 3 // results disagree; waits for validators' attestations
	SegPaid      SegState = 4 // providers paid
	SegCancelled SegState = 5 // cancelled by the renter before any lease
	SegChecking  SegState = 6 // drawn for a spot check; waits for validators' attestations
)

func (s SegState) String() string {
	switch s {
	case SegOpen:
		return "open"
	case SegLeased:
		return "leased"
	case SegVerified:
		return "verified"
	case SegDisputed:
		return "disputed"
	case SegPaid:
		return "paid"
	case SegCancelled:
		return "cancelled"
	case SegChecking:
		return "checking"
	}
	return fmt.Sprintf("segstate(%d)", uint8(s))
}

// Lease is one provider's lease on a segment.
type Lease struct {
	Provider string       `cbor:"1,keyasint"`
	Price    uint64       `cbor:"2,keyasint"`
	Deadline uint64       `cbor:"3,keyasint"` // last height at which a result is accepted
	Output   protocol.CID `cbor:"4,keyasint,omitzero"`
	Receipt  []byte       `cbor:"5,keyasint,omitempty"` // sha256 of the submitted receipt
}

// Attestation is a validator's re-run output for a disputed or checking
// segment.
type Attestation struct {
	Validator string       `cbor:"1,keyasint" json:"validator"`
	Output    protocol.CID `cbor:"2,keyasint" json:"output"`
}

// Segment is a segment's record.
type Segment struct {
	State  SegState `cbor:"1,keyasint"`
	Leases []Lease  `cbor:"2,keyasint,omitempty"` // Replicas leases while leased, verified, checking or disputed
	Since  uint64   `cbor:"3,keyasint,omitempty"` // height it became verified, checking or disputed
	// Attests are the attestations received while disputed or checking,
	// in arrival order (one per validator); kept once verified.
	Attests []Attestation `cbor:"4,keyasint,omitempty"`
}

// UsedBid is a winning bid already consumed by an award of the job; a bid
// wins at most once per job, so a re-auction needs fresh bids.
type UsedBid struct {
	Provider string `cbor:"1,keyasint"`
	Nonce    uint64 `cbor:"2,keyasint"`
}

// Job is an open job's ledger record (ext key "market/job/<cid>"); each
// segment not open has its own record ("market/seg/<cid>/<index>"), so a
// tx touching one segment of a large job costs little. Both are deleted
// when the job closes.
type Job struct {
	Renter    string         `cbor:"1,keyasint"`
	Spec      market.JobSpec `cbor:"2,keyasint"`
	Opened    uint64         `cbor:"3,keyasint"` // height of open_job
	Deposit   uint64         `cbor:"4,keyasint"`
	Cancelled bool           `cbor:"5,keyasint"`
	Owed      uint64         `cbor:"6,keyasint"`           // prices of every lease on a leased, verified or disputed segment
	Unsettled uint32         `cbor:"7,keyasint"`           // segments neither paid nor cancelled; the job closes at 0
	Used      []UsedBid      `cbor:"8,keyasint,omitempty"` // sorted by provider, nonce

	// Segments is filled in by JobOf from the segment records.
	Segments []Segment `cbor:"-"`
}

// Reputation holds a provider's counters (ext key "market/rep/<peer>").
type Reputation struct {
	Completed uint64 `cbor:"1,keyasint" json:"completed"` // segments paid
	Failed    uint64 `cbor:"2,keyasint" json:"failed"`    // leases whose deadline passed without a result
	Slashed   uint64 `cbor:"3,keyasint" json:"slashed"`   // times its provider stake was slashed
	Verified  uint64 `cbor:"4,keyasint" json:"verified"`  // paid segments whose result another provider confirmed (replicate:k>=2)
}

// Score is the reputation market.Award uses to break price ties:
// completed segments minus twice the failures (saturating).
func (r Reputation) Score() int64 {
	c, f := int64(min(r.Completed, 1<<62)), int64(min(r.Failed, 1<<60))
	return c - 2*f
}

// dueRef names a segment the end-block hook examines.
type dueRef struct {
	Job     string `cbor:"1,keyasint"` // CID string
	Segment uint32 `cbor:"2,keyasint"`
}

// due lists the segments the end-block hook examines at a height, in the
// order they were scheduled (examining one twice is harmless).
type due struct {
	Refs []dueRef `cbor:"1,keyasint"`
}

const (
	prefix     = "market/"
	jobPrefix  = prefix + "job/"
	segPrefix  = prefix + "seg/"
	repPrefix  = prefix + "rep/"
	duePrefix  = prefix + "due/"
	exitPrefix = prefix + "exit/"
)

// EscrowID is the ledger escrow holding a job's deposit.
func EscrowID(job protocol.CID) string { return "job/" + job.String() }

func jobKey(job string) string { return jobPrefix + job }
func segKey(job string, i uint32) string {
	return segPrefix + job + "/" + fmt.Sprintf("%06d", i)
}
func repKey(p string) string  { return repPrefix + p }
func exitKey(p string) string { return exitPrefix + p }
func dueKey(h uint64) string  { return fmt.Sprintf("%s%020d", duePrefix, h) }

// DecodeJob strictly decodes a job record.
func DecodeJob(b []byte) (*Job, error) {
	var j Job
	if err := protocol.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if j.Unsettled > j.Spec.Segments {
		return nil, fmt.Errorf("%w: %d unsettled of %d segments", ErrBadRecord, j.Unsettled, j.Spec.Segments)
	}
	return &j, nil
}

func (j *Job) usedIndex(provider string, nonce uint64) (int, bool) {
	return slices.BinarySearchFunc(j.Used, UsedBid{provider, nonce}, func(a, b UsedBid) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		switch {
		case a.Nonce < b.Nonce:
			return -1
		case a.Nonce > b.Nonce:
			return 1
		}
		return 0
	})
}
