package bench

import (
	"math/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/protocol"
)

// awardMarket is an order book of nOffers providers and a job with bids
// from nBids of them, built from a fixed seed.
type awardMarket struct {
	now  time.Time
	book *market.OrderBook
	job  *market.JobRequest
	bids []market.Bid
	rep  map[string]int64
}

func newAwardMarket(b *testing.B, nOffers, nBids int) *awardMarket {
	b.Helper()
	r := rand.New(rand.NewSource(6))
	now := time.UnixMilli(1_800_000_000_000)
	book, err := market.NewOrderBook()
	if err != nil {
		b.Fatal(err)
	}
	m := &awardMarket{now: now, book: book, rep: map[string]int64{}}
	models := []string{"A100", "H100", "L40S", "RTX4090"}
	ids := make([]string, nOffers)
	for i := range ids {
		priv, _, err := crypto.GenerateEd25519Key(r)
		if err != nil {
			b.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(priv)
		ids[i] = id.String()
		model := models[i%len(models)]
		o := &market.Offer{
			Provider: ids[i], Seq: 1, IssuedAt: now.UnixMilli(), TTL: 600, Status: market.StatusIdle,
			GPUs:      []market.GPUGroup{{Model: model, VRAM: 80 << 30, Count: uint32(1 + r.Intn(8))}},
			CPUCores:  32,
			Memory:    256 << 30,
			Executors: []string{"wasm"},
			Region:    "eu",
			Prices:    []market.Price{{Model: model, Executor: "wasm", PerSegment: uint64(50 + r.Intn(100))}},
			FreeSlots: 8,
		}
		if err := m.book.Put(o, o.Provider, now); err != nil {
			b.Fatal(err)
		}
		m.rep[ids[i]] = int64(r.Intn(100))
	}
	spec := market.JobSpec{
		Program:  protocol.NewCID(protocol.BlockCID([]byte("program"))),
		Require:  market.Requirements{GPUModels: []string{"A100"}, MinVRAM: 40 << 30, GPUCount: 1, Executor: "wasm"},
		Segments: 1000,
		MaxPrice: 140,
		Deadline: 600,
		Verify:   "replicate:2",
	}
	id, err := spec.ID()
	if err != nil {
		b.Fatal(err)
	}
	m.job = &market.JobRequest{Job: id, Spec: spec, Renter: ids[0], CloseAt: now.UnixMilli()}
	for _, i := range r.Perm(nOffers)[:nBids] {
		m.bids = append(m.bids, market.Bid{
			Job: id, Provider: ids[i], Price: uint64(40 + r.Intn(120)), Capacity: uint32(1 + r.Intn(16)),
			Expiry: now.Add(time.Minute).UnixMilli(), Nonce: 1,
		})
	}
	return m
}

// BenchmarkAward awards a 1,000-segment replicate:2 job among 10,000
// offers and 1,000 bids (issue 6 acceptance 6; target under 10 ms): for
// each bid, the bidder's live offer is looked up in the order book and
// checked against the requirements, then Award ranks all eligible bids and
// assigns the segments. It reports ns/op and ms/award.
func BenchmarkAward(b *testing.B) {
	m := newAwardMarket(b, 10_000, 1_000)
	b.ResetTimer()
	var res *market.Result
	for b.Loop() {
		cands := make([]market.Candidate, 0, len(m.bids))
		for _, bid := range m.bids {
			o, ok := m.book.Get(bid.Provider, m.now)
			if !ok || o.Status == market.StatusDisconnected {
				continue
			}
			cands = append(cands, market.Candidate{Bid: bid, Reputation: m.rep[bid.Provider]})
		}
		var err error
		res, err = market.Award(&market.AwardRequest{Job: m.job, Now: m.now, Bids: cands})
		if err != nil {
			b.Fatal(err)
		}
	}
	if len(res.Awarded) != int(m.job.Spec.Segments) {
		b.Fatalf("awarded %d of %d segments", len(res.Awarded), m.job.Spec.Segments)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/award")
	b.ReportMetric(float64(len(res.Winners)), "winners")
}

// BenchmarkOrderBookMatch queries 10,000 offers for a job's requirements,
// ordered by quoted price: what `gpunode offers` and the renter's pre-check
// cost.
func BenchmarkOrderBookMatch(b *testing.B) {
	m := newAwardMarket(b, 10_000, 1)
	b.ResetTimer()
	var n int
	for b.Loop() {
		n = len(m.book.Match(&m.job.Spec.Require, m.now))
	}
	if n == 0 {
		b.Fatal("no offer matched")
	}
	b.ReportMetric(float64(n), "matches")
}
