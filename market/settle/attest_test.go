package settle

import (
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/protocol"
)

// Attestation tests run with three validators of equal stake: one
// attestation is exactly a third of the stake (not enough), two are more.
const nVals = 3

// disputed is the state the attest rejection table starts from: job D
// (replicate:2, 3 segments, max price 100, deposit 600): segment 0 leased
// to providers 0 (price 60) and 1 (price 70) who submitted different
// outputs (disputed), segment 1 leased to both (no result yet), segment 2
// open.
func disputed(t *testing.T) (*fixture, protocol.CID) {
	f := newFixtureVals(t, nVals, 4)
	s := spec(3, 100, "replicate:2")
	d := jobID(t, s)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 600})))
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Segments: []uint32{0, 1},
		Bids: [][]byte{f.bid(f.provs[0], d, 60, 2, 1), f.bid(f.provs[1], d, 70, 2, 1)}})))
	evs := f.mustOK(f.block(
		f.tx(f.provs[0], TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("x")}),
		f.tx(f.provs[1], TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("y")}),
	))
	if len(kinds(evs, EventDisputed)) != 1 {
		t.Fatalf("no dispute: %+v", evs)
	}
	j := f.job(d)
	if j.Segments[0].State != SegDisputed || j.Segments[1].State != SegLeased || j.Segments[2].State != SegOpen {
		t.Fatalf("states %s %s %s", j.Segments[0].State, j.Segments[1].State, j.Segments[2].State)
	}
	return f, d
}

func (f *fixture) attest(v string, job protocol.CID, seg uint32, out string) []byte {
	f.t.Helper()
	return f.tx(v, TxAttest, Attest{Job: job, Segment: seg, Output: output(out)})
}

func TestAttestRejections(t *testing.T) {
	at := func(who func(f *fixture) string, seg uint32, out string) func(f *fixture, d protocol.CID) (string, []byte) {
		return func(f *fixture, d protocol.CID) (string, []byte) {
			s := who(f)
			return s, f.attest(s, d, seg, out)
		}
	}
	val := func(i int) func(f *fixture) string { return func(f *fixture) string { return f.vals[i] } }
	for _, tc := range []rejectCase{
		{"garbage body", nil, func(f *fixture, d protocol.CID) (string, []byte) {
			return f.vals[0], f.rawTx(f.vals[0], TxAttest, []byte{0xa1, 0x01})
		}, ErrBadBody},
		{"no output", nil, func(f *fixture, d protocol.CID) (string, []byte) {
			body := protocol.MustMarshal(struct {
				Job     protocol.CID `cbor:"1,keyasint"`
				Segment uint32       `cbor:"2,keyasint"`
			}{d, 0})
			return f.vals[0], f.rawTx(f.vals[0], TxAttest, body)
		}, ErrBadBody},
		{"unknown job", nil, func(f *fixture, d protocol.CID) (string, []byte) {
			return f.vals[0], f.tx(f.vals[0], TxAttest, Attest{Job: jobID(t, spec(9, 100, "replicate:1")), Output: output("x")})
		}, ErrUnknownJob},
		{"segment out of range", nil, at(val(0), 3, "x"), ErrBadSegment},
		{"provider is no validator", nil, at(func(f *fixture) string { return f.provs[2] }, 0, "x"), ErrNotValidator},
		{"lease holder is no validator", nil, at(func(f *fixture) string { return f.provs[0] }, 0, "x"), ErrNotValidator},
		{"renter is no validator", nil, at(func(f *fixture) string { return f.renter }, 0, "x"), ErrNotValidator},
		{"jailed validator", func(f *fixture, d protocol.CID) {
			ev, err := f.keys.Equivocate(chain, f.vals[2], f.st.Height(), 0)
			if err != nil {
				t.Fatal(err)
			}
			f.blockEv([]ledger.Evidence{ev})
			if !f.st.Bond(f.vals[2]).Jailed {
				t.Fatal("not jailed")
			}
		}, at(val(2), 0, "x"), ErrNotValidator},
		{"leased segment", nil, at(val(0), 1, "x"), ErrNotChecking},
		{"open segment", nil, at(val(0), 2, "x"), ErrNotChecking},
		{"attested twice", func(f *fixture, d protocol.CID) {
			f.mustOK(f.block(f.attest(f.vals[0], d, 0, "x")))
		}, at(val(0), 0, "y"), ErrAttested},
		{"attested twice, same output", func(f *fixture, d protocol.CID) {
			f.mustOK(f.block(f.attest(f.vals[0], d, 0, "x")))
		}, at(val(0), 0, "x"), ErrAttested},
		{"already resolved", func(f *fixture, d protocol.CID) {
			f.mustOK(f.block(f.attest(f.vals[0], d, 0, "x"), f.attest(f.vals[1], d, 0, "x")))
		}, at(val(2), 0, "x"), ErrNotChecking},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, d := disputed(t)
			if tc.prep != nil {
				tc.prep(f, d)
			}
			sender, raw := tc.tx(f, d)
			f.expectFail(sender, raw, tc.want, d)
		})
	}
}

