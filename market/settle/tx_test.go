package settle

import (
	"testing"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/protocol"
)

// base is the state the rejection tables start from: job A (replicate:1,
// 3 segments, max price 100, deposit 300) with segment 0 leased to
// provider 0, segment 1 verified (provider 1, paid later), segment 2 open.
func base(t *testing.T) (*fixture, protocol.CID) {
	f := newFixture(t, 4)
	s := spec(3, 100, "replicate:1")
	a := jobID(t, s)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 300})))
	f.mustOK(f.block(
		f.tx(f.renter, TxAwardLease, AwardLease{Job: a, Segments: []uint32{0}, Bids: [][]byte{f.bid(f.provs[0], a, 50, 1, 1)}}),
		f.tx(f.renter, TxAwardLease, AwardLease{Job: a, Segments: []uint32{1}, Bids: [][]byte{f.bid(f.provs[1], a, 50, 1, 1)}}),
	))
	f.mustOK(f.block(f.tx(f.provs[1], TxSubmitResult, SubmitResult{Job: a, Segment: 1, Output: output("1")})))
	j := f.job(a)
	if j.Segments[0].State != SegLeased || j.Segments[1].State != SegVerified || j.Segments[2].State != SegOpen {
		t.Fatalf("base states %v %v %v", j.Segments[0].State, j.Segments[1].State, j.Segments[2].State)
	}
	return f, a
}

// rawTx signs a tx whose body is raw bytes.
func (f *fixture) rawTx(id string, typ ledger.TxType, body []byte) []byte {
	f.t.Helper()
	a, _ := f.st.Account(id)
	raw, err := f.keys.Sign(chain, id, ledger.Tx{Type: typ, Nonce: a.Nonce + f.pending[id], Fee: fee, Body: body})
	if err != nil {
		f.t.Fatal(err)
	}
	f.pending[id]++
	return raw
}

type rejectCase struct {
	name string
	prep func(f *fixture, a protocol.CID) // optional set-up blocks
	tx   func(f *fixture, a protocol.CID) (sender string, raw []byte)
	want error
}

func runRejections(t *testing.T, cases []rejectCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, a := base(t)
			if tc.prep != nil {
				tc.prep(f, a)
			}
			sender, raw := tc.tx(f, a)
			f.expectFail(sender, raw, tc.want, a, jobID(t, spec(1, 100, "replicate:2")))
		})
	}
}

func TestOpenJobRejections(t *testing.T) {
	open := func(s market.JobSpec, dep uint64) func(f *fixture, a protocol.CID) (string, []byte) {
		return func(f *fixture, a protocol.CID) (string, []byte) {
			return f.renter, f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: dep})
		}
	}
	runRejections(t, []rejectCase{
		{"garbage body", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.renter, f.rawTx(f.renter, TxOpenJob, []byte{0xa1, 0x01})
		}, ErrBadBody},
		{"bad spec", nil, open(spec(0, 100, "replicate:1"), 100), ErrBadBody},
		{"bad policy", nil, open(spec(1, 100, "replicate:0"), 100), ErrBadBody},
		{"zero deposit", nil, open(spec(2, 100, "replicate:1"), 0), ErrBadBody},
		{"deposit below max x segments x replicas", nil, open(spec(2, 100, "replicate:2"), 399), ErrDeposit},
		{"job already open", nil, open(spec(3, 100, "replicate:1"), 300), ErrJobExists},
		{"deposit above balance", nil, open(spec(2, 100, "replicate:1"), startBal), ledger.ErrInsufficientFunds},
	})
}

