package consensus

import (
	"errors"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
)

func TestMempool(t *testing.T) {
	d := newDriver(t)
	st, err := ledger.InitialState(d.g)
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.Default()
	p := newMempool(testChain, led.Verifier(), st, 5)
	a, b := d.keys.IDs[1], d.keys.IDs[2]
	sign := func(from string, nonce, fee uint64) []byte {
		tx, _ := ledger.NewTx(ledger.TxTransfer, nonce, fee, ledger.Transfer{To: d.keys.IDs[3], Amount: 1})
		raw, err := ledger.SignTx(d.keys.Key(from), testChain, time.UnixMilli(int64(nonce)), tx)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// Out of nonce order on arrival; reaped in order.
	for _, raw := range [][]byte{sign(a, 1, 1), sign(a, 0, 1), sign(b, 0, 1)} {
		if _, err := p.Add(raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Add(sign(a, 0, 1)); !errors.Is(err, ErrKnownTx) && !errors.Is(err, ErrTxRejected) {
		t.Fatalf("duplicate nonce: %v", err)
	}
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"fee below minimum", sign(b, 1, 0)},
		{"garbage", []byte("not a tx")},
		{"nonce too far ahead", sign(b, 5000, 1)},
	} {
		if _, err := p.Add(c.raw); !errors.Is(err, ErrTxRejected) {
			t.Errorf("%s: %v, want ErrTxRejected", c.name, err)
		}
	}
	size := func() int {
		n := 0
		for _, raw := range p.Reap(100, 1<<30) {
			n += len(raw)
		}
		return n
	}
	if n := size(); !p.Full(3, 1<<20) || p.Full(4, 1<<20) || !p.Full(100, n) || p.Full(100, n+1) {
		t.Fatalf("3 txs of %d bytes: Full(3, 1MiB) %v, Full(4, 1MiB) %v, Full(100, %d) %v, Full(100, %d) %v",
			n, p.Full(3, 1<<20), p.Full(4, 1<<20), n, p.Full(100, n), n+1, p.Full(100, n+1))
	}
	if got := p.NextNonce(a); got != 2 {
		t.Fatalf("NextNonce %d, want 2", got)
	}
	txs := p.Reap(10, 1<<20)
	if len(txs) != 3 {
		t.Fatalf("reaped %d, want 3", len(txs))
	}
	seen := map[string]uint64{}
	for _, raw := range txs {
		vt, _ := led.Verifier().VerifyTx(testChain, raw)
		if vt.Tx.Nonce != seen[vt.Sender] {
			t.Fatalf("%s: nonce %d out of order", vt.Sender, vt.Tx.Nonce)
		}
		seen[vt.Sender]++
	}
	// Bounded.
	if _, err := p.Add(sign(b, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(sign(b, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(sign(b, 3, 1)); !errors.Is(err, ErrMempoolFull) {
		t.Fatalf("sixth tx in a pool of 5: %v", err)
	}
	// Commit a's nonce 0 in a block: it leaves, and the rest is re-checked.
	blk, ns, _, _, err := led.Propose(st, ledger.Header{ChainID: testChain, Proposer: d.keys.IDs[0]}, [][]byte{txs[0]}, nil)
	if err != nil || len(blk.Txs) != 1 {
		t.Fatalf("propose: %v", err)
	}
	p.Update(ns, blk.Txs)
	if p.Len() != 4 || p.Has(ledger.TxHash(txs[0])) {
		t.Fatalf("after commit: %d txs, included one still held: %v", p.Len(), p.Has(ledger.TxHash(txs[0])))
	}
	if n := size(); !p.Full(100, n) || p.Full(100, n+1) {
		t.Fatalf("after commit: the pool's byte count is not the size of its %d txs (%d bytes)", p.Len(), n)
	}
}
