package market

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// KindNoBid is the message a provider gossips on the bids topic when it
// decides not to bid, so the renter can answer "why no bids?".
const KindNoBid protocol.Kind = "nobid"

func init() { protocol.RegisterKind(KindNoBid, 1<<10) }

// Shape limits, checked by the validators before anything is stored.
const (
	MaxOfferGPUs      = 64
	MaxOfferPrices    = 128
	MaxExecutors      = 16
	MaxNameLen        = 64 // GPU models, executors, regions, runtimes
	MaxGPUModels      = 32 // in a job's requirements
	MaxSegments       = 100_000
	MaxInputs         = 1_000 // input CIDs in one spec (the job gossip limit is 64 KiB)
	MaxReplicas       = 16
	MaxOfferTTL       = time.Hour
	MaxBidLifetime    = 24 * time.Hour
	MaxClockSkew      = 30 * time.Second // how far in the future a timestamp may be
	MaxAuctionWindow  = time.Hour        // how far ahead an auction may close
	maxDetailLen      = 256
	maxSegmentTimeout = 7 * 24 * time.Hour
)

// Status is a provider's availability as announced in its offer.
type Status uint8

// Provider statuses.
const (
	StatusIdle         Status = 1 // free capacity, bidding
	StatusReserved     Status = 2 // all capacity leased
	StatusSharing      Status = 3 // some capacity leased, bidding with the rest
	StatusDisconnected Status = 4 // announced as leaving or unreachable; never matched
)

func (s Status) valid() bool { return s >= StatusIdle && s <= StatusDisconnected }

