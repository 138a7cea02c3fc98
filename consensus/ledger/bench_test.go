package ledger

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"
)

// BenchmarkApplyTransfers applies one block of signed transfers (each from
// a distinct sender, to existing and new accounts) to a state with many
// accounts, and reports tx/s and ms per block. Apply never mutates its
// input, so every iteration applies the same block to the same state.
// tx/cpu-s divides by the CPU time the process used (all goroutines, GC
// included): on a busy shared machine it is the steadier figure; on an
// idle 2-core machine tx/s is up to twice it when verification runs on both
// cores.
//
//   - verify=cached: the txs were verified before (by the mempool, here by
//     Propose) through the ledger's CachingVerifier: the cost of execution,
//     hashing and the new state.
//   - verify=full: every signature is checked during Apply, on GOMAXPROCS
//     goroutines.
func BenchmarkApplyTransfers(b *testing.B) {
	for _, nAcct := range []int{10_000, 100_000} {
		const nTx = 2000
		keys, st := benchState(b, nAcct)
		rng := newRand(7)
		fresh := NewKeyring(newRand(8), nTx/10) // recipients without accounts yet
		txs := make([][]byte, nTx)
		for i := range txs {
			to := keys.IDs[rng.IntN(nAcct)]
			if i%10 == 0 {
				to = fresh.IDs[i/10]
			}
			tx, err := NewTx(TxTransfer, 0, 1, Transfer{To: to, Amount: 1 + rng.Uint64N(1000)})
			if err != nil {
				b.Fatal(err)
			}
			if txs[i], err = keys.Sign(testChain, keys.IDs[(i+4)%nAcct], tx); err != nil {
				b.Fatal(err)
			}
		}
		vals, _ := ValidatorSet(st, 1)
		for _, mode := range []string{"cached", "full"} {
			b.Run(fmt.Sprintf("accounts=%d/txs=%d/verify=%s", nAcct, nTx, mode), func(b *testing.B) {
				var l *Ledger
				if mode == "cached" {
					l, _ = New()
				} else {
					l, _ = New(WithVerifier(SigVerifier{}))
				}
				blk, _, _, skipped, err := l.Propose(st, Header{ChainID: testChain, Proposer: vals[0].ID}, txs, nil)
				if err != nil || len(skipped) != 0 {
					b.Fatalf("Propose: %v, skipped %d", err, len(skipped))
				}
				b.ReportAllocs()
				b.ResetTimer()
				start, cpu := time.Now(), processCPU()
				for range b.N {
					if _, _, err := l.Apply(st, blk); err != nil {
						b.Fatal(err)
					}
				}
				el, cpuEl := time.Since(start), processCPU()-cpu
				b.ReportMetric(float64(b.N*nTx)/el.Seconds(), "tx/s")
				b.ReportMetric(float64(el.Milliseconds())/float64(b.N), "ms/block")
				if cpuEl > 0 {
					b.ReportMetric(float64(b.N*nTx)/cpuEl.Seconds(), "tx/cpu-s")
				}
			})
		}
	}
}

// BenchmarkVerifyTx measures one tx's full check (strict envelope decode,
// Ed25519 signature, tx decode) against a bare ed25519.Verify, to show
// where a validator's per-tx time goes.
func BenchmarkVerifyTx(b *testing.B) {
	keys := NewKeyring(newRand(1), 2)
	tx, _ := NewTx(TxTransfer, 0, 1, Transfer{To: keys.IDs[1], Amount: 5})
	raw, err := keys.Sign(testChain, keys.IDs[0], tx)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("envelope", func(b *testing.B) {
		for range b.N {
			if _, err := (SigVerifier{}).VerifyTx(testChain, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ed25519-only", func(b *testing.B) {
		priv := keys.Ed25519(keys.IDs[0])
		pub := priv.Public().(ed25519.PublicKey)
		sig := ed25519.Sign(priv, raw)
		for range b.N {
			if !ed25519.Verify(pub, raw, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}

// BenchmarkApplyBlock applies a block of transfers (each from a distinct
// sender to a random existing account) to a state of 10,000 accounts,
// with the signatures already cached: the cost of executing the block and
// building the new state. Per-block work should grow with the txs, not
// with the size of the state's maps.
func BenchmarkApplyBlock(b *testing.B) {
	const nAcct = 10_000
	keys, st := benchState(b, nAcct)
	vals, _ := ValidatorSet(st, 1)
	for _, nTx := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("accounts=%d/txs=%d", nAcct, nTx), func(b *testing.B) {
			rng := newRand(7)
			txs := make([][]byte, nTx)
			for i := range txs {
				tx, err := NewTx(TxTransfer, 0, 1, Transfer{To: keys.IDs[rng.IntN(nAcct)], Amount: 1 + rng.Uint64N(1000)})
				if err != nil {
					b.Fatal(err)
				}
				if txs[i], err = keys.Sign(testChain, keys.IDs[4+i], tx); err != nil {
					b.Fatal(err)
				}
			}
			l, _ := New()
			blk, _, _, skipped, err := l.Propose(st, Header{ChainID: testChain, Proposer: vals[0].ID}, txs, nil)
			if err != nil || len(skipped) != 0 {
				b.Fatalf("Propose: %v, skipped %d", err, len(skipped))
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := l.Apply(st, blk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchState is the benchmarks' genesis state: nAcct accounts of 1,000,000
// each, the first four also validators with 10,000 stake.
func benchState(b *testing.B, nAcct int) (*Keyring, *State) {
	b.Helper()
	keys := NewKeyring(newRand(42), nAcct)
	g := keys.TestGenesis(testChain, 0, 0, 0)
	g.Accounts = g.Accounts[:0]
	for _, id := range keys.IDs {
		g.Accounts = append(g.Accounts, GenesisAccount{ID: id, Balance: 1_000_000})
	}
	for i := 0; i < 4; i++ {
		if err := g.AddValidator(keys.IDs[i], 10_000); err != nil {
			b.Fatal(err)
		}
	}
	st, err := InitialState(g)
	if err != nil {
		b.Fatal(err)
	}
	return keys, st
}
