package settle

import (
	"testing"

	"github.com/gpunode/gpunode/consensus/ledger"
)

// BenchmarkSubmitResult measures a block carrying one submit_result on a
// job of 10,000 leased segments: the job record is decoded and rewritten
// whole, so this is the per-tx cost of a large job.
func BenchmarkSubmitResult(b *testing.B) {
	const segs = 10_000
	f := newFixture(b, 4)
	s := spec(segs, 50, "replicate:1")
	id := jobID(b, s)
	f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 50 * segs})))
	var bids [][]byte
	for _, p := range f.provs {
		bids = append(bids, f.bid(p, id, 50, segs/4, 1))
	}
	f.mustOK(f.block(f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: bids})))
	j := f.job(id)
	vals, err := ledger.ValidatorSet(f.st, f.st.Height()+1)
	if err != nil {
		b.Fatal(err)
	}
	hdr := ledger.Header{ChainID: chain, Proposer: vals[0].ID, Time: int64(f.st.Height()+1) * 1000}
	i := 0
	for b.Loop() {
		seg := i % segs
		p := j.Segments[seg].Leases[0].Provider
		raw := f.tx(p, TxSubmitResult, SubmitResult{Job: id, Segment: uint32(seg), Output: output("o")})
		clear(f.pending)
		_, _, evs, _, err := f.l.Propose(f.st, hdr, [][]byte{raw}, nil)
		if err != nil || len(kinds(evs, EventResult)) != 1 {
			b.Fatalf("Propose: %v %+v", err, evs)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/block")
}
