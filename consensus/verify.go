package consensus

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// txVerifier is the node's one tx verifier: the txs topic validator, the
// mempool and block execution (the ledger's Verifier) all ask it, so each
// tx's signature is checked once per node. It remembers the txs it
// accepted, keyed by tx hash (the sha256 of the exact bytes, so a cached
// answer is the answer for those bytes), at most size of them, forgetting
// the oldest first. Concurrent verifies of the same tx wait for the first
// one instead of repeating it (a tx arrives in several gossip messages at
// once). Rejections are not remembered. Safe for concurrent use.
type txVerifier struct {
	chainID string
	inner   ledger.Verifier // ledger.SigVerifier; tests count calls
	size    int

	slots chan struct{} // capacity GOMAXPROCS: see verifyAll

	mu    sync.Mutex // guards calls, ring and next
	calls map[[32]byte]*verifyCall
	ring  [][32]byte // accepted txs in insertion order, len <= size
	next  int
}

// verifyCall is one verification, in flight until done is closed.
type verifyCall struct {
	done chan struct{}
	vt   *ledger.VerifiedTx // set before done is closed
	err  error
}

func newTxVerifier(chainID string, size int) *txVerifier {
	return &txVerifier{chainID: chainID, inner: ledger.SigVerifier{}, size: max(size, 1),
		calls: make(map[[32]byte]*verifyCall), slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// VerifyTx implements ledger.Verifier.
func (v *txVerifier) VerifyTx(chainID string, raw []byte) (*ledger.VerifiedTx, error) {
	if chainID != v.chainID {
		return v.inner.VerifyTx(chainID, raw)
	}
	h := ledger.TxHash(raw)
	v.mu.Lock()
	if c := v.calls[h]; c != nil {
		v.mu.Unlock()
		<-c.done
		return c.vt, c.err
	}
	c := &verifyCall{done: make(chan struct{})}
	v.calls[h] = c
	v.mu.Unlock()
	c.vt, c.err = v.inner.VerifyTx(chainID, raw)
	v.finish(h, c)
	return c.vt, c.err
}

// finish records c's outcome and releases its waiters.
func (v *txVerifier) finish(h [32]byte, c *verifyCall) {
	v.mu.Lock()
	if c.err != nil {
		delete(v.calls, h)
	} else {
		v.remember(h)
	}
	v.mu.Unlock()
	close(c.done)
}

// remember puts h in the ring, evicting the oldest; mu is held.
func (v *txVerifier) remember(h [32]byte) {
	if len(v.ring) < v.size {
		v.ring = append(v.ring, h)
		return
	}
	delete(v.calls, v.ring[v.next])
	v.ring[v.next] = h
	v.next = (v.next + 1) % v.size
}

// prime records raw, an envelope that protocol.Open already authenticated
// for the chain (the topic's envelope check), as verified without checking
// its signature again. It does the rest of ledger.SigVerifier's checks (a
// KindTx envelope with a valid tx payload).
func (v *txVerifier) prime(raw []byte, env *protocol.Envelope) error {
	if env.Kind != protocol.KindTx {
		return fmt.Errorf("%w: envelope kind %q", ErrTxRejected, env.Kind)
	}
	tx, err := ledger.DecodeTx(env.Payload)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTxRejected, err)
	}
	id, err := env.AuthorID()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTxRejected, err)
	}
	h := ledger.TxHash(raw)
	c := &verifyCall{done: make(chan struct{}), vt: &ledger.VerifiedTx{Hash: h, Sender: id.String(), Tx: tx}}
	close(c.done)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.calls[h] == nil {
		v.calls[h] = c
		v.remember(h)
	}
	return nil
}

// cached is the number of accepted txs remembered.
func (v *txVerifier) cached() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.ring)
}