func TestAwardLeaseRejections(t *testing.T) {
	award := func(sender func(f *fixture) string, segs []uint32, bids func(f *fixture, a protocol.CID) [][]byte) func(f *fixture, a protocol.CID) (string, []byte) {
		return func(f *fixture, a protocol.CID) (string, []byte) {
			s := sender(f)
			return s, f.tx(s, TxAwardLease, AwardLease{Job: a, Segments: segs, Bids: bids(f, a)})
		}
	}
	renter := func(f *fixture) string { return f.renter }
	good := func(f *fixture, a protocol.CID) [][]byte { return [][]byte{f.bid(f.provs[2], a, 60, 5, 1)} }
	one := func(mk func(f *fixture, a protocol.CID) []byte) func(f *fixture, a protocol.CID) [][]byte {
		return func(f *fixture, a protocol.CID) [][]byte { return [][]byte{mk(f, a)} }
	}
	bidOf := func(f *fixture, a protocol.CID, p string) market.Bid {
		return market.Bid{Job: a, Provider: p, Price: 60, Capacity: 5, Expiry: 1_000_000, Nonce: 7}
	}
	runRejections(t, []rejectCase{
		{"not the renter", nil, award(func(f *fixture) string { return f.provs[2] }, nil, good), ErrNotRenter},
		{"unknown job", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			other := jobID(t, spec(9, 100, "replicate:1"))
			return f.renter, f.tx(f.renter, TxAwardLease, AwardLease{Job: other, Bids: good(f, other)})
		}, ErrUnknownJob},
		{"no bids", nil, award(renter, nil, func(*fixture, protocol.CID) [][]byte { return nil }), ErrBadBody},
		{"segments not ascending", nil, award(renter, []uint32{2, 1}, good), ErrBadBody},
		{"segment out of range", nil, award(renter, []uint32{3}, good), ErrBadSegment},
		{"segment leased", nil, award(renter, []uint32{0}, good), ErrSegmentTaken},
		{"segment verified", nil, award(renter, []uint32{1, 2}, good), ErrSegmentTaken},
		{"tampered signature", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			raw := f.bid(f.provs[2], a, 60, 5, 1)
			raw[len(raw)-1] ^= 1
			return raw
		})), ErrBadBid},
		{"other chain", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.sealBid(f.provs[2], "other", protocol.KindBid, bidOf(f, a, f.provs[2]))
		})), ErrBadBid},
		{"wrong kind", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.sealBid(f.provs[2], chain, protocol.KindJob, bidOf(f, a, f.provs[2]))
		})), ErrBadBid},
		{"signed by another", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.sealBid(f.provs[3], chain, protocol.KindBid, bidOf(f, a, f.provs[2]))
		})), ErrBadBid},
		{"names another job", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.bid(f.provs[2], jobID(t, spec(9, 100, "replicate:1")), 60, 5, 1)
		})), ErrBadBid},
		{"above max price", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.bid(f.provs[2], a, 101, 5, 1)
		})), ErrBadBid},
		{"provider not staked", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.bid(f.renter, a, 60, 5, 1)
		})), ErrNotStaked},
		{"bid expired", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			b := bidOf(f, a, f.provs[2])
			b.Expiry = int64(f.st.Height()+1)*1000 - f.p.ExpiryGraceMs
			return f.sealBid(f.provs[2], chain, protocol.KindBid, b)
		})), ErrBidExpired},
		{"bid already won", nil, award(renter, nil, one(func(f *fixture, a protocol.CID) []byte {
			return f.bid(f.provs[0], a, 50, 1, 1)
		})), ErrBidUsed},
		{"two bids of one provider", nil, award(renter, nil, func(f *fixture, a protocol.CID) [][]byte {
			return [][]byte{f.bid(f.provs[2], a, 60, 5, 1), f.bid(f.provs[2], a, 70, 5, 2)}
		}), market.ErrDuplicateBid},
		{"job cancelled", func(f *fixture, a protocol.CID) {
			f.mustOK(f.block(f.tx(f.renter, TxCancelJob, CancelJob{Job: a})))
		}, award(renter, nil, good), ErrJobCancelled},
	})
}

func TestSubmitResultRejections(t *testing.T) {
	submit := func(who func(f *fixture) string, r SubmitResult) func(f *fixture, a protocol.CID) (string, []byte) {
		return func(f *fixture, a protocol.CID) (string, []byte) {
			s := who(f)
			if !r.Job.Defined() {
				r.Job = a
			}
			return s, f.tx(s, TxSubmitResult, r)
		}
	}
	prov := func(i int) func(f *fixture) string { return func(f *fixture) string { return f.provs[i] } }
	b2 := jobID(t, spec(1, 100, "replicate:2"))
	runRejections(t, []rejectCase{
		{"garbage body", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.provs[0], f.rawTx(f.provs[0], TxSubmitResult, []byte("nope"))
		}, ErrBadBody},
		{"no output", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			// An undefined CID cannot be encoded: leave the field out.
			body := protocol.MustMarshal(struct {
				Job     protocol.CID `cbor:"1,keyasint"`
				Segment uint32       `cbor:"2,keyasint"`
			}{a, 0})
			return f.provs[0], f.rawTx(f.provs[0], TxSubmitResult, body)
		}, ErrBadBody},
		{"receipt too large", nil, submit(prov(0), SubmitResult{Segment: 0, Output: output("o"), Receipt: make([]byte, MaxReceipt+1)}), ErrBadBody},
		{"unknown job", nil, submit(prov(0), SubmitResult{Job: b2, Segment: 0, Output: output("o")}), ErrUnknownJob},
		{"segment out of range", nil, submit(prov(0), SubmitResult{Segment: 3, Output: output("o")}), ErrBadSegment},
		{"not the lease holder", nil, submit(prov(2), SubmitResult{Segment: 0, Output: output("o")}), ErrNoLease},
		{"open segment", nil, submit(prov(0), SubmitResult{Segment: 2, Output: output("o")}), ErrNoLease},
		{"already verified", nil, submit(prov(1), SubmitResult{Segment: 1, Output: output("o")}), ErrNotLeased},
		{"already submitted", func(f *fixture, a protocol.CID) {
			f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: spec(1, 100, "replicate:2"), Deposit: 200})))
			f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: b2, Bids: [][]byte{f.bid(f.provs[2], b2, 10, 1, 1), f.bid(f.provs[3], b2, 10, 1, 1)}})))
			f.mustOK(f.block(f.tx(f.provs[2], TxSubmitResult, SubmitResult{Job: b2, Segment: 0, Output: output("o")})))
		}, submit(prov(2), SubmitResult{Job: b2, Segment: 0, Output: output("o")}), ErrSubmitted},
	})
}