// TestDisputeResolved: under replicate:2 the providers disagree; a third
// of the validators' stake is not enough, more is; the honest provider is
// paid once, the cheater slashed once and its price returned to the
// renter.
func TestDisputeResolved(t *testing.T) {
	f := newFixtureVals(t, nVals, 2)
	honest, cheat := f.provs[0], f.provs[1]
	s := spec(1, 100, "replicate:2")
	d := jobID(t, s)
	renterStart := f.balance(f.renter)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 200})))
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Bids: [][]byte{f.bid(honest, d, 60, 1, 1), f.bid(cheat, d, 70, 1, 1)}})))
	honestBal := f.balance(honest)
	f.mustOK(f.block(
		f.tx(honest, TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("x")}),
		f.tx(cheat, TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("y")}),
	))
	// One validator for each output: a third each, no resolution.
	evs := f.mustOK(f.block(f.attest(f.vals[0], d, 0, "x"), f.attest(f.vals[2], d, 0, "y")))
	if len(kinds(evs, EventAttested)) != 2 || len(kinds(evs, EventResolved)) != 0 || len(kinds(evs, EventWrong)) != 0 {
		t.Fatalf("resolved on a third: %+v", evs)
	}
	if seg := f.job(d).Segments[0]; seg.State != SegDisputed || len(seg.Attests) != 2 {
		t.Fatalf("segment after two attestations %+v", seg)
	}
	evs = f.mustOK(f.block(f.attest(f.vals[1], d, 0, "x")))
	wrong := kinds(evs, EventWrong)
	if len(wrong) != 1 || wrong[0].Account != cheat || wrong[0].Amount != slashAmt || wrong[0].Detail != "0" || wrong[0].Counterparty != d.String() {
		t.Fatalf("wrong events %+v", wrong)
	}
	res := kinds(evs, EventResolved)
	if len(res) != 1 || res[0].Detail != "0" || res[0].Release != f.st.Height()+challenge {
		t.Fatalf("resolved events %+v", res)
	}
	seg := f.job(d).Segments[0]
	if seg.State != SegVerified || len(seg.Leases) != 1 || seg.Leases[0].Provider != honest || len(seg.Attests) != 3 {
		t.Fatalf("segment after resolution %+v", seg)
	}
	if b := f.st.Bond(cheat); b.Provider != provStake-slashAmt {
		t.Fatalf("cheater stake %d, want %d", b.Provider, provStake-slashAmt)
	}
	if b := f.st.Bond(honest); b.Provider != provStake {
		t.Fatalf("honest stake %d", b.Provider)
	}
	var paid int
	for range challenge + checkBlks + 2 {
		for _, e := range f.block() {
			if e.Kind == EventPaid {
				paid++
				if e.Account != honest {
					t.Fatalf("paid %s", e.Account)
				}
			}
			if e.Kind == EventWrong || e.Kind == EventMissed {
				t.Fatalf("penalised again: %+v", e)
			}
		}
	}
	if paid != 1 {
		t.Fatalf("%d payments, want 1", paid)
	}
	if _, ok, _ := JobOf(f.st, d); ok {
		t.Fatal("job not closed")
	}
	mf := f.st.Params().MarketFee
	if got, want := f.balance(honest), honestBal+60-mf.Of(60)-fee; got != want {
		t.Fatalf("honest balance %d, want %d", got, want)
	}
	// The renter paid the honest price only.
	if got, want := f.balance(f.renter), renterStart-60-f.fees[f.renter]; got != want {
		t.Fatalf("renter balance %d, want %d", got, want)
	}
	if r := f.rep(honest); r != (Reputation{Completed: 1, Verified: 1}) {
		t.Fatalf("honest reputation %+v", r)
	}
	if r := f.rep(cheat); r != (Reputation{Failed: 1, Slashed: 1}) {
		t.Fatalf("cheater reputation %+v", r)
	}
}

