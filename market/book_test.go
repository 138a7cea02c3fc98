package market

import (
	"errors"
	"testing"
	"time"
)

func TestOrderBook(t *testing.T) {
	a, b, c := key(t, 1), key(t, 2), key(t, 3)
	book := newBook(t)

	oa := testOffer(a.id, 1) // A100 x4 at 100, RTX4090 x2 at 40
	ob := testOffer(b.id, 1)
	ob.GPUs = []GPUGroup{{Model: "A100", VRAM: 40 * gib, Count: 8}}
	ob.Prices = []Price{{Model: "A100", Executor: "wasm", PerSegment: 70}}
	ob.TTL = 10
	oc := testOffer(c.id, 1)
	oc.Status = StatusDisconnected
	for _, o := range []*Offer{oa, ob, oc} {
		if err := book.Put(o, o.Provider, t0); err != nil {
			t.Fatal(err)
		}
	}

	// Replacement by sequence: a newer offer replaces, a stale one changes nothing.
	oa2 := testOffer(a.id, 2)
	oa2.FreeSlots = 1
	if err := book.Put(oa2, a.id, t0); err != nil {
		t.Fatal(err)
	}
	if err := book.Put(testOffer(a.id, 2), a.id, t0); !errors.Is(err, ErrStaleOffer) {
		t.Fatalf("stale Put = %v", err)
	}
	if got, _ := book.Get(a.id, t0); got.Seq != 2 || got.FreeSlots != 1 {
		t.Fatalf("Get = seq %d free %d, want the seq-2 offer", got.Seq, got.FreeSlots)
	}

	// Queries: disconnected providers never match; cheapest quote first.
	r := Requirements{GPUModels: []string{"A100"}, MinVRAM: 40 * gib, GPUCount: 2, Executor: "wasm"}
	got := book.Match(&r, t0)
	if len(got) != 2 || got[0].Provider != b.id || got[1].Provider != a.id {
		t.Fatalf("Match = %v, want [%s %s]", providers(got), b.id, a.id)
	}
	r.MinVRAM = 80 * gib
	if got := book.Match(&r, t0); len(got) != 1 || got[0].Provider != a.id {
		t.Fatalf("Match 80 GiB = %v, want [%s]", providers(got), a.id)
	}
	r.Region = "us"
	if got := book.Match(&r, t0); len(got) != 0 {
		t.Fatalf("Match region us = %v, want none", providers(got))
	}

	// Expiry by TTL.
	later := t0.Add(10 * time.Second)
	if _, ok := book.Get(b.id, later); ok {
		t.Fatal("Get returned an expired offer")
	}
	if n := book.Expire(later); n != 1 || book.Len() != 2 {
		t.Fatalf("Expire dropped %d, len %d; want 1, 2", n, book.Len())
	}
	if all := book.All(later); len(all) != 2 || all[0].Provider > all[1].Provider {
		t.Fatalf("All = %v", providers(all))
	}
	if n := book.Expire(t0.Add(time.Minute)); n != 2 || book.Len() != 0 {
		t.Fatalf("Expire at TTL dropped %d, len %d", n, book.Len())
	}
}

func TestOrderBookFull(t *testing.T) {
	if _, err := NewOrderBook(WithMaxOffers(0)); err == nil {
		t.Fatal("WithMaxOffers(0) accepted")
	}
	a, b, c := key(t, 1), key(t, 2), key(t, 3)
	book := newBook(t, WithMaxOffers(2))
	short := testOffer(a.id, 1)
	short.TTL = 5
	for _, o := range []*Offer{short, testOffer(b.id, 1)} {
		if err := book.Put(o, o.Provider, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := book.Put(testOffer(c.id, 1), c.id, t0); !errors.Is(err, ErrBookFull) {
		t.Fatalf("Put into a full book = %v, want ErrBookFull", err)
	}
	if err := book.Put(testOffer(b.id, 2), b.id, t0); err != nil {
		t.Fatalf("update of a held provider in a full book: %v", err)
	}
	// Once a's offer has expired, it makes room.
	later := t0.Add(5 * time.Second)
	nc := testOffer(c.id, 1)
	nc.IssuedAt = later.UnixMilli()
	if err := book.Put(nc, c.id, later); err != nil {
		t.Fatalf("Put after expiry: %v", err)
	}
	if _, ok := book.Get(a.id, later); ok || book.Len() != 2 {
		t.Fatalf("expired offer still held, len %d", book.Len())
	}
}

func providers(os []Offer) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.Provider)
	}
	return out
}

func TestPriceIndex(t *testing.T) {
	p := NewPriceIndex(8)
	if _, ok := p.Stats("A100"); ok {
		t.Fatal("Stats of an empty index")
	}
	for _, v := range []uint64{100, 1, 2, 3, 4, 5, 6, 7, 8, 9} { // the window keeps the last 8: 2..9
		p.Record("A100", v)
	}
	p.Record("H100", 50)
	got, _ := p.Stats("A100")
	want := PriceStats{Count: 8, Min: 2, Q1: 3, Median: 5, Q3: 7, Max: 9}
	if got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if got, _ := p.Stats("H100"); got != (PriceStats{1, 50, 50, 50, 50, 50}) {
		t.Fatalf("Stats one value = %+v", got)
	}
	if m := p.Models(); len(m) != 2 || m[0] != "A100" || m[1] != "H100" {
		t.Fatalf("Models = %v", m)
	}

	spec := testSpec()
	spec.Require.GPUModels = []string{"H100"}
	p.RecordAward(&spec, &Result{Winners: []Winner{{Bid: Bid{Price: 70}, Segments: []uint32{0, 1, 2}}}})
	if got, _ := p.Stats("H100"); got.Count != 4 || got.Median != 70 || got.Min != 50 {
		t.Fatalf("after award Stats = %+v", got)
	}
}

func TestBidSet(t *testing.T) {
	a, b := key(t, 1), key(t, 2)
	req := testRequest(t, key(t, 9).id, testSpec())
	s := NewBidSet(req.Job)
	if !s.AddNoBid(NoBid{Job: req.Job, Provider: a.id, Reason: ReasonNoCapacity}) {
		t.Fatal("AddNoBid refused")
	}
	if !s.AddBid(Bid{Job: req.Job, Provider: a.id, Price: 10, Nonce: 2}) {
		t.Fatal("AddBid refused")
	}
	if s.AddBid(Bid{Job: req.Job, Provider: a.id, Price: 5, Nonce: 1}) {
		t.Fatal("older nonce replaced a newer bid")
	}
	if s.AddNoBid(NoBid{Job: req.Job, Provider: a.id, Reason: ReasonExiting}) {
		t.Fatal("a no-bid replaced a bid")
	}
	other := testSpec()
	other.Salt = 3
	otherID, _ := other.ID()
	if s.AddBid(Bid{Job: otherID, Provider: b.id, Price: 1, Nonce: 1}) {
		t.Fatal("bid for another job kept")
	}
	if bids := s.Bids(); len(bids) != 1 || bids[0].Price != 10 {
		t.Fatalf("Bids = %+v", bids)
	}
	if nb := s.NoBids(); len(nb) != 0 {
		t.Fatalf("NoBids = %+v, want none once the provider bid", nb)
	}
}