func TestCancelJobRejections(t *testing.T) {
	cancel := func(who func(f *fixture) string) func(f *fixture, a protocol.CID) (string, []byte) {
		return func(f *fixture, a protocol.CID) (string, []byte) {
			s := who(f)
			return s, f.tx(s, TxCancelJob, CancelJob{Job: a})
		}
	}
	renter := func(f *fixture) string { return f.renter }
	runRejections(t, []rejectCase{
		{"garbage body", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.renter, f.rawTx(f.renter, TxCancelJob, []byte{0xa0})
		}, ErrBadBody},
		{"unknown job", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.renter, f.tx(f.renter, TxCancelJob, CancelJob{Job: jobID(t, spec(9, 100, "replicate:1"))})
		}, ErrUnknownJob},
		{"not the renter", nil, cancel(func(f *fixture) string { return f.provs[0] }), ErrNotRenter},
		{"nothing unleased", func(f *fixture, a protocol.CID) {
			f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: a, Bids: [][]byte{f.bid(f.provs[2], a, 60, 5, 1)}})))
		}, cancel(renter), ErrNothingToCancel},
		{"already cancelled", func(f *fixture, a protocol.CID) {
			f.mustOK(f.block(f.tx(f.renter, TxCancelJob, CancelJob{Job: a})))
		}, cancel(renter), ErrJobCancelled},
	})
}

// TestCancelJob: cancelling refunds everything but the live leases' prices;
// a lease missed after the cancel is cancelled, not reopened; the job
// closes when its last lease settles.
func TestCancelJob(t *testing.T) {
	f, a := base(t)
	before := f.balance(f.renter)
	evs := f.mustOK(f.block(f.tx(f.renter, TxCancelJob, CancelJob{Job: a})))
	if c := kinds(evs, EventCancelled); len(c) != 1 || c[0].Amount != 200 {
		t.Fatalf("cancel events %+v", c)
	}
	if got := f.balance(f.renter); got != before+200-fee {
		t.Fatalf("renter refund %d, want 200", got+fee-before)
	}
	if j := f.job(a); j.Segments[2].State != SegCancelled || !j.Cancelled {
		t.Fatalf("job after cancel %+v", j)
	}
	f.idle(max(deadlineS, challenge) + 1)
	if _, ok, _ := JobOf(f.st, a); ok {
		t.Fatal("job not closed")
	}
	// Segment 1 paid provider 1; segment 0 was missed, so its 50 returned.
	if got := f.balance(f.renter); got != before+250-fee {
		t.Fatalf("renter total refund %d, want 250", got+fee-before)
	}
	if f.st.Escrow(EscrowID(a)) != 0 {
		t.Fatal("escrow not empty")
	}
	if r := f.rep(f.provs[0]); r.Failed != 1 {
		t.Fatalf("provider 0 reputation %+v", r)
	}
}

func TestParams(t *testing.T) {
	if _, err := Options(Params{BlockTimeMs: 0}); err == nil {
		t.Error("zero block time accepted")
	}
	if _, err := Options(Params{BlockTimeMs: 1000, ExpiryGraceMs: -1}); err == nil {
		t.Error("negative grace accepted")
	}
	for _, tc := range []struct {
		blockMs uint64
		sec     uint32
		want    uint64
	}{{1000, 10, 10}, {3000, 10, 4}, {3000, 9, 3}, {60_000, 1, 1}} {
		if got := (Params{BlockTimeMs: tc.blockMs}).deadlineBlocks(tc.sec); got != tc.want {
			t.Errorf("deadlineBlocks(%d s at %d ms) = %d, want %d", tc.sec, tc.blockMs, got, tc.want)
		}
	}
	opts, err := Options(DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.New(append(opts, opts[0])...); err == nil {
		t.Error("a market tx type registered twice")
	}
}
