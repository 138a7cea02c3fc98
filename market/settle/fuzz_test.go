package settle

import (
	"bytes"
	"testing"

	"github.com/gpunode/gpunode/protocol"
)

// roundTrip checks that an accepted body re-encodes to the same bytes
// (strict, canonical decoding).
func roundTrip(t *testing.T, data []byte, v any) {
	t.Helper()
	again, err := protocol.Marshal(v)
	if err != nil {
		t.Fatalf("accepted body does not re-encode: %v", err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("accepted non-canonical body %x (canonical %x)", data, again)
	}
}

func seedCID() protocol.CID { return output("seed") }

func FuzzDecodeOpenJob(f *testing.F) {
	f.Add(protocol.MustMarshal(OpenJob{Spec: spec(3, 100, "replicate:2"), Deposit: 600}))
	f.Add(protocol.MustMarshal(OpenJob{Spec: spec(1, 1, "spotcheck:0.1"), Deposit: 1}))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := DecodeOpenJob(data)
		if err != nil {
			return
		}
		if o.Deposit == 0 || o.Spec.Check() != nil {
			t.Fatal("accepted a bad open_job")
		}
		roundTrip(t, data, o)
	})
}

func FuzzDecodeAwardLease(f *testing.F) {
	f.Add(protocol.MustMarshal(AwardLease{Job: seedCID(), Bids: [][]byte{{1, 2, 3}}, Segments: []uint32{0, 4}}))
	f.Add(protocol.MustMarshal(AwardLease{Job: seedCID(), Bids: [][]byte{{1}}, MaxPerProvider: 2}))
	f.Add([]byte{0xa1, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAwardLease(data)
		if err != nil {
			return
		}
		if !a.Job.Defined() || len(a.Bids) == 0 || len(a.Bids) > MaxAwardBids {
			t.Fatal("accepted a bad award_lease")
		}
		for i := 1; i < len(a.Segments); i++ {
			if a.Segments[i] <= a.Segments[i-1] {
				t.Fatal("accepted unsorted segments")
			}
		}
		roundTrip(t, data, a)
	})
}

func FuzzDecodeSubmitResult(f *testing.F) {
	f.Add(protocol.MustMarshal(SubmitResult{Job: seedCID(), Segment: 3, Output: output("o"), Receipt: []byte("r")}))
	f.Add(protocol.MustMarshal(SubmitResult{Job: seedCID(), Output: output("o")}))
	f.Add([]byte("\xa0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSubmitResult(data)
		if err != nil {
			return
		}
		if !s.Job.Defined() || !s.Output.Defined() || len(s.Receipt) > MaxReceipt {
			t.Fatal("accepted a bad submit_result")
		}
		roundTrip(t, data, s)
	})
}

func FuzzDecodeCancelJob(f *testing.F) {
	f.Add(protocol.MustMarshal(CancelJob{Job: seedCID()}))
	f.Add([]byte{0xa1, 0x01, 0x40})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCancelJob(data)
		if err != nil {
			return
		}
		if !c.Job.Defined() {
			t.Fatal("accepted a cancel_job without a job")
		}
		roundTrip(t, data, c)
	})
}

func FuzzDecodeJob(f *testing.F) {
	f.Add(protocol.MustMarshal(Job{Renter: "r", Spec: spec(2, 10, "replicate:1"), Owed: 3, Unsettled: 2, Used: []UsedBid{{"p", 1}}}))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := DecodeJob(data)
		if err != nil {
			return
		}
		if j.Unsettled > j.Spec.Segments {
			t.Fatal("accepted a job record with more unsettled segments than segments")
		}
		roundTrip(t, data, j)
	})
}

func FuzzDecodeAttest(f *testing.F) {
	f.Add(protocol.MustMarshal(Attest{Job: seedCID(), Segment: 3, Output: output("o")}))
	f.Add(protocol.MustMarshal(Attest{Job: seedCID(), Output: output("o")}))
	f.Add([]byte{0xa1, 0x02, 0x01})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAttest(data)
		if err != nil {
			return
		}
		if !a.Job.Defined() || !a.Output.Defined() {
			t.Fatal("accepted an attest without job or output")
		}
		roundTrip(t, data, a)
	})
}

func FuzzDecodeExit(f *testing.F) {
	f.Add(protocol.MustMarshal(Exit{}))
	f.Add([]byte{0xa1, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeExit(data)
		if err != nil {
			return
		}
		roundTrip(t, data, e)
	})
}
