package ledger

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
)

var (
	propSeeds  = flag.Int("ledger.seeds", 24, "seeds for the random-workload property test")
	propBlocks = flag.Int("ledger.blocks", 30, "blocks per seed in the random-workload property test")
)

// TestRandomWorkloads drives random transfers, stakes, unstakes, unjails and
// evidence (valid and invalid) through Propose and Apply for many seeds, and
// checks after every block: the supply invariant and incremental hashes
// (CheckInvariant); that a second ledger verifying every signature from
// scratch with one worker reaches the same state; that Propose kept every
// workload tx and skipped every injected invalid one; and, for single-tx
// blocks whose tx failed, that only the fee and nonce changed.
// go test -run TestRandomWorkloads -ledger.seeds=1000 runs more.
func TestRandomWorkloads(t *testing.T) {
	strict, err := New(WithVerifier(SigVerifier{}), WithVerifyWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	total := map[EventKind]int{}
	t.Run("seeds", func(t *testing.T) {
		for seed := range uint64(*propSeeds) {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				counts := map[EventKind]int{}
				runWorkload(t, seed, *propBlocks, strict, counts)
				mu.Lock()
				defer mu.Unlock()
				for k, v := range counts {
					total[k] += v
				}
			})
		}
	})
	t.Logf("events over all seeds: %v", total)
	// The workload must reach every path it claims to test.
	for _, k := range []EventKind{EventTransfer, EventTxFailed, EventStake, EventUnstake, EventUnbonded, EventSlash, EventJail, EventUnjail, EventValidatorSet, EventReward} {
		if total[k] == 0 && !t.Failed() {
			t.Errorf("no %s event in %d seeds x %d blocks", k, *propSeeds, *propBlocks)
		}
	}
}

func runWorkload(t *testing.T, seed uint64, blocks int, strict *Ledger, counts map[EventKind]int) [32]byte {
	rng := newRand(seed)
	keys := NewKeyring(rng, 8)
	st, err := InitialState(keys.TestGenesis(testChain, 4, 100_000, 10_000))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := New()
	for range blocks {
		var txs [][]byte
		single := rng.IntN(4) == 0
		if single {
			txs = keys.RandomWorkload(rng, st, 1)
		} else {
			txs = keys.RandomWorkload(rng, st, rng.IntN(30))
		}
		valid := len(txs)
		// Invalid txs the proposer must skip: a replay of the first, a
		// corrupted copy, garbage.
		var invalid [][]byte
		if len(txs) > 0 && rng.IntN(3) == 0 {
			bad := append([]byte(nil), txs[0]...)
			bad[len(bad)-1-rng.IntN(64)] ^= byte(1 + rng.IntN(255))
			invalid = append(invalid, txs[0], bad, []byte("garbage"))
		}
		for _, x := range invalid {
			txs = append(txs, x)
		}
		evs := keys.RandomEvidence(rng, st, rng.IntN(3))
		vals, _ := ValidatorSet(st, st.Height()+1)
		hdr := Header{ChainID: testChain, Proposer: vals[rng.IntN(len(vals))].ID, Time: int64(st.Height()) * 1000}
		blk, ns, events, skipped, err := l.Propose(st, hdr, txs, evs)
		if err != nil {
			t.Fatalf("seed %d height %d: Propose: %v", seed, st.Height()+1, err)
		}
		if len(blk.Txs) != valid || len(skipped) != len(invalid) {
			t.Fatalf("seed %d height %d: kept %d of %d valid txs, skipped %d of %d invalid", seed, blk.Header.Height, len(blk.Txs), valid, len(skipped), len(invalid))
		}
		ns2, events2, err := strict.Apply(st, blk)
		if err != nil {
			t.Fatalf("seed %d height %d: Apply of proposed block: %v", seed, blk.Header.Height, err)
		}
		if ns2.Hash() != ns.Hash() || len(events2) != len(events) {
			t.Fatalf("seed %d height %d: Propose and Apply disagree", seed, blk.Header.Height)
		}
		if err := CheckInvariant(ns2); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if single && len(blk.Txs) == 1 && len(blk.Evidence) == 0 {
			if f := eventsOf(events, EventTxFailed); len(f) == 1 {
				v, _ := SigVerifier{}.VerifyTx(testChain, blk.Txs[0])
				assertOnlyFeeAndNonce(t, st, ns2, v.Sender, v.Tx.Fee, events)
				if !strings.HasPrefix(f[0].Error, "ledger: ") {
					t.Errorf("failure receipt without a ledger error: %q", f[0].Error)
				}
			}
		}
		for _, e := range events {
			counts[e.Kind]++
		}
		st = ns2
	}
	return st.Hash()
}

// TestDeterministic: the same seed gives the same final state hash, with
// any number of verify workers; different seeds differ.
func TestDeterministic(t *testing.T) {
	one, _ := New(WithVerifyWorkers(1))
	four, _ := New(WithVerifyWorkers(4), WithVerifier(SigVerifier{}))
	a := runWorkload(t, 7, 15, one, map[EventKind]int{})
	b := runWorkload(t, 7, 15, four, map[EventKind]int{})
	c := runWorkload(t, 8, 15, one, map[EventKind]int{})
	if a != b {
		t.Fatalf("seed 7 gave %x and %x", a[:8], b[:8])
	}
	if a == c {
		t.Fatal("seeds 7 and 8 gave the same state")
	}
}
