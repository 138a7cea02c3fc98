package market

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Candidate is a validated bid with the provider's reputation, which breaks
// price ties (higher first).
type Candidate struct {
	Bid        Bid
	Reputation int64
}

// AwardRequest is the input of Award.
type AwardRequest struct {
	Job      *JobRequest
	Now      time.Time // bids expired by now are left out
	Segments []uint32  // segment indices to award; nil means all of the job's
	// MaxPerProvider caps each winner's share to spread segments over more
	// providers for parallelism; 0 means only the bid's capacity caps it.
	MaxPerProvider uint32
	Bids           []Candidate // any number, any order, one per provider
}

// Winner is one provider's part of an award.
type Winner struct {
	Provider string
	Bid      Bid      // the winning bid; the AwardLease tx carries its signed envelope
	Segments []uint32 // ascending
}

// Result is an award: who runs which segment at which price.
type Result struct {
	Winners    []Winner   // in rank order
	Assignees  [][]string // per awarded segment (index into Awarded), its providers in rank order
	Awarded    []uint32   // segments awarded, ascending
	Unassigned []uint32   // segments left for a later auction, ascending
	Cost       uint64     // sum of price x segments over winners
}

// rankLess is the award order: lower price, then higher reputation, then
// lower provider ID.
func rankCmp(a, b *Candidate) int {
	if c := cmpU64(a.Bid.Price, b.Bid.Price); c != 0 {
		return c
	}
	if a.Reputation != b.Reputation {
		if a.Reputation > b.Reputation {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Bid.Provider, b.Bid.Provider)
}

// Award decides a job's auction. Eligible bids (for this job, at most its
// max price, not expired at Now) are ranked lowest price first, reputation
// breaking ties, then provider ID. Each provider in rank order takes as many
// segment slots as its capacity, MaxPerProvider and the segment count
// allow, until every segment has Replicas distinct providers. If capacity
// falls short, the largest number m of segments that can each get Replicas
// distinct providers is awarded (the lowest-numbered m) and the rest are
// left unassigned; shares are then trimmed from the lowest-ranked winners.
//
// The layout puts winner after winner along the list of slots in which slot
// j belongs to segment j mod m; as no share exceeds m, a winner never gets
// the same segment twice, and every winner's segments are spread over the
// job. Award is deterministic: the same request gives the same result on
// every node, whatever the order of Bids. It returns ErrDuplicateBid if two
// bids name the same provider.
func Award(req *AwardRequest) (*Result, error) {
	spec := &req.Job.Spec
	pol, err := spec.Policy()
	if err != nil {
		return nil, err
	}
	k := uint64(pol.Replicas())
	segs := req.Segments
	if segs == nil {
		segs = make([]uint32, spec.Segments)
		for i := range segs {
			segs[i] = uint32(i)
		}
	} else {
		segs = slices.Clone(segs)
		slices.Sort(segs)
		segs = slices.Compact(segs)
		if len(segs) > 0 && segs[len(segs)-1] >= spec.Segments {
			return nil, fmt.Errorf("%w: segment %d of %d", ErrBadJob, segs[len(segs)-1], spec.Segments)
		}
	}
	S := uint64(len(segs))
	nowMs := req.Now.UnixMilli()

	cands := make([]*Candidate, 0, len(req.Bids))
	for i := range req.Bids {
		c := &req.Bids[i]
		b := &c.Bid
		if !b.Job.Equals(req.Job.Job.Cid) || b.Price > spec.MaxPrice || b.Expiry <= nowMs || b.Capacity == 0 {
			continue
		}
		cands = append(cands, c)
	}
	slices.SortFunc(cands, rankCmp)
	// Ranking never brings two bids of one provider together if their
	// prices differ, so check by set.
	if len(cands) > 1 {
		seen := make(map[string]struct{}, len(cands))
		for _, c := range cands {
			if _, ok := seen[c.Bid.Provider]; ok {
				return nil, fmt.Errorf("%w: %s", ErrDuplicateBid, c.Bid.Provider)
			}
			seen[c.Bid.Provider] = struct{}{}
		}
	}

	// Greedy shares, cheapest first.
	limit := func(c *Candidate) uint64 {
		l := min(uint64(c.Bid.Capacity), S)
		if req.MaxPerProvider > 0 {
			l = min(l, uint64(req.MaxPerProvider))
		}
		return l
	}
	need := S * k
	shares := make([]uint64, 0, len(cands))
	var total uint64
	for _, c := range cands {
		if total == need {
			break
		}
		q := min(limit(c), need-total)
		shares = append(shares, q)
		total += q
	}
	cands = cands[:len(shares)]

	m := S
	if total < need {
		m = coverable(shares, k, S)
		// Cap shares at m, then trim the lowest-ranked until they sum to m*k.
		total = 0
		for i := range shares {
			shares[i] = min(shares[i], m)
			total += shares[i]
		}
		for i := len(shares) - 1; i >= 0 && total > m*k; i-- {
			cut := min(shares[i], total-m*k)
			shares[i] -= cut
			total -= cut
		}
	}

	res := &Result{Awarded: segs[:m], Unassigned: slices.Clone(segs[m:])}
	res.Assignees = make([][]string, m)
	pos := uint64(0)
	for i, c := range cands {
		if shares[i] == 0 {
			continue
		}
		w := Winner{Provider: c.Bid.Provider, Bid: c.Bid, Segments: make([]uint32, 0, shares[i])}
		for range shares[i] {
			j := pos % m
			w.Segments = append(w.Segments, segs[j])
			res.Assignees[j] = append(res.Assignees[j], c.Bid.Provider)
			pos++
		}
		slices.Sort(w.Segments)
		res.Cost += c.Bid.Price * shares[i]
		res.Winners = append(res.Winners, w)
	}
	return res, nil
}

// coverable is the largest m <= S such that shares capped at m can give m
// segments k distinct providers each: sum(min(share, m)) >= m*k. The sum is
// concave in m and m*k linear, so the condition holds on a prefix of m and
// a binary search finds its end.
func coverable(shares []uint64, k, S uint64) uint64 {
	ok := func(m uint64) bool {
		var sum uint64
		for _, q := range shares {
			sum += min(q, m)
		}
		return sum >= m*k
	}
	lo, hi := uint64(0), S // ok(lo) always holds
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