// TestDisputeNoMatch: the validators agree on an output nobody submitted:
// both providers are slashed, the segment reopens, is re-awarded with
// fresh bids and paid once.
func TestDisputeNoMatch(t *testing.T) {
	f, d := disputed(t)
	a, b, c := f.provs[0], f.provs[1], f.provs[2]
	renterStart, renterFees := f.balance(f.renter), f.fees[f.renter]
	evs := f.mustOK(f.block(f.attest(f.vals[0], d, 0, "z"), f.attest(f.vals[2], d, 0, "z")))
	if w := kinds(evs, EventWrong); len(w) != 2 || w[0].Account != a || w[1].Account != b {
		t.Fatalf("wrong events %+v", w)
	}
	if r := kinds(evs, EventReopened); len(r) != 1 || r[0].Detail != "0" {
		t.Fatalf("reopened events %+v", r)
	}
	j := f.job(d)
	if j.Segments[0].State != SegOpen || len(j.Segments[0].Leases) != 0 {
		t.Fatalf("segment 0 %+v", j.Segments[0])
	}
	if j.Owed != 60+70 { // segment 1 is still leased
		t.Fatalf("owed %d, want 130", j.Owed)
	}
	for _, p := range []string{a, b} {
		if r := f.rep(p); r != (Reputation{Failed: 1, Slashed: 1}) {
			t.Fatalf("reputation of %s %+v", p, r)
		}
	}
	// Re-auction segment 0 to providers 2 and 3, who agree.
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Segments: []uint32{0},
		Bids: [][]byte{f.bid(c, d, 50, 1, 1), f.bid(f.provs[3], d, 55, 1, 1)}})))
	f.mustOK(f.block(
		f.tx(c, TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("z")}),
		f.tx(f.provs[3], TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("z")}),
		f.tx(a, TxSubmitResult, SubmitResult{Job: d, Segment: 1, Output: output("w")}),
		f.tx(b, TxSubmitResult, SubmitResult{Job: d, Segment: 1, Output: output("w")}),
	))
	f.mustOK(f.block(f.tx(f.renter, TxCancelJob, CancelJob{Job: d}))) // segment 2
	var paid uint64
	for range challenge + 1 {
		for _, e := range f.block() {
			if e.Kind == EventPaid {
				paid++
			}
		}
	}
	if paid != 4 {
		t.Fatalf("%d payments, want 4", paid)
	}
	if _, ok, _ := JobOf(f.st, d); ok {
		t.Fatal("job not closed")
	}
	// The renter paid 50+55 for segment 0 and 60+70 for segment 1.
	if got, want := f.balance(f.renter), renterStart+600-(50+55+60+70)-(f.fees[f.renter]-renterFees); got != want {
		t.Fatalf("renter balance %d, want %d", got, want)
	}
	if r := f.rep(a); r != (Reputation{Completed: 1, Verified: 1, Failed: 1, Slashed: 1}) {
		t.Fatalf("reputation %+v", r)
	}
}

