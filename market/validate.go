package market

import (
	"fmt"
	"sync"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

// SeqLookup answers the last accepted offer sequence of a provider. The
// OrderBook implements it.
type SeqLookup interface {
	LastSeq(provider string) (seq uint64, ok bool)
}

// ValidateOffer is the offers-topic rule after the envelope's signature has
// been checked: the offer is well-formed, signed by its provider, issued no
// later than MaxClockSkew after now, not yet expired, and newer (higher Seq)
// than the last one accepted from that provider. last may be nil.
func ValidateOffer(o *Offer, author string, now time.Time, last SeqLookup) error {
	if err := o.Check(); err != nil {
		return err
	}
	if author != o.Provider {
		return fmt.Errorf("%w: offer of %s signed by %s", ErrWrongAuthor, o.Provider, author)
	}
	if time.UnixMilli(o.IssuedAt).After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: offer issued at %d", ErrFuture, o.IssuedAt)
	}
	if !now.Before(o.Expires()) {
		return fmt.Errorf("%w: at %s", ErrOfferExpired, o.Expires().UTC().Format(time.RFC3339))
	}
	if last != nil {
		if seq, ok := last.LastSeq(o.Provider); ok && o.Seq <= seq {
			return fmt.Errorf("%w: %d <= %d", ErrStaleOffer, o.Seq, seq)
		}
	}
	return nil
}

// OpenOffer authenticates a KindOffer envelope (protocol.Open: size,
// canonical encoding, chain, signature), decodes the offer and applies
// ValidateOffer.
func OpenOffer(raw []byte, chainID string, now time.Time, last SeqLookup) (*Offer, error) {
	env, author, err := openKind(raw, chainID, protocol.KindOffer)
	if err != nil {
		return nil, err
	}
	o, err := DecodeOffer(env.Payload)
	if err != nil {
		return nil, err
	}
	if err := ValidateOffer(o, author, now, last); err != nil {
		return nil, err
	}
	return o, nil
}

// ValidateJobRequest is the jobs-topic rule after the envelope's signature
// has been checked: the request is well-formed, signed by its renter, its
// job ID is its spec's, and its auction is still open and closes within
// MaxAuctionWindow of now. Whether the job is funded is the chain's answer
// (the OpenJob tx).
func ValidateJobRequest(r *JobRequest, author string, now time.Time) error {
	if err := r.Check(); err != nil {
		return err
	}
	if author != r.Renter {
		return fmt.Errorf("%w: job of %s signed by %s", ErrWrongAuthor, r.Renter, author)
	}
	closeAt := time.UnixMilli(r.CloseAt)
	if !now.Before(closeAt) {
		return fmt.Errorf("%w: job closed at %d", ErrAuctionClosed, r.CloseAt)
	}
	if closeAt.After(now.Add(MaxAuctionWindow)) {
		return fmt.Errorf("%w: auction closes more than %s ahead", ErrBadJob, MaxAuctionWindow)
	}
	return nil
}

