package settle

import (
	"math/rand/v2"
	"testing"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// TestRandomMarket drives several jobs through random awards, results
// (some wrong), missed deadlines and cancels. The fixture checks after
// every block that the supply invariant holds and that a follower's Apply
// reaches the proposer's state. At the end every job is closed with an
// empty escrow, except jobs held open by a dispute, whose escrow still
// covers what they owe.
func TestRandomMarket(t *testing.T) {
	for seed := range uint64(3) {
		f := newFixture(t, 6)
		rng := rand.New(rand.NewPCG(seed, 42))
		nonce := map[string]uint64{}
		var jobs []protocol.CID
		count := map[ledger.EventKind]int{}
		for i := range 4 {
			pol := "replicate:1"
			if i%2 == 1 {
				pol = "replicate:2"
			}
			s := spec(uint32(1+rng.IntN(6)), 100, pol)
			s.Salt = seed*10 + uint64(i)
			jobs = append(jobs, jobID(t, s))
			f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 100 * uint64(s.Segments) * 2})))
		}
		for range 60 {
			var txs [][]byte
			for _, id := range jobs {
				j, ok, err := JobOf(f.st, id)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					continue
				}
				open := false
				for i, seg := range j.Segments {
					open = open || seg.State == SegOpen
					if seg.State != SegLeased {
						continue
					}
					for _, l := range seg.Leases {
						if l.Output.Defined() || l.Provider == f.provs[5] || rng.IntN(3) == 0 {
							continue // provider 5 never delivers; the others are slow at times
						}
						out := output("ok")
						if rng.IntN(8) == 0 {
							out = output("wrong")
						}
						txs = append(txs, f.tx(l.Provider, TxSubmitResult, SubmitResult{Job: id, Segment: uint32(i), Output: out}))
					}
				}
				switch {
				case open && !j.Cancelled && rng.IntN(3) == 0:
					var bids [][]byte
					for _, p := range f.provs {
						switch {
						case p == f.provs[5] && f.st.Bond(p).Provider < f.st.Params().MinProviderStake:
							// Slashed out: a renter leaves unstaked providers out (the
							// ledger would fail the whole award).
						case p == f.provs[5]: // the cheapest, and never delivers
							nonce[p]++
							bids = append(bids, f.bid(p, id, 10, 1, nonce[p]))
						case rng.IntN(2) == 0:
							nonce[p]++
							bids = append(bids, f.bid(p, id, uint64(11+rng.IntN(90)), uint32(1+rng.IntN(4)), nonce[p]))
						}
					}
					if len(bids) > 0 {
						txs = append(txs, f.tx(f.renter, TxAwardLease, AwardLease{Job: id, Bids: bids}))
					}
				case open && !j.Cancelled && rng.IntN(30) == 0:
					txs = append(txs, f.tx(f.renter, TxCancelJob, CancelJob{Job: id}))
				}
			}
			for _, e := range f.block(txs...) {
				count[e.Kind]++
			}
		}
		// Wind down: cancel what is still open, let every lease expire
		// and every window pass.
		for _, id := range jobs {
			if j, ok, _ := JobOf(f.st, id); ok && !j.Cancelled {
				f.block(f.tx(f.renter, TxCancelJob, CancelJob{Job: id}))
			}
		}
		for range deadlineS + challenge + 2 {
			for _, e := range f.block() {
				count[e.Kind]++
			}
		}
		// The run must have exercised every path.
		for _, k := range []ledger.EventKind{EventLease, EventPaid, EventMissed, EventJobClosed} {
			if count[k] == 0 {
				t.Errorf("seed %d: no %s event in the run: %v", seed, k, count)
			}
		}
		t.Logf("seed %d: %v", seed, count)
		for _, id := range jobs {
			j, ok, err := JobOf(f.st, id)
			if err != nil {
				t.Fatal(err)
			}
			esc := f.st.Escrow(EscrowID(id))
			if !ok {
				if esc != 0 {
					t.Fatalf("seed %d: closed job %s left %d in escrow", seed, id, esc)
				}
				continue
			}
			disputed := false
			for _, seg := range j.Segments {
				switch seg.State {
				case SegDisputed:
					disputed = true
				case SegPaid, SegCancelled:
				default:
					t.Fatalf("seed %d: segment left %s", seed, seg.State)
				}
			}
			if !disputed || esc < j.Owed {
				t.Fatalf("seed %d: open job without dispute (%v) or escrow %d below owed %d", seed, disputed, esc, j.Owed)
			}
		}
	}
}
