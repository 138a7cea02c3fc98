package consensus

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// countingVerifier counts calls and, if gate is set, holds each until it
// is closed.
type countingVerifier struct {
	calls atomic.Int32
	gate  chan struct{}
}

func (c *countingVerifier) VerifyTx(chainID string, raw []byte) (*ledger.VerifiedTx, error) {
	c.calls.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return ledger.SigVerifier{}.VerifyTx(chainID, raw)
}

func signedTransfers(t *testing.T, n int) [][]byte {
	t.Helper()
	d := newDriver(t)
	var out [][]byte
	for i := range n {
		tx, err := ledger.NewTx(ledger.TxTransfer, uint64(i), 1, ledger.Transfer{To: d.keys.IDs[2], Amount: 1})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ledger.SignTx(d.keys.Key(d.keys.IDs[1]), testChain, time.UnixMilli(1), tx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func TestTxVerifierCaches(t *testing.T) {
	txs := signedTransfers(t, 3)
	inner := &countingVerifier{}
	v := newTxVerifier(testChain, 2)
	v.inner = inner
	for range 3 {
		vt, err := v.VerifyTx(testChain, txs[0])
		if err != nil || vt.Hash != ledger.TxHash(txs[0]) || vt.Tx.Nonce != 0 {
			t.Fatalf("VerifyTx = %+v, %v", vt, err)
		}
	}
	if n := inner.calls.Load(); n != 1 {
		t.Fatalf("3 verifies of one tx checked it %d times, want 1", n)
	}
	// A rejection is not remembered: the same bad bytes are checked again.
	bad := append([]byte{}, txs[1]...)
	bad[len(bad)-1] ^= 1
	for range 2 {
		if _, err := v.VerifyTx(testChain, bad); !errors.Is(err, ledger.ErrBadTx) {
			t.Fatalf("bad signature: %v", err)
		}
	}
	if n := inner.calls.Load(); n != 3 {
		t.Fatalf("after 2 rejections %d checks, want 3", n)
	}
	// Size 2: a third tx evicts the oldest, which is then checked again.
	for _, raw := range [][]byte{txs[1], txs[2], txs[0]} {
		if _, err := v.VerifyTx(testChain, raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := inner.calls.Load(); n != 6 {
		t.Fatalf("after eviction %d checks, want 6", n)
	}
	if v.cached() != 2 {
		t.Fatalf("cached %d, want 2", v.cached())
	}
	// Another chain's txs bypass the cache (and fail: signed for testChain).
	if _, err := v.VerifyTx("other", txs[0]); !errors.Is(err, ledger.ErrBadTx) {
		t.Fatalf("wrong chain: %v", err)
	}
}

func TestTxVerifierDeduplicatesConcurrentVerifies(t *testing.T) {
	txs := signedTransfers(t, 1)
	synctest.Test(t, func(t *testing.T) {
		inner := &countingVerifier{gate: make(chan struct{})}
		v := newTxVerifier(testChain, 16)
		v.inner = inner
		var wg sync.WaitGroup
		results := make([]*ledger.VerifiedTx, 8)
		for i := range results {
			wg.Go(func() {
				vt, err := v.VerifyTx(testChain, txs[0])
				if err != nil {
					t.Error(err)
				}
				results[i] = vt
			})
		}
		synctest.Wait() // all 8 blocked: one in the inner verifier, 7 waiting for it
		close(inner.gate)
		wg.Wait()
		if n := inner.calls.Load(); n != 1 {
			t.Fatalf("8 concurrent verifies checked the tx %d times, want 1", n)
		}
		for _, vt := range results {
			if vt != results[0] || vt == nil {
				t.Fatal("concurrent verifies got different results")
			}
		}
	})
}

func TestTxVerifierPrime(t *testing.T) {
	txs := signedTransfers(t, 1)
	env, err := protocol.Open(txs[0], testChain)
	if err != nil {
		t.Fatal(err)
	}
	inner := &countingVerifier{}
	v := newTxVerifier(testChain, 16)
	v.inner = inner
	if err := v.prime(txs[0], env); err != nil {
		t.Fatal(err)
	}
	vt, err := v.VerifyTx(testChain, txs[0])
	if err != nil || inner.calls.Load() != 0 {
		t.Fatalf("primed tx: %v, %d checks", err, inner.calls.Load())
	}
	want, _ := ledger.SigVerifier{}.VerifyTx(testChain, txs[0])
	if vt.Sender != want.Sender || vt.Hash != want.Hash || vt.Tx.Nonce != want.Tx.Nonce {
		t.Fatalf("primed %+v, verified %+v", vt, want)
	}
	ping := *env
	ping.Kind = protocol.KindPing
	if err := v.prime(txs[0], &ping); !errors.Is(err, ErrTxRejected) {
		t.Fatalf("prime of a ping: %v", err)
	}
}

// TestVerifyAllSlots: gossip validation verifies in at most GOMAXPROCS
// slots; the consensus loop (wait unset) verifies even when every slot is
// taken, and a failure anywhere in a batch is reported.
func TestVerifyAllSlots(t *testing.T) {
	txs := signedTransfers(t, 100)
	v := newTxVerifier(testChain, 1024)
	for range cap(v.slots) {
		v.slots <- struct{}{}
	}
	if err := verifyAll(v, testChain, txs, false); err != nil {
		t.Fatal(err)
	}
	if v.cached() != len(txs) {
		t.Fatalf("cached %d, want %d", v.cached(), len(txs))
	}
	for range cap(v.slots) {
		<-v.slots
	}
	bad := append([][]byte{}, txs...)
	bad[70] = append([]byte{}, bad[70]...)
	bad[70][len(bad[70])-1] ^= 1
	w := newTxVerifier(testChain, 1024)
	if err := verifyAll(w, testChain, bad, true); !errors.Is(err, ledger.ErrBadTx) {
		t.Fatalf("batch with a bad tx: %v", err)
	}
	if len(w.slots) != 0 {
		t.Fatal("verifyAll kept a slot")
	}
}
