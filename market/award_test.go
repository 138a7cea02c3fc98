package market

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"testing/quick"
	"time"
)

func awardReq(t testing.TB, segments uint32, verify string, bids ...Candidate) *AwardRequest {
	spec := testSpec()
	spec.Segments = segments
	spec.Verify = verify
	req := testRequest(t, "renter", spec)
	for i := range bids {
		bids[i].Bid.Job = req.Job
		if bids[i].Bid.Expiry == 0 {
			bids[i].Bid.Expiry = req.CloseAt + 60_000
		}
	}
	return &AwardRequest{Job: req, Now: time.UnixMilli(req.CloseAt), Bids: bids}
}

func cand(p string, price uint64, capacity uint32, rep int64) Candidate {
	return Candidate{Bid: Bid{Provider: p, Price: price, Capacity: capacity, Nonce: 1}, Reputation: rep}
}

func shares(r *Result) map[string][]uint32 {
	out := map[string][]uint32{}
	for _, w := range r.Winners {
		out[w.Provider] = w.Segments
	}
	return out
}

func TestAwardCheapestWithinCapacity(t *testing.T) {
	// Five providers, a 10-segment job: the cheapest take all they can.
	req := awardReq(t, 10, "replicate:1",
		cand("e", 9, 10, 0), cand("a", 5, 3, 0), cand("b", 6, 4, 0), cand("c", 7, 5, 0), cand("d", 130, 10, 0))
	res, err := Award(req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]uint32{"a": {0, 1, 2}, "b": {3, 4, 5, 6}, "c": {7, 8, 9}}
	if got := shares(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("shares %v, want %v", got, want)
	}
	if res.Cost != 5*3+6*4+7*3 || len(res.Unassigned) != 0 {
		t.Fatalf("cost %d unassigned %v", res.Cost, res.Unassigned)
	}
}

func TestAwardTies(t *testing.T) {
	// Equal prices: higher reputation first, then lower provider ID.
	req := awardReq(t, 4, "replicate:1", cand("z", 5, 2, 1), cand("y", 5, 2, 3), cand("x", 5, 2, 1))
	res, _ := Award(req)
	if got := shares(res); !reflect.DeepEqual(got, map[string][]uint32{"y": {0, 1}, "x": {2, 3}}) {
		t.Fatalf("shares %v", got)
	}
}

func TestAwardReplicate(t *testing.T) {
	req := awardReq(t, 3, "replicate:2", cand("a", 1, 3, 0), cand("b", 2, 2, 0), cand("c", 3, 5, 0))
	res, _ := Award(req)
	if got := shares(res); !reflect.DeepEqual(got, map[string][]uint32{"a": {0, 1, 2}, "b": {0, 1}, "c": {2}}) {
		t.Fatalf("shares %v", got)
	}
	for i, ps := range res.Assignees {
		if len(ps) != 2 || ps[0] == ps[1] {
			t.Fatalf("segment %d assignees %v", res.Awarded[i], ps)
		}
	}
}

func TestAwardPartial(t *testing.T) {
	// Two providers of 5 slots each cannot replicate 10 segments twice:
	// 5 segments get both, 5 wait for another auction.
	req := awardReq(t, 10, "replicate:2", cand("a", 1, 5, 0), cand("b", 2, 5, 0))
	res, _ := Award(req)
	if !slices.Equal(res.Awarded, []uint32{0, 1, 2, 3, 4}) || !slices.Equal(res.Unassigned, []uint32{5, 6, 7, 8, 9}) {
		t.Fatalf("awarded %v unassigned %v", res.Awarded, res.Unassigned)
	}
	// Re-auction of the rest names the segments.
	req.Segments = res.Unassigned
	req.Bids = []Candidate{cand("c", 3, 10, 0), cand("d", 4, 10, 0)}
	for i := range req.Bids {
		req.Bids[i].Bid.Job, req.Bids[i].Bid.Expiry = req.Job.Job, req.Job.CloseAt+1
	}
	res, _ = Award(req)
	if got := shares(res); !reflect.DeepEqual(got, map[string][]uint32{"c": {5, 6, 7, 8, 9}, "d": {5, 6, 7, 8, 9}}) {
		t.Fatalf("re-auction shares %v", got)
	}
}

