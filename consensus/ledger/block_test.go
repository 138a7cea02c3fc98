package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

// TestBlockRejections feeds blocks that must be rejected whole. Each must
// return the named error and leave the input state exactly as it was, and
// Propose must leave the offending tx out.
func TestBlockRejections(t *testing.T) {
	f := newFixture(t, 6, 4)
	from, to := f.keys.IDs[4], f.keys.IDs[5]
	good := f.tx(from, TxTransfer, 1, Transfer{To: to, Amount: 5})
	f.run(good) // height 1; good is now a replay

	sign := func(nonceOff int64, fee uint64, chain string, kind protocol.Kind) []byte {
		a, _ := f.st.Account(from)
		tx, _ := NewTx(TxTransfer, uint64(int64(a.Nonce)+nonceOff), fee, Transfer{To: to, Amount: 1})
		raw, _, err := protocol.Seal(f.keys.Key(from), chain, kind, time.UnixMilli(0), tx)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	flipped := sign(0, 1, testChain, protocol.KindTx)
	flipped[len(flipped)-1] ^= 1 // the signature ends the envelope
	poor := f.keys.IDs[5]
	pa, _ := f.st.Account(poor)
	pauper, _ := NewTx(TxTransfer, pa.Nonce, pa.Balance+1, Transfer{To: from, Amount: 1})
	pauperRaw, _ := f.keys.Sign(testChain, poor, pauper)
	notTx, _, _ := protocol.Seal(f.keys.Key(from), testChain, protocol.KindTx, time.UnixMilli(0), Transfer{To: to, Amount: 1})

	txCases := []struct {
		name string
		tx   []byte
		want error
	}{
		{"replayed tx", good, ErrBadNonce},
		{"future nonce", sign(1, 1, testChain, protocol.KindTx), ErrBadNonce},
		{"fee below minimum", sign(0, 0, testChain, protocol.KindTx), ErrFeeTooLow},
		{"fee not payable", pauperRaw, ErrCannotPayFee},
		{"bad signature", flipped, ErrBadTx},
		{"other chain", sign(0, 1, "othernet", protocol.KindTx), ErrBadTx},
		{"vote kind", sign(0, 1, testChain, protocol.KindBid), ErrBadTx},
		{"payload not a tx", notTx, ErrBadTx},
		{"garbage", []byte{0xa1, 0x01}, ErrBadTx},
		{"empty", nil, ErrBadTx},
	}
	for _, tc := range txCases {
		t.Run(tc.name, func(t *testing.T) {
			// Propose leaves it out ...
			b, _, _, skipped, err := f.l.Propose(f.st, Header{ChainID: testChain, Proposer: f.proposer()}, [][]byte{tc.tx}, nil)
			if err != nil || len(b.Txs) != 0 || len(skipped) != 1 || !errors.Is(skipped[0].Err, tc.want) {
				t.Fatalf("Propose kept %d, skipped %+v, err %v; want it skipped with %v", len(b.Txs), skipped, err, tc.want)
			}
			// ... and a block that carries it anyway is invalid.
			b.Txs = [][]byte{tc.tx}
			b.Header.TxRoot = TxRoot(b.Txs)
			assertRejected(t, f, b, tc.want)
		})
	}

	valid := func() *Block { return f.block([][]byte{f.tx(from, TxTransfer, 1, Transfer{To: to, Amount: 1})}, nil) }
	hdrCases := []struct {
		name   string
		mutate func(b *Block)
		want   error
	}{
		{"wrong chain", func(b *Block) { b.Header.ChainID = "othernet" }, ErrWrongChain},
		{"skipped height", func(b *Block) { b.Header.Height++ }, ErrWrongHeight},
		{"same height again", func(b *Block) { b.Header.Height-- }, ErrWrongHeight},
		{"wrong previous hash", func(b *Block) { b.Header.PrevHash[0] ^= 1 }, ErrPrevHash},
		{"proposer not a validator", func(b *Block) { b.Header.Proposer = from }, ErrUnknownProposer},
		{"wrong state hash", func(b *Block) { b.Header.StateHash[31] ^= 1 }, ErrStateHash},
		{"different time, same state hash", func(b *Block) { b.Header.Time++ }, ErrStateHash},
		{"tx root mismatch", func(b *Block) { b.Header.TxRoot[0] ^= 1 }, ErrBodyHash},
		{"tx dropped", func(b *Block) { b.Txs = nil }, ErrBodyHash},
		{"evidence root mismatch", func(b *Block) { b.Header.EvidenceRoot[0] ^= 1 }, ErrBodyHash},
		{"over max txs", func(b *Block) {
			for range f.st.Params().MaxBlockTxs {
				b.Txs = append(b.Txs, b.Txs[0])
			}
		}, ErrTooManyTxs},
	}
	for _, tc := range hdrCases {
		t.Run(tc.name, func(t *testing.T) {
			b := valid()
			tc.mutate(b)
			assertRejected(t, f, b, tc.want)
		})
	}

	t.Run("nonce gap inside a block", func(t *testing.T) {
		a, _ := f.st.Account(from)
		var txs [][]byte
		for _, n := range []uint64{a.Nonce, a.Nonce + 2} {
			tx, _ := NewTx(TxTransfer, n, 1, Transfer{To: to, Amount: 1})
			raw, _ := f.keys.Sign(testChain, from, tx)
			txs = append(txs, raw)
		}
		b, _, _, skipped, err := f.l.Propose(f.st, Header{ChainID: testChain, Proposer: f.proposer()}, txs, nil)
		if err != nil || len(b.Txs) != 1 || len(skipped) != 1 {
			t.Fatalf("Propose kept %d skipped %d (%v); want 1 and 1", len(b.Txs), len(skipped), err)
		}
		b.Txs = txs
		b.Header.TxRoot = TxRoot(txs)
		assertRejected(t, f, b, ErrBadNonce)
	})
}

func assertRejected(t *testing.T, f *fixture, b *Block, want error) {
	t.Helper()
	before := f.st.Hash()
	ns, evs, err := f.l.Apply(f.st, b)
	if !errors.Is(err, want) {
		t.Fatalf("Apply = %v; want %v", err, want)
	}
	if ns != nil || evs != nil {
		t.Fatalf("Apply returned a state or events with error %v", err)
	}
	if f.st.Hash() != before {
		t.Fatalf("input state hash changed after a rejected block")
	}
	if err := CheckInvariant(f.st); err != nil {
		t.Fatalf("input state damaged: %v", err)
	}
}

// TestApplyDoesNotMutateInput applies several blocks on one state and checks
// that the old state keeps its contents, hash and invariant, and that the
// same block applied twice to it gives the same result.
func TestApplyDoesNotMutateInput(t *testing.T) {
	f := newFixture(t, 8, 4)
	base := f.st
	baseHash := base.Hash()
	var snapshot []Account
	base.Accounts(func(_ string, a Account) bool { snapshot = append(snapshot, a); return true })

	rng := newRand(5)
	blk := f.block(f.keys.RandomWorkload(rng, base, 50), nil)
	f.apply(blk)
	s1 := f.st
	s2, _, err := f.l.Apply(base, blk)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Hash() != s2.Hash() {
		t.Fatalf("same block on same state gave %s and %s", s1.HashHex(), s2.HashHex())
	}
	for range 5 {
		f.run(f.keys.RandomWorkload(rng, f.st, 50)...)
	}
	if base.Hash() != baseHash {
		t.Fatal("base state hash changed")
	}
	if err := CheckInvariant(base); err != nil {
		t.Fatal(err)
	}
	i := 0
	base.Accounts(func(_ string, a Account) bool {
		if snapshot[i] != a {
			t.Errorf("account %d changed: %+v -> %+v", i, snapshot[i], a)
		}
		i++
		return true
	})
}

func TestProposeBlockFull(t *testing.T) {
	keys := NewKeyring(newRand(4), 5)
	g := keys.TestGenesis(testChain, 2, 1000, 100)
	g.Params.MaxBlockTxs = 2
	st, err := InitialState(g)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := New()
	f := &fixture{t: t, keys: keys, st: st, l: l}
	var txs [][]byte
	for _, id := range keys.IDs[2:] {
		txs = append(txs, f.tx(id, TxTransfer, 1, Transfer{To: keys.IDs[0], Amount: 1}))
	}
	b, _, _, skipped, err := l.Propose(st, Header{ChainID: testChain, Proposer: f.proposer()}, txs, nil)
	if err != nil || len(b.Txs) != 2 || len(skipped) != 1 || !errors.Is(skipped[0].Err, ErrBlockFull) || string(skipped[0].Tx) != string(txs[2]) {
		t.Fatalf("Propose kept %d, skipped %+v (%v); want the third skipped with ErrBlockFull", len(b.Txs), skipped, err)
	}
	f.apply(b)
}
