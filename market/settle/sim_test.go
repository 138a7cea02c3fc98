package settle

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// TestRandomMarket drives several jobs through random awards, results
// (some wrong), validators' attestations, spot checks, missed deadlines,
// lapsed checks, exits and cancels. The fixture checks after every block
// that the supply invariant holds and that a follower's Apply reaches the
// proposer's state. At the end every job is closed with an empty escrow:
// disputes and checks lapse, so nothing holds a job open for ever.
func TestRandomMarket(t *testing.T) {
	total := map[ledger.EventKind]int{}
	for seed := range uint64(3) {
		f := newFixtureVals(t, nVals, 6)
		rng := rand.New(rand.NewPCG(seed, 42))
		nonce := map[string]uint64{}
		var jobs []protocol.CID
		count := map[ledger.EventKind]int{}
		policies := []string{"replicate:1", "replicate:2", "spotcheck:0.5", "spotcheck:1", "replicate:3", "replicate:2"}
		for i := range 6 {
			s := spec(uint32(1+rng.IntN(6)), 100, policies[i%len(policies)])
			s.Salt = seed*10 + uint64(i)
			jobs = append(jobs, jobID(t, s))
			f.mustOK(f.block(f.tx(f.renter, TxOpenJob, OpenJob{Spec: s, Deposit: 100 * uint64(s.Segments) * 3})))
		}
		for blk := range 80 {
			var txs [][]byte
			if blk == 30 || blk == 50 {
				// A provider gives notice; renters stop bidding it in.
				p := f.provs[rng.IntN(4)]
				if !Exiting(f.st, p) {
					txs = append(txs, f.tx(p, TxExit, Exit{}))
				}
			}
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
					if seg.State == SegDisputed || seg.State == SegChecking {
						// Validators re-run it now and then; one in ten
						// attests a wrong output.
						for _, v := range f.vals {
							if rng.IntN(3) != 0 || attested(seg, v) {
								continue
							}
							out := output("ok")
							if rng.IntN(10) == 0 {
								out = output("wrong")
							}
							txs = append(txs, f.tx(v, TxAttest, Attest{Job: id, Segment: uint32(i), Output: out}))
						}
					}
					if seg.State != SegLeased {
						continue
					}
					for _, l := range seg.Leases {
						if l.Output.Defined() || l.Provider == f.provs[5] || rng.IntN(3) == 0 {
							continue // provider 5 never delivers; the others are slow at times
						}
						out := output("ok")
						if rng.IntN(5) == 0 {
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
						case f.st.Bond(p).Provider < f.st.Params().MinProviderStake || Exiting(f.st, p):
							// Slashed out or leaving: a renter leaves them out
							// (the ledger would fail the whole award).
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
				case open && !j.Cancelled && rng.IntN(40) == 0:
					txs = append(txs, f.tx(f.renter, TxCancelJob, CancelJob{Job: id}))
				}
			}
			evs := f.block(txs...)
			for _, e := range evs {
				count[e.Kind]++
				if e.Kind == ledger.EventTxFailed && !expectedFailure(e) {
					t.Fatalf("seed %d: %s failed: %s", seed, e.TxType, e.Error)
				}
			}
		}
		// Wind down: cancel what is still open, let every lease expire,
		// every check lapse and every window pass.
		for _, id := range jobs {
			if j, ok, _ := JobOf(f.st, id); ok && !j.Cancelled {
				for _, e := range f.block(f.tx(f.renter, TxCancelJob, CancelJob{Job: id})) {
					count[e.Kind]++
				}
			}
		}
		for range deadlineS + checkBlks + challenge + 2 {
			for _, e := range f.block() {
				count[e.Kind]++
			}
		}
		for k, n := range count {
			total[k] += n
		}
		t.Logf("seed %d: %v", seed, count)
		for _, id := range jobs {
			if j, ok, err := JobOf(f.st, id); err != nil || ok {
				t.Fatalf("seed %d: job %s still open (%v): %+v", seed, id, err, j)
			}
			if esc := f.st.Escrow(EscrowID(id)); esc != 0 {
				t.Fatalf("seed %d: closed job %s left %d in escrow", seed, id, esc)
			}
		}
	}
	// The runs must have exercised every path.
	for _, k := range []ledger.EventKind{EventLease, EventPaid, EventMissed, EventJobClosed,
		EventDisputed, EventCheck, EventAttested, EventResolved, EventWrong, EventReopened, EventExit} {
		if total[k] == 0 {
			t.Errorf("no %s event in the runs: %v", k, total)
		}
	}
}

func attested(seg Segment, v string) bool {
	for _, a := range seg.Attests {
		if a.Validator == v {
			return true
		}
	}
	return false
}

// expectedFailure tells the failures the random market may cause: an award
// may fail (e.g. too little capacity for replicate:3), and a result or an
// attestation comes too late when an earlier tx of its block disputed or
// resolved the segment. Every other tx it sends is valid.
func expectedFailure(e ledger.Event) bool {
	switch e.TxType {
	case TxAwardLease:
		return true
	case TxSubmitResult:
		return strings.Contains(e.Error, ErrNotLeased.Error())
	case TxAttest:
		return strings.Contains(e.Error, ErrNotChecking.Error())
	}
	return false
}
