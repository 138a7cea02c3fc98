package settle

import (
	"testing"
)

// TestLifeCycle opens a 10-segment job, awards it to the cheapest
// providers, submits every result, passes the challenge window, and checks
// every payment; the fixture checks the supply invariant after every block.
func TestLifeCycle(t *testing.T) {
	f := newFixture(t, 4)
	s := spec(10, 1000, "replicate:1")
	id := jobID(t, s)
	const deposit = 12_000 // more than 1000 x 10: the surplus comes back too
	renterStart := f.balance(f.renter)
	provStart := make(map[string]uint64)
	for _, p := range f.provs {
		provStart[p] = f.balance(p)
	}
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: deposit})))
	if got := f.st.Escrow(EscrowID(id)); got != deposit {
		t.Fatalf("escrow %d, want %d", got, deposit)
	}

	// Providers 0..3 bid 500, 600, 700, 900 with capacity 4: the award goes
	// 4 + 4 + 2 to the three cheapest, whatever order the renter sends.
	prices := []uint64{500, 600, 700, 900}
	var bids [][]byte
	for i := len(f.provs) - 1; i >= 0; i-- {
		bids = append(bids, f.bid(f.provs[i], id, prices[i], 4, 1))
	}
	evs := f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: bids})))
	if n := len(kinds(evs, EventLease)); n != 10 {
		t.Fatalf("%d leases, want 10", n)
	}
	j := f.job(id)
	want := map[string]int{f.provs[0]: 4, f.provs[1]: 4, f.provs[2]: 2}
	got := map[string][]uint32{}
	for i, seg := range j.Segments {
		if seg.State != SegLeased || len(seg.Leases) != 1 {
			t.Fatalf("segment %d: %+v", i, seg)
		}
		got[seg.Leases[0].Provider] = append(got[seg.Leases[0].Provider], uint32(i))
	}
	for p, n := range want {
		if len(got[p]) != n {
			t.Fatalf("provider %s has %d segments, want %d", p, len(got[p]), n)
		}
	}
	if len(got[f.provs[3]]) != 0 {
		t.Fatal("the most expensive provider won")
	}

	// Every provider submits all its results in one block.
	var txs [][]byte
	for p, segs := range got {
		for _, sg := range segs {
			txs = append(txs, f.tx(p, TxSubmitResult, SubmitResult{Job: id, Segment: sg, Output: output("ok"), Receipt: []byte("r")}))
		}
	}
	evs = f.mustOK(f.block(txs...))
	if n := len(kinds(evs, EventVerified)); n != 10 {
		t.Fatalf("%d verified, want 10", n)
	}
	// Nobody is paid inside the challenge window.
	for range challenge - 1 {
		if evs := f.block(); len(kinds(evs, EventPaid)) != 0 {
			t.Fatal("paid inside the challenge window")
		}
	}
	evs = f.block()
	if n := len(kinds(evs, EventPaid)); n != 10 {
		t.Fatalf("%d payments, want 10", n)
	}
	if n := len(kinds(evs, EventJobClosed)); n != 1 {
		t.Fatalf("job not closed: %+v", evs)
	}

	mf := f.st.Params().MarketFee
	var cost uint64
	for i, p := range f.provs {
		n := uint64(len(got[p]))
		cost += prices[i] * n
		wantBal := provStart[p] + (prices[i]-mf.Of(prices[i]))*n - f.fees[p]
		if f.balance(p) != wantBal {
			t.Errorf("provider %d balance %d, want %d", i, f.balance(p), wantBal)
		}
		if r := f.rep(p); r.Completed != n || r.Failed != 0 || r.Verified != 0 {
			t.Errorf("provider %d reputation %+v", i, r)
		}
	}
	if want := renterStart - cost - f.fees[f.renter]; f.balance(f.renter) != want {
		t.Errorf("renter balance %d, want %d (cost %d)", f.balance(f.renter), want, cost)
	}
	if e := f.st.Escrow(EscrowID(id)); e != 0 {
		t.Errorf("escrow left %d", e)
	}
	if _, ok, _ := JobOf(f.st, id); ok {
		t.Error("closed job still recorded")
	}
}

