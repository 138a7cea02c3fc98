package market

import (
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

func testInventory() *Inventory {
	o := testOffer("x", 1)
	return &Inventory{Hardware: o.Hardware(), Prices: o.Prices, FreeSlots: 4, TotalSlots: 8}
}

func TestBidEngineDecide(t *testing.T) {
	p := key(t, 1)
	e := &BidEngine{Provider: p.id, Hold: time.Minute}
	renter := key(t, 9).id

	tests := []struct {
		name     string
		editSpec func(s *JobSpec)
		editInv  func(i *Inventory)
		now      time.Time
		want     NoBidReason
	}{
		{"bids", nil, nil, t0, 0},
		{"model", func(s *JobSpec) { s.Require.GPUModels = []string{"H100"} }, nil, t0, ReasonGPUModel},
		{"VRAM", func(s *JobSpec) { s.Require.MinVRAM = 96 * gib }, nil, t0, ReasonVRAM},
		{"count", func(s *JobSpec) { s.Require.GPUCount = 7 }, nil, t0, ReasonGPUCount},
		{"count of suitable", func(s *JobSpec) { s.Require.GPUCount = 5; s.Require.MinVRAM = 40 * gib }, nil, t0, ReasonGPUCount},
		{"executor", func(s *JobSpec) { s.Require.Executor = "docker" }, nil, t0, ReasonExecutor},
		{"region", func(s *JobSpec) { s.Require.Region = "us" }, nil, t0, ReasonRegion},
		{"capacity", nil, func(i *Inventory) { i.FreeSlots = 0 }, t0, ReasonNoCapacity},
		{"price floor", func(s *JobSpec) { s.Require.GPUModels = []string{"A100"}; s.MaxPrice = 99 }, nil, t0, ReasonPriceAboveMax},
		{"no price", nil, func(i *Inventory) { i.Prices = i.Prices[:1] }, t0, ReasonNoPrice},
		{"exiting", nil, func(i *Inventory) { i.Exiting = true }, t0, ReasonExiting},
		{"closed", nil, nil, t0.Add(30 * time.Second), ReasonClosed},
	}
	for _, tt := range tests {
		spec := testSpec()
		if tt.editSpec != nil {
			tt.editSpec(&spec)
		}
		if err := spec.Check(); err != nil {
			t.Fatalf("%s: spec: %v", tt.name, err)
		}
		inv := testInventory()
		if tt.editInv != nil {
			tt.editInv(inv)
		}
		req := testRequest(t, renter, spec)
		bid, no := e.Decide(inv, req, tt.now, 1)
		if tt.want == 0 {
			if no != nil || bid == nil {
				t.Fatalf("%s: Decide = no-bid %v", tt.name, no)
			}
			// The cheapest suitable GPU (RTX4090 at 40), capacity capped by free slots.
			want := Bid{Job: req.Job, Provider: p.id, Price: 40, Capacity: 4, Expiry: req.CloseAt + 60_000, Nonce: 1}
			if *bid != want {
				t.Fatalf("%s: bid %+v, want %+v", tt.name, *bid, want)
			}
			if err := bid.Check(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if bid != nil || no == nil || no.Reason != tt.want {
			t.Errorf("%s: Decide = %+v, %v; want reason %v", tt.name, bid, no, tt.want)
			continue
		}
		if err := no.Check(); err != nil {
			t.Errorf("%s: no-bid does not pass its own check: %v", tt.name, err)
		}
	}
}

func TestQuote(t *testing.T) {
	o := testOffer("x", 1)
	r := Requirements{GPUModels: []string{"A100", "RTX4090"}, GPUCount: 3, Executor: "wasm"}
	// Two RTX4090 at 40 and one A100 at 100.
	if p, ok := Quote(o.Prices, &r, o.GPUs); !ok || p != 180 {
		t.Fatalf("Quote 3 GPUs = %d, %v; want 180", p, ok)
	}
	r = Requirements{Executor: "wasm"}
	if p, ok := Quote(o.Prices, &r, o.GPUs); !ok || p != 5 {
		t.Fatalf("Quote CPU = %d, %v; want 5", p, ok)
	}
	r.Executor = "process"
	if _, ok := Quote(o.Prices, &r, o.GPUs); ok {
		t.Fatal("Quote without a price for the executor succeeded")
	}
}

func TestUtilisationPricing(t *testing.T) {
	req := testRequest(t, key(t, 9).id, testSpec())
	u := UtilisationPricing{MaxSurchargePercent: 50}
	for _, tt := range []struct {
		free, total uint32
		want        uint64
	}{
		{8, 8, 40}, // idle: list price
		{4, 8, 50}, // half full: +25%
		{1, 8, 57}, // 7/8 busy: 40 + 40*50*7/800 = 57.5, rounded down
		{0, 0, 40}, // no slot count: list price
	} {
		inv := testInventory()
		inv.FreeSlots, inv.TotalSlots = tt.free, tt.total
		if got, ok := u.Price(req, inv); !ok || got != tt.want {
			t.Errorf("free %d/%d: price %d, %v; want %d", tt.free, tt.total, got, ok, tt.want)
		}
	}
	e := &BidEngine{Provider: key(t, 1).id, Strategy: UtilisationPricing{MaxSurchargePercent: 300}}
	inv := testInventory()
	inv.FreeSlots = 1
	req.Spec.MaxPrice = 100
	if _, no := e.Decide(inv, req, t0, 1); no == nil || no.Reason != ReasonPriceAboveMax {
		t.Fatalf("busy provider's surcharge above max: %v", no)
	}
}

// TestWhyNoBids is issue 6 acceptance 4 at the core's level: a job no
// provider can serve gets no bids, and the renter learns each provider's
// reason from the gossiped no-bids.
func TestWhyNoBids(t *testing.T) {
	renter := key(t, 9)
	spec := testSpec()
	spec.Require = Requirements{GPUModels: []string{"A100"}, MinVRAM: 80 * gib, GPUCount: 2, Executor: "wasm", Region: "eu"}
	spec.MaxPrice = 150
	req := testRequest(t, renter.id, spec)

	type prov struct {
		edit func(i *Inventory)
		want NoBidReason
	}
	provs := []prov{
		{func(i *Inventory) { i.GPUs = []GPUGroup{{Model: "RTX4090", VRAM: 24 * gib, Count: 8}} }, ReasonGPUModel},
		{func(i *Inventory) { i.GPUs = []GPUGroup{{Model: "A100", VRAM: 40 * gib, Count: 8}} }, ReasonVRAM},
		{func(i *Inventory) { i.GPUs = []GPUGroup{{Model: "A100", VRAM: 80 * gib, Count: 1}} }, ReasonGPUCount},
		{func(i *Inventory) { i.Region = "us" }, ReasonRegion},
		{func(i *Inventory) { i.FreeSlots = 0 }, ReasonNoCapacity},
		{func(i *Inventory) {}, ReasonPriceAboveMax}, // two A100 at 100 = 200 > 150
	}
	set := NewBidSet(req.Job)
	want := map[string]NoBidReason{}
	for n, pv := range provs {
		k := key(t, int64(n+1))
		inv := testInventory()
		pv.edit(inv)
		bid, no := (&BidEngine{Provider: k.id}).Decide(inv, req, t0, 1)
		if bid != nil {
			t.Fatalf("provider %d bid %+v", n, bid)
		}
		// Over the wire and back, as the renter receives it.
		env, err := protocol.Open(seal(t, k, KindNoBid, no), testChain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeNoBid(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		set.AddNoBid(*got)
		want[k.id] = pv.want
	}
	if len(set.Bids()) != 0 {
		t.Fatalf("bids: %+v", set.Bids())
	}
	nb := set.NoBids()
	if len(nb) != len(provs) {
		t.Fatalf("%d reasons, want %d", len(nb), len(provs))
	}
	for _, n := range nb {
		if n.Reason != want[n.Provider] {
			t.Errorf("%s: reason %v, want %v", n.Provider, n.Reason, want[n.Provider])
		}
		if n.String() == "" {
			t.Errorf("%s: empty explanation", n.Provider)
		}
	}
	res, err := Award(&AwardRequest{Job: req, Now: t0})
	if err != nil || len(res.Winners) != 0 || len(res.Unassigned) != int(spec.Segments) {
		t.Fatalf("Award without bids = %+v, %v", res, err)
	}
}
