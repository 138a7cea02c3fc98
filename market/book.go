package market

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

// OrderBook holds the latest valid offer of each provider. Safe for
// concurrent use; the caller passes the time.
type OrderBook struct {
	max int // most providers held

	mu     sync.RWMutex      // guards offers
	offers map[string]*Offer // by provider
}

// BookOption configures an OrderBook.
type BookOption func(*OrderBook) error

// WithMaxOffers bounds the number of providers the book holds (default
// 100,000), so a flood of offers from fresh peer IDs cannot exhaust memory.
// When the book is full, an offer from a new provider is refused with
// ErrBookFull unless an expired offer can make room.
func WithMaxOffers(n int) BookOption {
	return func(b *OrderBook) error {
		if n <= 0 {
			return fmt.Errorf("market: WithMaxOffers(%d): must be positive", n)
		}
		b.max = n
		return nil
	}
}

// NewOrderBook returns an empty book.
func NewOrderBook(opts ...BookOption) (*OrderBook, error) {
	b := &OrderBook{max: 100_000, offers: make(map[string]*Offer)}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// LastSeq implements SeqLookup.
func (b *OrderBook) LastSeq(provider string) (uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	o, ok := b.offers[provider]
	if !ok {
		return 0, false
	}
	return o.Seq, true
}

// Put validates o (ValidateOffer with the book's sequence numbers) and
// stores it, replacing the provider's older offer. author is the envelope's
// signer. A rejected offer changes nothing.
func (b *OrderBook) Put(o *Offer, author string, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ValidateOffer(o, author, now, lockedSeqs{b}); err != nil {
		return err
	}
	if _, ok := b.offers[o.Provider]; !ok && len(b.offers) >= b.max {
		b.expireLocked(now)
		if len(b.offers) >= b.max {
			return fmt.Errorf("%w: %d offers", ErrBookFull, len(b.offers))
		}
	}
	c := *o
	b.offers[o.Provider] = &c
	return nil
}

// lockedSeqs reads sequences while the caller holds b.mu.
type lockedSeqs struct{ b *OrderBook }

func (l lockedSeqs) LastSeq(p string) (uint64, bool) {
	o, ok := l.b.offers[p]
	if !ok {
		return 0, false
	}
	return o.Seq, true
}

// Expire drops offers whose TTL has run out by now and returns how many.
// Their sequence numbers are forgotten too: a replay of such an offer is
// itself expired and rejected.
func (b *OrderBook) Expire(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.expireLocked(now)
}

func (b *OrderBook) expireLocked(now time.Time) int {
	n := 0
	for p, o := range b.offers {
		if !now.Before(o.Expires()) {
			delete(b.offers, p)
			n++
		}
	}
	return n
}

// Get returns provider's offer if it is still valid at now.
func (b *OrderBook) Get(provider string, now time.Time) (Offer, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	o, ok := b.offers[provider]
	if !ok || !now.Before(o.Expires()) {
		return Offer{}, false
	}
	return *o, true
}

// Len is the number of offers held, expired or not.
func (b *OrderBook) Len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.offers)
}

// All lists the offers valid at now, by provider ID.
func (b *OrderBook) All(now time.Time) []Offer {
	return b.Match(nil, now)
}

// Match lists the offers valid at now, not disconnected, that meet r (all
// of them if r is nil), ordered by quoted price for r (when r is given)
// then provider ID.
func (b *OrderBook) Match(r *Requirements, now time.Time) []Offer {
	type hit struct {
		o     *Offer
		price uint64
		ok    bool // has a price for r
	}
	b.mu.RLock()
	hits := make([]hit, 0, len(b.offers))
	for _, o := range b.offers {
		if !now.Before(o.Expires()) {
			continue
		}
		if r == nil {
			hits = append(hits, hit{o: o})
			continue
		}
		if o.Status == StatusDisconnected || !o.Meets(r) {
			continue
		}
		p, ok := Quote(o.Prices, r, o.GPUs)
		hits = append(hits, hit{o, p, ok})
	}
	// Sort and copy under the read lock: the pointers are the book's.
	out := make([]Offer, len(hits))
	slices.SortFunc(hits, func(a, c hit) int {
		if a.ok != c.ok { // unpriced offers last
			if a.ok {
				return -1
			}
			return 1
		}
		if x := cmpU64(a.price, c.price); x != 0 {
			return x
		}
		return strings.Compare(a.o.Provider, c.o.Provider)
	})
	for i, h := range hits {
		out[i] = *h.o
	}
	b.mu.RUnlock()
	return out
}