// TestDisputeLapse: no quorum of validators within CheckBlocks: the
// segment reopens unpaid and nobody is slashed.
func TestDisputeLapse(t *testing.T) {
	f, d := disputed(t)
	since := f.job(d).Segments[0].Since
	f.mustOK(f.block(f.attest(f.vals[0], d, 0, "x"))) // a third only
	for f.st.Height() < since+checkBlks-1 {
		if evs := f.block(); len(kinds(evs, EventReopened)) != 0 {
			t.Fatalf("lapsed early at %d", f.st.Height())
		}
	}
	evs := f.block()
	if r := kinds(evs, EventReopened); len(r) != 1 || r[0].Detail != "0" {
		t.Fatalf("at %d (disputed at %d): reopened %+v", f.st.Height(), since, r)
	}
	if len(kinds(evs, EventWrong))+len(kinds(evs, ledger.EventSlash)) != 0 {
		t.Fatalf("slashed on a lapse: %+v", evs)
	}
	j := f.job(d)
	if j.Segments[0].State != SegOpen || j.Owed != 130 {
		t.Fatalf("after lapse: %+v owed %d", j.Segments[0], j.Owed)
	}
	for _, p := range f.provs[:2] {
		if r := f.rep(p); r != (Reputation{}) {
			t.Fatalf("reputation %+v", r)
		}
		if b := f.st.Bond(p); b.Provider != provStake {
			t.Fatalf("stake %d", b.Provider)
		}
	}
	f.expectFail(f.vals[1], f.attest(f.vals[1], d, 0, "x"), ErrNotChecking, d)
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Segments: []uint32{0},
		Bids: [][]byte{f.bid(f.provs[2], d, 50, 1, 1), f.bid(f.provs[3], d, 55, 1, 1)}})))
}

// TestSpotCheck: under spotcheck:1 every accepted result is drawn. One
// segment is confirmed by the validators and paid; one is found wrong (its
// provider slashed, the segment re-run by another provider, drawn again)
// and the re-run's check lapses to verified and is paid.
func TestSpotCheck(t *testing.T) {
	f := newFixtureVals(t, nVals, 2)
	p0, p1 := f.provs[0], f.provs[1]
	s := spec(2, 100, "spotcheck:1")
	d := jobID(t, s)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 200})))
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Bids: [][]byte{f.bid(p0, d, 40, 2, 1)}})))
	evs := f.mustOK(f.block(
		f.tx(p0, TxSubmitResult, SubmitResult{Job: d, Segment: 0, Output: output("good")}),
		f.tx(p0, TxSubmitResult, SubmitResult{Job: d, Segment: 1, Output: output("bad")}),
	))
	if c := kinds(evs, EventCheck); len(c) != 2 || len(kinds(evs, EventVerified)) != 0 {
		t.Fatalf("check events %+v", evs)
	}
	for i, seg := range f.job(d).Segments {
		if seg.State != SegChecking {
			t.Fatalf("segment %d is %s", i, seg.State)
		}
	}
	evs = f.mustOK(f.block(
		f.attest(f.vals[0], d, 0, "good"), f.attest(f.vals[1], d, 0, "good"),
		f.attest(f.vals[1], d, 1, "right"), f.attest(f.vals[2], d, 1, "right"),
	))
	if r := kinds(evs, EventResolved); len(r) != 1 || r[0].Detail != "0" {
		t.Fatalf("resolved %+v", r)
	}
	if w := kinds(evs, EventWrong); len(w) != 1 || w[0].Account != p0 || w[0].Detail != "1" || w[0].Amount != slashAmt {
		t.Fatalf("wrong %+v", w)
	}
	if r := kinds(evs, EventReopened); len(r) != 1 || r[0].Detail != "1" {
		t.Fatalf("reopened %+v", r)
	}
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Bids: [][]byte{f.bid(p1, d, 45, 1, 1)}})))
	evs = f.mustOK(f.block(f.tx(p1, TxSubmitResult, SubmitResult{Job: d, Segment: 1, Output: output("right")})))
	if len(kinds(evs, EventCheck)) != 1 {
		t.Fatalf("re-run not drawn: %+v", evs)
	}
	since := f.st.Height()
	var resolvedAt, paid uint64
	paidTo := map[string]int{}
	for range checkBlks + challenge + 1 {
		for _, e := range f.block() {
			switch e.Kind {
			case EventResolved:
				resolvedAt = f.st.Height()
			case EventPaid:
				paid++
				paidTo[e.Account]++
			}
		}
	}
	if resolvedAt != since+checkBlks {
		t.Fatalf("check lapsed at %d, want %d", resolvedAt, since+checkBlks)
	}
	if paid != 2 || paidTo[p0] != 1 || paidTo[p1] != 1 {
		t.Fatalf("payments %v", paidTo)
	}
	if _, ok, _ := JobOf(f.st, d); ok {
		t.Fatal("job not closed")
	}
	if r := f.rep(p0); r != (Reputation{Completed: 1, Failed: 1, Slashed: 1}) {
		t.Fatalf("p0 reputation %+v", r)
	}
	if r := f.rep(p1); r != (Reputation{Completed: 1}) {
		t.Fatalf("p1 reputation %+v", r)
	}
}