func TestAwardSpread(t *testing.T) {
	req := awardReq(t, 6, "replicate:1", cand("a", 1, 6, 0), cand("b", 2, 6, 0), cand("c", 3, 6, 0))
	req.MaxPerProvider = 2
	res, _ := Award(req)
	if got := shares(res); !reflect.DeepEqual(got, map[string][]uint32{"a": {0, 1}, "b": {2, 3}, "c": {4, 5}}) {
		t.Fatalf("shares %v", got)
	}
}

func TestAwardIneligibleAndDuplicates(t *testing.T) {
	over := cand("over", 121, 10, 0) // max price is 120
	expired := cand("expired", 1, 10, 0)
	req := awardReq(t, 2, "replicate:1", over, cand("ok", 100, 10, 0), expired)
	req.Bids[2].Bid.Expiry = req.Now.UnixMilli()
	res, _ := Award(req)
	if got := shares(res); !reflect.DeepEqual(got, map[string][]uint32{"ok": {0, 1}}) {
		t.Fatalf("shares %v", got)
	}
	dup := awardReq(t, 2, "replicate:1", cand("a", 1, 1, 0), cand("a", 2, 1, 0))
	if _, err := Award(dup); !errors.Is(err, ErrDuplicateBid) {
		t.Fatalf("duplicate provider: %v", err)
	}
	bad := awardReq(t, 2, "replicate:1")
	bad.Segments = []uint32{2}
	if _, err := Award(bad); !errors.Is(err, ErrBadJob) {
		t.Fatalf("segment out of range: %v", err)
	}
}

// randomAward builds an auction from seed: few price and reputation
// levels so ties are common, some bids over max or expired.
func randomAward(t testing.TB, seed int64) *AwardRequest {
	r := rand.New(rand.NewSource(seed))
	S := uint32(1 + r.Intn(20))
	k := 1 + r.Intn(4)
	n := r.Intn(13)
	var bids []Candidate
	for i := range n {
		c := cand(fmt.Sprintf("p%02d", i), uint64(1+r.Intn(6)), uint32(1+r.Intn(25)), int64(r.Intn(3)))
		if r.Intn(10) == 0 {
			c.Bid.Price = 121 + uint64(r.Intn(5))
		}
		bids = append(bids, c)
	}
	req := awardReq(t, S, fmt.Sprintf("replicate:%d", k), bids...)
	for i := range req.Bids {
		if r.Intn(10) == 0 {
			req.Bids[i].Bid.Expiry = req.Now.UnixMilli() - int64(r.Intn(2))
		}
	}
	r.Shuffle(len(req.Bids), func(i, j int) { req.Bids[i], req.Bids[j] = req.Bids[j], req.Bids[i] })
	if r.Intn(3) == 0 {
		req.MaxPerProvider = uint32(1 + r.Intn(10))
	}
	if r.Intn(4) == 0 {
		for s := range S {
			if r.Intn(2) == 0 {
				req.Segments = append(req.Segments, s)
			}
		}
		if req.Segments == nil {
			req.Segments = []uint32{}
		}
	}
	return req
}