// OpenJobRequest authenticates a KindJob envelope, decodes the request and
// applies ValidateJobRequest.
func OpenJobRequest(raw []byte, chainID string, now time.Time) (*JobRequest, error) {
	env, author, err := openKind(raw, chainID, protocol.KindJob)
	if err != nil {
		return nil, err
	}
	r, err := DecodeJobRequest(env.Payload)
	if err != nil {
		return nil, err
	}
	if err := ValidateJobRequest(r, author, now); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenNoBid authenticates a KindNoBid envelope and checks that its
// provider signed it. Whether the job is one the caller follows is the
// caller's filter (BidSet.AddNoBid ignores other jobs).
func OpenNoBid(raw []byte, chainID string) (*NoBid, error) {
	env, author, err := openKind(raw, chainID, KindNoBid)
	if err != nil {
		return nil, err
	}
	n, err := DecodeNoBid(env.Payload)
	if err != nil {
		return nil, err
	}
	if author != n.Provider {
		return nil, fmt.Errorf("%w: no-bid of %s signed by %s", ErrWrongAuthor, n.Provider, author)
	}
	return n, nil
}

func openKind(raw []byte, chainID string, kind protocol.Kind) (*protocol.Envelope, string, error) {
	env, err := protocol.Open(raw, chainID)
	if err != nil {
		return nil, "", err
	}
	if env.Kind != kind {
		return nil, "", fmt.Errorf("%w: %q, want %q", ErrWrongKind, env.Kind, kind)
	}
	id, err := env.AuthorID()
	if err != nil {
		return nil, "", err
	}
	return env, id.String(), nil
}

// JobLookup answers the open auctions a node knows of (the renter's own, or
// the job requests it has seen gossiped).
type JobLookup interface {
	Job(id protocol.CID) (*JobRequest, bool)
}

// StakeChecker says whether a provider may bid: it has at least the minimum
// provider stake and is not jailed. The consensus layer implements it from
// the committed ledger state.
type StakeChecker interface {
	Staked(provider string) bool
}

// ReplaySet says whether a (provider, job, nonce) was seen before.
type ReplaySet interface {
	Seen(k BidKey) bool
}

// BidKey identifies a bid for replay protection.
type BidKey struct {
	Provider string
	Job      string // CID string
	Nonce    uint64
}

// KeyOf is b's replay key.
func KeyOf(b *Bid) BidKey { return BidKey{b.Provider, b.Job.String(), b.Nonce} }

// ValidateBid is the bids-topic rule after the envelope's signature has been
// checked. In order: shape, signer is the provider, the job is known, the
// auction has not closed, the price is within the job's max, the bid has not
// expired (and does not claim to live longer than MaxBidLifetime), it is not
// a replay, and the provider is staked. Each failure wraps its own sentinel.
func ValidateBid(b *Bid, author string, now time.Time, jobs JobLookup, stakes StakeChecker, seen ReplaySet) error {
	if err := b.Check(); err != nil {
		return err
	}
	if author != b.Provider {
		return fmt.Errorf("%w: bid of %s signed by %s", ErrWrongAuthor, b.Provider, author)
	}
	job, ok := jobs.Job(b.Job)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownJob, b.Job)
	}
	if !now.Before(time.UnixMilli(job.CloseAt)) {
		return fmt.Errorf("%w: closed at %d", ErrAuctionClosed, job.CloseAt)
	}
	if b.Price > job.Spec.MaxPrice {
		return fmt.Errorf("%w: %d > %d", ErrAboveMax, b.Price, job.Spec.MaxPrice)
	}
	exp := time.UnixMilli(b.Expiry)
	if !now.Before(exp) {
		return fmt.Errorf("%w: at %d", ErrBidExpired, b.Expiry)
	}
	if exp.After(now.Add(MaxBidLifetime)) {
		return fmt.Errorf("%w: expiry %d more than %s ahead", ErrBadBid, b.Expiry, MaxBidLifetime)
	}
	if seen != nil && seen.Seen(KeyOf(b)) {
		return fmt.Errorf("%w: nonce %d", ErrReplayed, b.Nonce)
	}
	if !stakes.Staked(b.Provider) {
		return fmt.Errorf("%w: %s", ErrNotStaked, b.Provider)
	}
	return nil
}

// ReplayFilter remembers accepted bid keys until their bid expires. Safe
// for concurrent use.
type ReplayFilter struct {
	mu   sync.Mutex // guards seen
	seen map[BidKey]int64
}

// NewReplayFilter returns an empty filter.
func NewReplayFilter() *ReplayFilter { return &ReplayFilter{seen: make(map[BidKey]int64)} }

// Seen implements ReplaySet.
func (f *ReplayFilter) Seen(k BidKey) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.seen[k]
	return ok
}

// Add records k, remembered until expiry (unix ms). It reports false if k
// was already there.
func (f *ReplayFilter) Add(k BidKey, expiry int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.seen[k]; ok {
		return false
	}
	f.seen[k] = expiry
	return true
}

// Prune forgets keys whose bids expired by now: such a bid is rejected as
// expired anyway, so forgetting it cannot readmit a replay.
func (f *ReplayFilter) Prune(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	ms := now.UnixMilli()
	for k, exp := range f.seen {
		if exp <= ms {
			delete(f.seen, k)
			n++
		}
	}
	return n
}

// Len is the number of remembered keys.
func (f *ReplayFilter) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// BidValidator is the whole bids-topic validator a node registers with
// pubsub: authenticate, decode, ValidateBid, and remember the key so the
// same bid is not admitted twice.
type BidValidator struct {
	ChainID string
	Jobs    JobLookup
	Stakes  StakeChecker
	Replays *ReplayFilter
}

// Validate checks raw at now and returns the bid and its envelope (which
// the AwardLease tx will carry) if it is admitted.
func (v *BidValidator) Validate(raw []byte, now time.Time) (*Bid, *protocol.Envelope, error) {
	env, author, err := openKind(raw, v.ChainID, protocol.KindBid)
	if err != nil {
		return nil, nil, err
	}
	b, err := DecodeBid(env.Payload)
	if err != nil {
		return nil, nil, err
	}
	if err := ValidateBid(b, author, now, v.Jobs, v.Stakes, v.Replays); err != nil {
		return nil, nil, err
	}
	// Add is the atomic check: of two copies validated at once, one wins.
	if !v.Replays.Add(KeyOf(b), b.Expiry) {
		return nil, nil, fmt.Errorf("%w: nonce %d", ErrReplayed, b.Nonce)
	}
	return b, env, nil
}