// PriceStats summarises recent awarded prices of one GPU model (per
// segment). Quartiles are nearest-rank over the window.
type PriceStats struct {
	Count  int
	Min    uint64
	Q1     uint64
	Median uint64
	Q3     uint64
	Max    uint64
}

// PriceIndex keeps the last Window awarded prices per GPU model. Safe for
// concurrent use.
type PriceIndex struct {
	window int
	mu     sync.Mutex // guards rings
	rings  map[string]*ring
}

type ring struct {
	vals []uint64
	next int
}

// NewPriceIndex keeps window prices per model (256 if window <= 0).
func NewPriceIndex(window int) *PriceIndex {
	if window <= 0 {
		window = 256
	}
	return &PriceIndex{window: window, rings: make(map[string]*ring)}
}

// Record adds an awarded price for model ("" for CPU-only work).
func (p *PriceIndex) Record(model string, price uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rings[model]
	if r == nil {
		r = &ring{}
		p.rings[model] = r
	}
	if len(r.vals) < p.window {
		r.vals = append(r.vals, price)
		return
	}
	r.vals[r.next] = price
	r.next = (r.next + 1) % p.window
}

// RecordAward records every winner's price under the job's GPU models: the
// single accepted model, or "*" when the job accepts several or any, or ""
// for CPU-only work.
func (p *PriceIndex) RecordAward(job *JobSpec, res *Result) {
	model := "*"
	switch {
	case job.Require.GPUCount == 0:
		model = ""
	case len(job.Require.GPUModels) == 1:
		model = job.Require.GPUModels[0]
	}
	for _, w := range res.Winners {
		for range w.Segments {
			p.Record(model, w.Bid.Price)
		}
	}
}

// Stats summarises model's window; ok is false if nothing was recorded.
func (p *PriceIndex) Stats(model string) (PriceStats, bool) {
	p.mu.Lock()
	r := p.rings[model]
	var vals []uint64
	if r != nil {
		vals = slices.Clone(r.vals)
	}
	p.mu.Unlock()
	if len(vals) == 0 {
		return PriceStats{}, false
	}
	slices.Sort(vals)
	n := len(vals)
	rank := func(pct int) uint64 { // nearest rank: ceil(pct/100 * n), 1-based
		i := (pct*n + 99) / 100
		return vals[max(i, 1)-1]
	}
	return PriceStats{Count: n, Min: vals[0], Q1: rank(25), Median: rank(50), Q3: rank(75), Max: vals[n-1]}, true
}

// Models lists the models with recorded prices, sorted.
func (p *PriceIndex) Models() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.rings))
	for m := range p.rings {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// BidSet collects a job's admitted bids and no-bids: the latest bid (highest
// nonce) per provider, and each provider's latest reason for not bidding,
// so the renter can say why it got no bids. Safe for concurrent use.
type BidSet struct {
	Job protocol.CID

	mu     sync.Mutex // guards bids and nobids
	bids   map[string]Bid
	nobids map[string]NoBid
}

// NewBidSet returns an empty set for job.
func NewBidSet(job protocol.CID) *BidSet {
	return &BidSet{Job: job, bids: make(map[string]Bid), nobids: make(map[string]NoBid)}
}

// AddBid keeps b if it is for this job and newer than the provider's last
// bid; a bid supersedes the provider's no-bid. It reports whether b was kept.
func (s *BidSet) AddBid(b Bid) bool {
	if !b.Job.Equals(s.Job.Cid) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.bids[b.Provider]; ok && old.Nonce >= b.Nonce {
		return false
	}
	s.bids[b.Provider] = b
	delete(s.nobids, b.Provider)
	return true
}

// AddNoBid records n unless the provider has bid.
func (s *BidSet) AddNoBid(n NoBid) bool {
	if !n.Job.Equals(s.Job.Cid) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.bids[n.Provider]; ok {
		return false
	}
	s.nobids[n.Provider] = n
	return true
}

// Bids lists the bids by provider ID.
func (s *BidSet) Bids() []Bid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Bid, 0, len(s.bids))
	for _, b := range s.bids {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Bid) int { return strings.Compare(a.Provider, b.Provider) })
	return out
}

// NoBids lists the reasons by provider ID: the answer to "why no bids?".
func (s *BidSet) NoBids() []NoBid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NoBid, 0, len(s.nobids))
	for _, n := range s.nobids {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NoBid) int { return strings.Compare(a.Provider, b.Provider) })
	return out
}
