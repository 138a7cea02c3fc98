package ledger

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	propSeeds  = flag.Int("ledger.seeds", 0, "seeds for the random-workload property test (default 16, 250 with GPUNODE_E2E=1)")
	propBlocks = flag.Int("ledger.blocks", 0, "blocks per seed in the random-workload property test (default 30, 60 with GPUNODE_E2E=1)")
)

// workloadSize is the property test's size: small for the unit suite, large
// for `make e2e` (which sets GPUNODE_E2E=1 and runs tests named *Sim*),
// and whatever the flags say when given.
func workloadSize() (seeds, blocks int) {
	seeds, blocks = 16, 30
	if os.Getenv("GPUNODE_E2E") == "1" {
		seeds, blocks = 250, 60
	}
	if *propSeeds > 0 {
		seeds = *propSeeds
	}
	if *propBlocks > 0 {
		blocks = *propBlocks
	}
	return seeds, blocks
}

// TestRandomWorkloads drives random transfers, stakes, unstakes, unjails and
// evidence (valid and invalid) through Propose and Apply for many seeds, and
// checks after every block: the supply invariant and incremental hashes
// (CheckInvariant); that Apply of the proposed block reaches the same state
// as Propose (for every fourth seed on a second ledger that verifies every
// signature from scratch with one worker); that Propose kept every
// workload tx and skipped every injected invalid one; and, for single-tx
// blocks whose tx failed, that only the fee and nonce changed.
// go test -run TestSimRandomWorkloads -ledger.seeds=1000 runs more.
func TestSimRandomWorkloads(t *testing.T) {
	nSeeds, nBlocks := workloadSize()
	strict, err := New(WithVerifier(SigVerifier{}), WithVerifyWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	total := map[EventKind]int{}
	t.Run("seeds", func(t *testing.T) {
		for seed := range uint64(nSeeds) {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				counts := map[EventKind]int{}
				runWorkload(t, seed, nBlocks, strict, counts)
				mu.Lock()
				defer mu.Unlock()
				for k, v := range counts {
					total[k] += v
				}
			})
		}
	})
	t.Logf("events over all seeds: %v", total)
	// The workload must reach every path it claims to test (given enough
	// blocks for unbonding, 20 in TestGenesis, and jail terms to run out).
	if nSeeds < 8 || nBlocks <= 20 {
		return
	}
	for _, k := range []EventKind{EventTransfer, EventTxFailed, EventStake, EventUnstake, EventUnbonded, EventSlash, EventJail, EventUnjail, EventValidatorSet, EventReward} {
		if total[k] == 0 && !t.Failed() {
			t.Errorf("no %s event in %d seeds x %d blocks", k, nSeeds, nBlocks)
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
		txs = append(txs, invalid...)
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
		// Every fourth seed re-verifies every signature from scratch;
		// the others share the proposer's verified-tx cache.
		check := l
		if seed%4 == 0 {
			check = strict
		}
		ns2, events2, err := check.Apply(st, blk)
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

// TestParallelVerify: a block large enough for several verify workers gives
// the same state as one worker, and a bad signature deep inside it is
// reported at its index whichever worker found it.
func TestParallelVerify(t *testing.T) {
	f := newFixture(t, 40, 4)
	rng := newRand(31)
	var txs [][]byte
	for len(txs) < 300 {
		txs = append(txs, f.keys.RandomWorkload(rng, f.st, 300-len(txs))...)
	}
	blk := f.block(txs, nil)
	one, _ := New(WithVerifier(SigVerifier{}), WithVerifyWorkers(1))
	four, _ := New(WithVerifier(SigVerifier{}), WithVerifyWorkers(4))
	a, _, err1 := one.Apply(f.st, blk)
	b, _, err2 := four.Apply(f.st, blk)
	if err1 != nil || err2 != nil || a.Hash() != b.Hash() {
		t.Fatalf("1 worker: %v, 4 workers: %v", err1, err2)
	}
	bad := *blk
	bad.Txs = slices.Clone(blk.Txs)
	bad.Txs[250] = slices.Clone(bad.Txs[250])
	bad.Txs[250][len(bad.Txs[250])-1] ^= 1
	bad.Header.TxRoot = TxRoot(bad.Txs)
	for _, l := range []*Ledger{one, four} {
		if _, _, err := l.Apply(f.st, &bad); !errors.Is(err, ErrBadTx) || !strings.HasPrefix(err.Error(), "tx 250:") {
			t.Fatalf("Apply with bad tx 250 = %v", err)
		}
	}
}