// TestMissedDeadline: a provider that misses a deadline is slashed, counted
// failed, and its segment is re-auctioned to another provider.
func TestMissedDeadline(t *testing.T) {
	f := newFixture(t, 2)
	// slow sorts first, so only reputation can make fast win a price tie.
	slow, fast := min(f.provs[0], f.provs[1]), max(f.provs[0], f.provs[1])
	s := spec(2, 100, "replicate:1")
	id := jobID(t, s)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 200})))
	oldBid := f.bid(slow, id, 80, 2, 1)
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: [][]byte{oldBid}})))
	deadline := f.job(id).Segments[0].Leases[0].Deadline
	if want := f.st.Height() + deadlineS; deadline != want {
		t.Fatalf("deadline %d, want %d", deadline, want)
	}
	f.mustOK(f.block(f.tx(slow, TxSubmitResult, SubmitResult{Job: id, Segment: 0, Output: output("a")})))
	for f.st.Height() < deadline {
		f.block()
	}
	// One block late: the tx fails, then the end of the same block
	// reopens the segment.
	late := f.tx(slow, TxSubmitResult, SubmitResult{Job: id, Segment: 1, Output: output("a")})
	evs := f.block(late)
	if failed := kinds(evs, "tx_failed"); len(failed) != 1 {
		t.Fatalf("late result accepted: %+v", evs)
	}
	missed := kinds(evs, EventMissed)
	if len(missed) != 1 || missed[0].Account != slow || missed[0].Amount != slashAmt || missed[0].Detail != "1" {
		t.Fatalf("missed events %+v", missed)
	}
	if b := f.st.Bond(slow); b.Provider != provStake-slashAmt {
		t.Fatalf("slow provider stake %d, want %d", b.Provider, provStake-slashAmt)
	}
	if r := f.rep(slow); r.Failed != 1 || r.Slashed != 1 {
		t.Fatalf("slow reputation %+v", r)
	}
	j := f.job(id)
	if j.Segments[1].State != SegOpen || len(j.Segments[1].Leases) != 0 {
		t.Fatalf("segment 1 not reopened: %+v", j.Segments[1])
	}
	// Segment 0 was verified before the deadline block and pays as usual.
	if j.Segments[0].State != SegPaid {
		t.Fatalf("segment 0 is %s", j.Segments[0].State)
	}

	// The old bid cannot be reused. With fresh bids at one price, the
	// provider with the better on-chain reputation wins.
	f.expectFail(f.renter, f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: [][]byte{oldBid}}), ErrBidUsed, id)
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: [][]byte{f.bid(slow, id, 90, 5, 2), f.bid(fast, id, 90, 5, 1)}})))
	if l := f.job(id).Segments[1].Leases; len(l) != 1 || l[0].Provider != fast {
		t.Fatalf("re-auction leases %+v", l)
	}
	renterBefore := f.balance(f.renter)
	f.mustOK(f.block(f.tx(fast, TxSubmitResult, SubmitResult{Job: id, Segment: 1, Output: output("b")})))
	f.idle(challenge)
	if _, ok, _ := JobOf(f.st, id); ok {
		t.Fatal("job not closed")
	}
	// Deposit 200 paid 80 + 90: the renter gets 30 back.
	if got := f.balance(f.renter); got != renterBefore+30 {
		t.Fatalf("renter refund %d, want 30", got-renterBefore)
	}
	if r := f.rep(fast); r.Completed != 1 || r.Failed != 0 {
		t.Fatalf("fast reputation %+v", r)
	}
}

// TestReplicateDisagreement: two replicas disagree, the segment is
// disputed and nobody is paid for it.
func TestReplicateDisagreement(t *testing.T) {
	f := newFixture(t, 2)
	a, b := f.provs[0], f.provs[1]
	s := spec(2, 100, "replicate:2")
	id := jobID(t, s)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 400})))
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: [][]byte{f.bid(a, id, 60, 2, 1), f.bid(b, id, 70, 2, 1)}})))
	for i, seg := range f.job(id).Segments {
		if len(seg.Leases) != 2 {
			t.Fatalf("segment %d has %d replicas", i, len(seg.Leases))
		}
	}
	balA, balB := f.balance(a), f.balance(b)
	evs := f.mustOK(f.block(
		f.tx(a, TxSubmitResult, SubmitResult{Job: id, Segment: 0, Output: output("x")}),
		f.tx(b, TxSubmitResult, SubmitResult{Job: id, Segment: 0, Output: output("y")}),
		f.tx(a, TxSubmitResult, SubmitResult{Job: id, Segment: 1, Output: output("z")}),
		f.tx(b, TxSubmitResult, SubmitResult{Job: id, Segment: 1, Output: output("z")}),
	))
	if d := kinds(evs, EventDisputed); len(d) != 1 || d[0].Detail != "0" {
		t.Fatalf("disputed events %+v", d)
	}
	f.idle(challenge) // segment 1 is paid; the dispute has not lapsed (checkBlks)
	j := f.job(id)
	if j.Segments[0].State != SegDisputed || j.Segments[1].State != SegPaid {
		t.Fatalf("states %s, %s", j.Segments[0].State, j.Segments[1].State)
	}
	// Segment 1 paid each agreeing provider its own price; segment 0 paid
	// nothing, and the escrow still holds its prices.
	mf := f.st.Params().MarketFee
	if got, want := f.balance(a), balA-2*fee+60-mf.Of(60); got != want {
		t.Fatalf("provider a balance %d, want %d", got, want)
	}
	if got, want := f.balance(b), balB-2*fee+70-mf.Of(70); got != want {
		t.Fatalf("provider b balance %d, want %d", got, want)
	}
	if e := f.st.Escrow(EscrowID(id)); e != 400-60-70 {
		t.Fatalf("escrow %d, want %d", e, 400-60-70)
	}
	for _, p := range []string{a, b} {
		if r := f.rep(p); r.Completed != 1 || r.Verified != 1 || r.Failed != 0 {
			t.Fatalf("reputation %+v", r)
		}
	}
	// A disputed segment takes no more results.
	f.expectFail(a, f.tx(a, TxSubmitResult, SubmitResult{Job: id, Segment: 0, Output: output("y")}), ErrNotLeased, id)
}
