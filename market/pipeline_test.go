package market

import (
	"reflect"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

// TestAuctionPipeline runs the chain-free part of a job's life as the nodes
// will: five providers with different prices and capacities decide on a
// 10-segment job, their bids travel sealed and pass the renter's gossip
// validator, and the award goes to the cheapest within capacity; the price
// index learns the awarded prices.
func TestAuctionPipeline(t *testing.T) {
	renter := key(t, 100)
	spec := testSpec()
	spec.Require = Requirements{GPUModels: []string{"A100"}, MinVRAM: 40 * gib, GPUCount: 1, Executor: "wasm"}
	spec.Segments = 10
	spec.MaxPrice = 100
	req := testRequest(t, renter.id, spec)
	raw := seal(t, renter, protocol.KindJob, req)

	type prov struct {
		price uint64
		free  uint32
	}
	provs := []prov{{60, 4}, {50, 3}, {90, 10}, {70, 5}, {120, 10}}
	keys := make([]testKey, len(provs))
	stakes := stakeSet{}
	book := newBook(t)
	for i, p := range provs {
		keys[i] = key(t, int64(i+1))
		stakes[keys[i].id] = true
		o := testOffer(keys[i].id, 1)
		o.GPUs = []GPUGroup{{Model: "A100", VRAM: 80 * gib, Count: 2}}
		o.Prices = []Price{{Model: "A100", Executor: "wasm", PerSegment: p.price}}
		o.FreeSlots = p.free
		if _, err := OpenOffer(seal(t, keys[i], protocol.KindOffer, o), testChain, t0, book); err != nil {
			t.Fatal(err)
		}
		if err := book.Put(o, keys[i].id, t0); err != nil {
			t.Fatal(err)
		}
	}

	jobs := jobMap{}
	v := &BidValidator{ChainID: testChain, Jobs: jobs, Stakes: stakes, Replays: NewReplayFilter()}
	got, err := OpenJobRequest(raw, testChain, t0)
	if err != nil {
		t.Fatal(err)
	}
	jobs[got.Job.String()] = got
	set := NewBidSet(got.Job)
	for i, k := range keys {
		o, _ := book.Get(k.id, t0)
		inv := &Inventory{Hardware: o.Hardware(), Prices: o.Prices, FreeSlots: provs[i].free, TotalSlots: provs[i].free}
		bid, no := (&BidEngine{Provider: k.id}).Decide(inv, got, t0, 1)
		if no != nil {
			n, err := OpenNoBid(seal(t, k, KindNoBid, no), testChain)
			if err != nil {
				t.Fatal(err)
			}
			set.AddNoBid(*n)
			continue
		}
		b, _, err := v.Validate(seal(t, k, protocol.KindBid, bid), t0)
		if err != nil {
			t.Fatalf("provider %d: %v", i, err)
		}
		set.AddBid(*b)
	}
	if nb := set.NoBids(); len(nb) != 1 || nb[0].Provider != keys[4].id || nb[0].Reason != ReasonPriceAboveMax {
		t.Fatalf("no-bids %+v, want provider 4 over max price", nb)
	}
	var cands []Candidate
	for _, b := range set.Bids() {
		cands = append(cands, Candidate{Bid: b})
	}
	res, err := Award(&AwardRequest{Job: got, Now: t0.Add(30 * time.Second), Bids: cands})
	if err != nil {
		t.Fatal(err)
	}
	// 50 x3, 60 x4, 70 x3 (of its 5); the 90 provider is not needed.
	want := map[string][]uint32{keys[1].id: {0, 1, 2}, keys[0].id: {3, 4, 5, 6}, keys[3].id: {7, 8, 9}}
	if g := shares(res); !reflect.DeepEqual(g, want) {
		t.Fatalf("award %v, want %v", g, want)
	}
	if res.Cost != 50*3+60*4+70*3 {
		t.Fatalf("cost %d", res.Cost)
	}
	idx := NewPriceIndex(0)
	idx.RecordAward(&got.Spec, res)
	if st, _ := idx.Stats("A100"); st != (PriceStats{Count: 10, Min: 50, Q1: 50, Median: 60, Q3: 70, Max: 70}) {
		t.Fatalf("price index %+v", st)
	}
}