func (s Status) String() string {
	switch s {
	case StatusIdle:
		return "idle"
	case StatusReserved:
		return "reserved"
	case StatusSharing:
		return "sharing"
	case StatusDisconnected:
		return "disconnected"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// GPUGroup is a number of identical GPUs of a provider.
type GPUGroup struct {
	Model string `cbor:"1,keyasint"` // as NVML names it, e.g. "NVIDIA A100-SXM4-80GB"
	VRAM  uint64 `cbor:"2,keyasint"` // bytes per GPU
	Count uint32 `cbor:"3,keyasint"`
}

// Price is what a provider asks per segment for one GPU of Model run by
// Executor. Model "" prices CPU-only work (jobs that need no GPU).
type Price struct {
	Model      string `cbor:"1,keyasint"`
	Executor   string `cbor:"2,keyasint"`
	PerSegment uint64 `cbor:"3,keyasint"`
}

// Offer is a provider's standing advertisement, gossiped on the offers topic
// in a KindOffer envelope signed by Provider.
type Offer struct {
	Provider  string     `cbor:"1,keyasint"` // peer ID string; must be the envelope author
	Seq       uint64     `cbor:"2,keyasint"` // raised on every change; a lower or equal Seq never replaces
	IssuedAt  int64      `cbor:"3,keyasint"` // unix ms
	TTL       uint32     `cbor:"4,keyasint"` // seconds after IssuedAt the offer stays valid
	Status    Status     `cbor:"5,keyasint"`
	GPUs      []GPUGroup `cbor:"6,keyasint"` // sorted by model then VRAM, no duplicates
	CPUCores  uint32     `cbor:"7,keyasint"`
	Memory    uint64     `cbor:"8,keyasint"` // bytes
	Executors []string   `cbor:"9,keyasint"` // sorted, unique ("wasm", "process", ...)
	Region    string     `cbor:"10,keyasint"`
	Prices    []Price    `cbor:"11,keyasint"` // sorted by (model, executor), unique
	Stake     uint64     `cbor:"12,keyasint"` // provider stake as the provider reads it; the chain is authoritative
	FreeSlots uint32     `cbor:"13,keyasint"` // segments it can take on now
	// HardwareClass references the on-chain attestation of the provider's
	// verified hardware class (compute/bench), if any.
	HardwareClass protocol.CID `cbor:"14,keyasint,omitzero"`
}

// Expires is when the offer stops being valid.
func (o *Offer) Expires() time.Time {
	return time.UnixMilli(o.IssuedAt).Add(time.Duration(o.TTL) * time.Second)
}

// Requirements say what hardware a job needs. The zero value needs nothing
// but an executor.
type Requirements struct {
	GPUModels []string `cbor:"1,keyasint"` // accepted models, sorted, unique; empty: any model
	MinVRAM   uint64   `cbor:"2,keyasint"` // bytes per GPU
	GPUCount  uint32   `cbor:"3,keyasint"` // GPUs per segment; 0: CPU-only work
	Executor  string   `cbor:"4,keyasint"`
	Region    string   `cbor:"5,keyasint"` // "" for any region
}

// JobSpec is a renter's job. It is content-addressed: its ObjectID is the
// job ID.
type JobSpec struct {
	Program  protocol.CID   `cbor:"1,keyasint,omitzero"` // wasm module; exactly one of Program and Runtime
	Runtime  string         `cbor:"2,keyasint"`          // a provider-allowlisted runtime name
	Inputs   []protocol.CID `cbor:"3,keyasint"`          // none, or one per segment
	Require  Requirements   `cbor:"4,keyasint"`
	Segments uint32         `cbor:"5,keyasint"`
	MaxPrice uint64         `cbor:"6,keyasint"` // per segment
	Deadline uint32         `cbor:"7,keyasint"` // seconds a leased segment may take
	Verify   string         `cbor:"8,keyasint"` // canonical policy: "replicate:k" or "spotcheck:p"
	Salt     uint64         `cbor:"9,keyasint"` // lets one renter submit the same work twice under different IDs
}

// ID is the job ID: the ObjectID of the spec.
func (s *JobSpec) ID() (protocol.CID, error) {
	c, err := protocol.ObjectID(s)
	return protocol.NewCID(c), err
}

// Policy is the parsed verification policy.
func (s *JobSpec) Policy() (Policy, error) { return ParsePolicy(s.Verify) }

// JobRequest opens an auction: gossiped on the jobs topic in a KindJob
// envelope signed by Renter once the OpenJob tx has moved the deposit into
// escrow. It carries the whole spec so providers decide without a fetch.
type JobRequest struct {
	Job     protocol.CID `cbor:"1,keyasint"` // ObjectID of Spec
	Spec    JobSpec      `cbor:"2,keyasint"`
	Renter  string       `cbor:"3,keyasint"` // peer ID string; must be the envelope author
	CloseAt int64        `cbor:"4,keyasint"` // unix ms; bids must arrive before
}

// Bid is a provider's price for a job, gossiped on the bids topic in a
// KindBid envelope signed by Provider. The AwardLease tx carries the signed
// envelope, so the ledger can check it again.
type Bid struct {
	Job      protocol.CID `cbor:"1,keyasint"`
	Provider string       `cbor:"2,keyasint"` // peer ID string; must be the envelope author
	Price    uint64       `cbor:"3,keyasint"` // per segment
	Capacity uint32       `cbor:"4,keyasint"` // segments it will take
	Expiry   int64        `cbor:"5,keyasint"` // unix ms; the award must land before
	Nonce    uint64       `cbor:"6,keyasint"` // a provider may revise its bid with a higher nonce
}

// NoBidReason says why a provider did not bid.
type NoBidReason uint8

// Reasons for not bidding. The Requirement* reasons name the requirement
// the provider does not meet.
const (
	ReasonGPUModel      NoBidReason = 1  // no GPU of an accepted model
	ReasonVRAM          NoBidReason = 2  // accepted models, too little memory
	ReasonGPUCount      NoBidReason = 3  // fewer suitable GPUs than asked
	ReasonExecutor      NoBidReason = 4  // executor not offered
	ReasonRegion        NoBidReason = 5  // other region
	ReasonNoCapacity    NoBidReason = 6  // no free slots now
	ReasonPriceAboveMax NoBidReason = 7  // its price floor is above the job's max price
	ReasonNoPrice       NoBidReason = 8  // no price set for the hardware the job needs
	ReasonExiting       NoBidReason = 9  // the provider announced its exit
	ReasonClosed        NoBidReason = 10 // the auction had closed when it saw the job
)

func (r NoBidReason) valid() bool { return r >= ReasonGPUModel && r <= ReasonClosed }

func (r NoBidReason) String() string {
	switch r {
	case ReasonGPUModel:
		return "requirement unmet: GPU model"
	case ReasonVRAM:
		return "requirement unmet: VRAM"
	case ReasonGPUCount:
		return "requirement unmet: GPU count"
	case ReasonExecutor:
		return "requirement unmet: executor"
	case ReasonRegion:
		return "requirement unmet: region"
	case ReasonNoCapacity:
		return "no free capacity"
	case ReasonPriceAboveMax:
		return "price floor above max price"
	case ReasonNoPrice:
		return "no price for the required hardware"
	case ReasonExiting:
		return "provider exiting"
	case ReasonClosed:
		return "auction closed"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// NoBid is a provider's reasoned refusal, gossiped in a KindNoBid envelope
// signed by Provider.
type NoBid struct {
	Job      protocol.CID `cbor:"1,keyasint"`
	Provider string       `cbor:"2,keyasint"`
	Reason   NoBidReason  `cbor:"3,keyasint"`
	Detail   string       `cbor:"4,keyasint"` // human-readable, e.g. "have 24 GiB, need 40 GiB"
}

func (n *NoBid) String() string {
	if n.Detail == "" {
		return n.Reason.String()
	}
	return n.Reason.String() + " (" + n.Detail + ")"
}

// validPeer reports whether s is the canonical string of a peer ID.
func validPeer(s string) bool {
	p, err := peer.Decode(s)
	return err == nil && p.String() == s
}

func validName(s string) bool { return s != "" && len(s) <= MaxNameLen }

// sortedUnique reports whether xs is strictly increasing under cmp.
func sortedUnique[T any](xs []T, cmp func(a, b T) int) bool {
	for i := 1; i < len(xs); i++ {
		if cmp(xs[i-1], xs[i]) >= 0 {
			return false
		}
	}
	return true
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Check validates the offer's shape: everything that can be judged without
// a clock or state. Errors wrap ErrBadOffer.
func (o *Offer) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadOffer, fmt.Sprintf(format, a...))
	}
	switch {
	case !validPeer(o.Provider):
		return bad("provider %q is not a peer ID", o.Provider)
	case o.TTL == 0 || time.Duration(o.TTL)*time.Second > MaxOfferTTL:
		return bad("TTL %ds not in (0, %s]", o.TTL, MaxOfferTTL)
	case o.IssuedAt <= 0:
		return bad("issued at %d", o.IssuedAt)
	case !o.Status.valid():
		return bad("status %d", o.Status)
	case len(o.GPUs) > MaxOfferGPUs:
		return bad("%d GPU groups > %d", len(o.GPUs), MaxOfferGPUs)
	case len(o.Executors) == 0 || len(o.Executors) > MaxExecutors:
		return bad("%d executors not in [1, %d]", len(o.Executors), MaxExecutors)
	case len(o.Prices) == 0 || len(o.Prices) > MaxOfferPrices:
		return bad("%d prices not in [1, %d]", len(o.Prices), MaxOfferPrices)
	case len(o.Region) > MaxNameLen:
		return bad("region longer than %d", MaxNameLen)
	}
	for _, g := range o.GPUs {
		if !validName(g.Model) || g.VRAM == 0 || g.Count == 0 {
			return bad("GPU group %+v", g)
		}
	}
	if !sortedUnique(o.GPUs, cmpGroup) {
		return bad("GPU groups not sorted and unique")
	}
	for _, e := range o.Executors {
		if !validName(e) {
			return bad("executor %q", e)
		}
	}
	if !sortedUnique(o.Executors, cmpString) {
		return bad("executors not sorted and unique")
	}
	for _, p := range o.Prices {
		if len(p.Model) > MaxNameLen || !validName(p.Executor) || p.PerSegment == 0 {
			return bad("price %+v", p)
		}
		if !slices.Contains(o.Executors, p.Executor) {
			return bad("price for executor %q it does not offer", p.Executor)
		}
	}
	if !sortedUnique(o.Prices, cmpPrice) {
		return bad("prices not sorted and unique by (model, executor)")
	}
	return nil
}

func cmpGroup(a, b GPUGroup) int {
	if c := cmpString(a.Model, b.Model); c != 0 {
		return c
	}
	switch {
	case a.VRAM < b.VRAM:
		return -1
	case a.VRAM > b.VRAM:
		return 1
	}
	return 0
}

func cmpPrice(a, b Price) int {
	if c := cmpString(a.Model, b.Model); c != 0 {
		return c
	}
	return cmpString(a.Executor, b.Executor)
}

// Check validates the requirements' shape.
func (r *Requirements) Check() error {
	switch {
	case len(r.GPUModels) > MaxGPUModels:
		return fmt.Errorf("%w: %d GPU models > %d", ErrBadJob, len(r.GPUModels), MaxGPUModels)
	case !validName(r.Executor):
		return fmt.Errorf("%w: executor %q", ErrBadJob, r.Executor)
	case len(r.Region) > MaxNameLen:
		return fmt.Errorf("%w: region longer than %d", ErrBadJob, MaxNameLen)
	case r.GPUCount == 0 && (len(r.GPUModels) > 0 || r.MinVRAM > 0):
		return fmt.Errorf("%w: GPU model or VRAM given for CPU-only work (GPU count 0)", ErrBadJob)
	case r.GPUCount > MaxOfferGPUs*64:
		return fmt.Errorf("%w: GPU count %d", ErrBadJob, r.GPUCount)
	}
	for _, m := range r.GPUModels {
		if !validName(m) {
			return fmt.Errorf("%w: GPU model %q", ErrBadJob, m)
		}
	}
	if !sortedUnique(r.GPUModels, cmpString) {
		return fmt.Errorf("%w: GPU models not sorted and unique", ErrBadJob)
	}
	return nil
}

// Check validates the spec's shape, including its verification policy.
// Errors wrap ErrBadJob.
func (s *JobSpec) Check() error {
	switch {
	case s.Program.Defined() == (s.Runtime != ""):
		return fmt.Errorf("%w: need exactly one of program CID and runtime", ErrBadJob)
	case s.Runtime != "" && !validName(s.Runtime):
		return fmt.Errorf("%w: runtime name longer than %d", ErrBadJob, MaxNameLen)
	case s.Segments == 0 || s.Segments > MaxSegments:
		return fmt.Errorf("%w: %d segments not in [1, %d]", ErrBadJob, s.Segments, MaxSegments)
	case len(s.Inputs) > MaxInputs:
		return fmt.Errorf("%w: %d inputs > %d", ErrBadJob, len(s.Inputs), MaxInputs)
	case len(s.Inputs) != 0 && len(s.Inputs) != int(s.Segments):
		return fmt.Errorf("%w: %d inputs for %d segments (want none or one each)", ErrBadJob, len(s.Inputs), s.Segments)
	case s.MaxPrice == 0:
		return fmt.Errorf("%w: max price 0", ErrBadJob)
	case s.Deadline == 0 || time.Duration(s.Deadline)*time.Second > maxSegmentTimeout:
		return fmt.Errorf("%w: segment deadline %ds not in (0, %s]", ErrBadJob, s.Deadline, maxSegmentTimeout)
	}
	for i, c := range s.Inputs {
		if !c.Defined() {
			return fmt.Errorf("%w: input %d undefined", ErrBadJob, i)
		}
	}
	if err := s.Require.Check(); err != nil {
		return err
	}
	p, err := ParsePolicy(s.Verify)
	if err != nil {
		return err
	}
	if p.Replicas() > MaxReplicas {
		return fmt.Errorf("%w: %d replicas > %d", ErrBadJob, p.Replicas(), MaxReplicas)
	}
	// The escrow is MaxPrice x segments x replicas; it must not overflow.
	if _, ok := mulCheck(s.MaxPrice, uint64(s.Segments)*uint64(p.Replicas())); !ok {
		return fmt.Errorf("%w: max price x segments overflows", ErrBadJob)
	}
	return nil
}

// Check validates the request's shape: the spec, the ID, the renter.
func (r *JobRequest) Check() error {
	if !validPeer(r.Renter) {
		return fmt.Errorf("%w: renter %q is not a peer ID", ErrBadJob, r.Renter)
	}
	if r.CloseAt <= 0 {
		return fmt.Errorf("%w: close time %d", ErrBadJob, r.CloseAt)
	}
	if err := r.Spec.Check(); err != nil {
		return err
	}
	id, err := r.Spec.ID()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	if !id.Equals(r.Job.Cid) {
		return fmt.Errorf("%w: job ID %s is not the spec's ID %s", ErrBadJob, r.Job, id)
	}
	return nil
}

// Check validates the bid's shape. Errors wrap ErrBadBid.
func (b *Bid) Check() error {
	switch {
	case !b.Job.Defined():
		return fmt.Errorf("%w: no job", ErrBadBid)
	case !validPeer(b.Provider):
		return fmt.Errorf("%w: provider %q is not a peer ID", ErrBadBid, b.Provider)
	case b.Price == 0:
		return fmt.Errorf("%w: price 0", ErrBadBid)
	case b.Capacity == 0:
		return fmt.Errorf("%w: capacity 0", ErrBadBid)
	case b.Expiry <= 0:
		return fmt.Errorf("%w: expiry %d", ErrBadBid, b.Expiry)
	}
	return nil
}

// Check validates the no-bid's shape. Errors wrap ErrBadBid.
func (n *NoBid) Check() error {
	switch {
	case !n.Job.Defined():
		return fmt.Errorf("%w: no-bid without job", ErrBadBid)
	case !validPeer(n.Provider):
		return fmt.Errorf("%w: provider %q is not a peer ID", ErrBadBid, n.Provider)
	case !n.Reason.valid():
		return fmt.Errorf("%w: no-bid reason %d", ErrBadBid, n.Reason)
	case len(n.Detail) > maxDetailLen:
		return fmt.Errorf("%w: no-bid detail longer than %d", ErrBadBid, maxDetailLen)
	}
	return nil
}

// DecodeOffer strictly decodes an offer payload and checks its shape.
func DecodeOffer(payload []byte) (*Offer, error) {
	var o Offer
	if err := protocol.Unmarshal(payload, &o); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	if err := o.Check(); err != nil {
		return nil, err
	}
	return &o, nil
}

// DecodeJobSpec strictly decodes a job spec and checks its shape.
func DecodeJobSpec(payload []byte) (*JobSpec, error) {
	var s JobSpec
	if err := protocol.Unmarshal(payload, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// DecodeJobRequest strictly decodes a job request payload and checks it.
func DecodeJobRequest(payload []byte) (*JobRequest, error) {
	var r JobRequest
	if err := protocol.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeBid strictly decodes a bid payload and checks its shape.
func DecodeBid(payload []byte) (*Bid, error) {
	var b Bid
	if err := protocol.Unmarshal(payload, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBid, err)
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// DecodeNoBid strictly decodes a no-bid payload and checks its shape.
func DecodeNoBid(payload []byte) (*NoBid, error) {
	var n NoBid
	if err := protocol.Unmarshal(payload, &n); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBid, err)
	}
	if err := n.Check(); err != nil {
		return nil, err
	}
	return &n, nil
}

func mulCheck(a, b uint64) (uint64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	return p, p/b == a
}
