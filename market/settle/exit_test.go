package settle

import (
	"testing"

	"github.com/gpunode/gpunode/protocol"
)

func TestExitRejections(t *testing.T) {
	runRejections(t, []rejectCase{
		{"garbage body", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.provs[2], f.rawTx(f.provs[2], TxExit, []byte{0xa1, 0x01, 0x01})
		}, ErrBadBody},
		{"not a provider", nil, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.renter, f.tx(f.renter, TxExit, Exit{})
		}, ErrNotProvider},
		{"exit twice", func(f *fixture, a protocol.CID) {
			f.mustOK(f.block(f.tx(f.provs[2], TxExit, Exit{})))
		}, func(f *fixture, a protocol.CID) (string, []byte) {
			return f.provs[2], f.tx(f.provs[2], TxExit, Exit{})
		}, ErrExiting},
		{"award to an exiting provider", func(f *fixture, a protocol.CID) {
			f.mustOK(f.block(f.tx(f.provs[2], TxExit, Exit{})))
		}, func(f *fixture, a protocol.CID) (string, []byte) {
			// A good bid beside it does not save the tx.
			return f.renter, f.tx(f.renter, TxAwardLease, AwardLease{Job: a, Bids: [][]byte{f.bid(f.provs[3], a, 60, 5, 1), f.bid(f.provs[2], a, 50, 5, 1)}})
		}, ErrExiting},
	})
}

// TestExit: a provider gives notice; it wins no new lease, its current
// lease runs on and is paid.
func TestExit(t *testing.T) {
	f, a := base(t) // provider 0 holds a lease on segment 0 of job A
	p := f.provs[0]
	if Exiting(f.st, p) {
		t.Fatal("exiting before notice")
	}
	evs := f.mustOK(f.block(f.tx(p, TxExit, Exit{})))
	if e := kinds(evs, EventExit); len(e) != 1 || e[0].Account != p {
		t.Fatalf("exit events %+v", e)
	}
	if !Exiting(f.st, p) || Exiting(f.st, f.provs[1]) {
		t.Fatal("Exiting wrong after notice")
	}
	f.expectFail(f.renter, f.tx(f.renter, TxAwardLease, AwardLease{Job: a, Bids: [][]byte{f.bid(p, a, 10, 1, 2)}}), ErrExiting, a)
	f.mustOK(f.block(
		f.tx(p, TxSubmitResult, SubmitResult{Job: a, Segment: 0, Output: output("0")}),
		f.tx(f.renter, TxAwardLease, AwardLease{Job: a, Bids: [][]byte{f.bid(f.provs[2], a, 60, 1, 1)}}),
	))
	f.mustOK(f.block(f.tx(f.provs[2], TxSubmitResult, SubmitResult{Job: a, Segment: 2, Output: output("2")})))
	f.idle(challenge)
	if _, ok, _ := JobOf(f.st, a); ok {
		t.Fatal("job not closed")
	}
	if r := f.rep(p); r.Completed != 1 {
		t.Fatalf("exiting provider's lease not paid: %+v", r)
	}
}