// naiveAward is the reference: the award rule written the slow, obvious
// way. It returns the number of segments awarded and each provider's share.
func naiveAward(req *AwardRequest) (m uint64, share map[string]uint64, cost uint64) {
	spec := req.Job.Spec
	pol, _ := spec.Policy()
	k := uint64(pol.Replicas())
	S := uint64(spec.Segments)
	if req.Segments != nil {
		S = uint64(len(req.Segments))
	}
	var ranked []Candidate
	for _, c := range req.Bids {
		if c.Bid.Price <= spec.MaxPrice && c.Bid.Expiry > req.Now.UnixMilli() {
			ranked = append(ranked, c)
		}
	}
	better := func(a, b Candidate) bool {
		if a.Bid.Price != b.Bid.Price {
			return a.Bid.Price < b.Bid.Price
		}
		if a.Reputation != b.Reputation {
			return a.Reputation > b.Reputation
		}
		return a.Bid.Provider < b.Bid.Provider
	}
	for i := range ranked { // insertion sort
		for j := i; j > 0 && better(ranked[j], ranked[j-1]); j-- {
			ranked[j], ranked[j-1] = ranked[j-1], ranked[j]
		}
	}
	limit := func(c Candidate) uint64 {
		l := min(uint64(c.Bid.Capacity), S)
		if req.MaxPerProvider > 0 {
			l = min(l, uint64(req.MaxPerProvider))
		}
		return l
	}
	got := make([]uint64, len(ranked))
	// One slot at a time to the best-ranked provider with room.
	for range S * k {
		for i, c := range ranked {
			if got[i] < limit(c) {
				got[i]++
				break
			}
		}
	}
	// The most segments that can each get k distinct providers, found by
	// trying every m and assigning segment by segment to the providers
	// with the most slots left.
	for m = S; m > 0; m-- {
		left := make([]uint64, len(got))
		for i := range got {
			left[i] = min(got[i], m)
		}
		ok := true
		for range m {
			taken := make([]bool, len(left))
			for range k {
				best := -1
				for i := range left {
					if !taken[i] && left[i] > 0 && (best < 0 || left[i] > left[best]) {
						best = i
					}
				}
				if best < 0 {
					ok = false
					break
				}
				left[best]--
				taken[best] = true
			}
			if !ok {
				break
			}
		}
		if ok {
			break
		}
	}
	// Keep m*k slots: cap each share at m, drop from the worst-ranked.
	var total uint64
	for i := range got {
		got[i] = min(got[i], m)
		total += got[i]
	}
	for i := len(got) - 1; i >= 0 && total > m*k; i-- {
		cut := min(got[i], total-m*k)
		got[i] -= cut
		total -= cut
	}
	share = map[string]uint64{}
	for i, c := range ranked {
		if got[i] > 0 {
			share[c.Bid.Provider] = got[i]
			cost += got[i] * c.Bid.Price
		}
	}
	return m, share, cost
}

// TestAwardMatchesReference checks Award against naiveAward on random
// auctions (raft's quorum/quick_test.go pattern), plus the structural
// rules: k distinct providers on every awarded segment, the rest
// unassigned, and an award independent of the order of the bids.
func TestAwardMatchesReference(t *testing.T) {
	prop := func(seed int64) bool {
		req := randomAward(t, seed)
		res, err := Award(req)
		if err != nil {
			t.Logf("seed %d: %v", seed, err)
			return false
		}
		m, share, cost := naiveAward(req)
		got := map[string]uint64{}
		for _, w := range res.Winners {
			got[w.Provider] = uint64(len(w.Segments))
		}
		if uint64(len(res.Awarded)) != m || res.Cost != cost || !reflect.DeepEqual(got, share) {
			t.Logf("seed %d: awarded %d cost %d shares %v; reference %d %d %v", seed, len(res.Awarded), res.Cost, got, m, cost, share)
			return false
		}
		pol, _ := req.Job.Spec.Policy()
		for i, ps := range res.Assignees {
			if len(ps) != int(pol.K) || len(slices.Compact(slices.Sorted(slices.Values(ps)))) != len(ps) {
				t.Logf("seed %d: segment %d assignees %v", seed, res.Awarded[i], ps)
				return false
			}
		}
		all := slices.Concat(res.Awarded, res.Unassigned)
		slices.Sort(all)
		want := req.Segments
		if want == nil {
			for s := range req.Job.Spec.Segments {
				want = append(want, s)
			}
		}
		if !slices.Equal(all, want) && !(len(all) == 0 && len(want) == 0) {
			t.Logf("seed %d: awarded+unassigned %v, want %v", seed, all, want)
			return false
		}
		slices.Reverse(req.Bids)
		again, _ := Award(req)
		if !reflect.DeepEqual(again, res) {
			t.Logf("seed %d: award depends on bid order", seed)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 3000, Rand: rand.New(rand.NewSource(1))}); err != nil {
		t.Fatal(err)
	}
}