// TestSpotCheckDraw: the draw is the documented hash rule; a job's segments
// are drawn exactly when it says so.
func TestSpotCheckDraw(t *testing.T) {
	job := output("job")
	var prev [32]byte
	half := 0
	for i := range uint32(2000) {
		binary.BigEndian.PutUint32(prev[:], i*7919)
		if SpotCheckDrawn(prev, job, i, 0) {
			t.Fatal("drawn at p = 0")
		}
		if !SpotCheckDrawn(prev, job, i, 1_000_000) {
			t.Fatal("not drawn at p = 1")
		}
		if SpotCheckDrawn(prev, job, i, 500_000) {
			half++
		}
	}
	if half < 850 || half > 1150 {
		t.Fatalf("p = 0.5 drew %d of 2000", half)
	}

	for _, pol := range []string{"spotcheck:0.000001", "spotcheck:0.5"} {
		f := newFixture(t, 1)
		s := spec(16, 10, pol)
		d := jobID(t, s)
		ppm := mustPolicy(t, pol).PPM
		f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 160})))
		f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: d, Bids: [][]byte{f.bid(f.provs[0], d, 10, 16, 1)}})))
		var txs [][]byte
		want := map[string]bool{}
		prev := f.st.LastBlockHash()
		for i := range uint32(16) {
			txs = append(txs, f.tx(f.provs[0], TxSubmitResult, SubmitResult{Job: d, Segment: i, Output: output("o")}))
			if SpotCheckDrawn(prev, d, i, ppm) {
				want[strconv.FormatUint(uint64(i), 10)] = true
			}
		}
		evs := f.mustOK(f.block(txs...))
		checks := kinds(evs, EventCheck)
		if len(checks)+len(kinds(evs, EventVerified)) != 16 || len(checks) != len(want) {
			t.Fatalf("%s: %d checks, want %d", pol, len(checks), len(want))
		}
		for _, c := range checks {
			if !want[c.Detail] {
				t.Fatalf("%s: segment %s drawn", pol, c.Detail)
			}
		}
		if ppm == 1 && len(checks) != 0 {
			t.Fatalf("p = 1e-6 drew %d", len(checks))
		}
		t.Logf("%s: %d of 16 drawn", pol, len(checks))
	}
}

func mustPolicy(t *testing.T, s string) market.Policy {
	t.Helper()
	p, err := market.ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
