package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

func FuzzDecodeTx(f *testing.F) {
	for _, body := range []struct {
		typ TxType
		b   any
	}{
		{TxTransfer, Transfer{To: "12D3KooWR3t6vxnWu936Uq1MkTLorUq5jzzDQ1fkkBUy3MXbxSg3", Amount: 5}},
		{TxStake, Stake{Role: RoleValidator, Amount: 1}},
		{TxUnstake, Unstake{Role: RoleProvider, Amount: 1 << 40}},
		{TxUnjail, Unjail{}},
	} {
		tx, err := NewTx(body.typ, 3, 1, body.b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(protocol.MustMarshal(tx))
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := DecodeTx(data)
		if err != nil {
			if !errors.Is(err, ErrBadTx) {
				t.Fatalf("DecodeTx error %v is not ErrBadTx", err)
			}
			return
		}
		// Strict decoding: whatever decodes re-encodes to the same bytes.
		if again := protocol.MustMarshal(tx); string(again) != string(data) {
			t.Fatalf("re-encoding differs: %x vs %x", again, data)
		}
	})
}

// FuzzApplyTx puts arbitrary bytes in a block as a tx, alone or after a
// valid one. Apply must either reject the block, leaving the state as it
// was, or accept it with the invariant intact; it must never panic.
func FuzzApplyTx(f *testing.F) {
	fx := newFixture(f, 4, 2)
	from, to := fx.keys.IDs[2], fx.keys.IDs[3]
	valid := fx.tx(from, TxTransfer, 1, Transfer{To: to, Amount: 9})
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	body, _ := NewTx(TxStake, 0, 1, Stake{Role: RoleProvider, Amount: 50})
	raw, _, _ := protocol.Seal(fx.keys.Key(from), testChain, protocol.KindTx, time.UnixMilli(0), body)
	f.Add(raw)
	f.Add([]byte("x"))
	l, _ := New(WithVerifier(SigVerifier{}))
	base := fx.st
	hash := base.Hash()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, txs := range [][][]byte{{data}, {valid, data}} {
			b, _, _, _, err := l.Propose(base, Header{ChainID: testChain, Proposer: fx.proposer()}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Txs = txs
			b.Header.TxRoot = TxRoot(txs)
			ns, _, err := l.apply(base, b, false)
			if base.Hash() != hash {
				t.Fatal("base state changed")
			}
			if err != nil {
				continue
			}
			if err := CheckInvariant(ns); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzDecodeBlock(f *testing.F) {
	fx := newFixture(f, 4, 2)
	blk := fx.block([][]byte{fx.tx(fx.keys.IDs[2], TxTransfer, 1, Transfer{To: fx.keys.IDs[3], Amount: 1})}, nil)
	enc, err := blk.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	ev, _ := fx.keys.Equivocate(testChain, fx.keys.IDs[0], 1, 0)
	f.Add(protocol.MustMarshal(&Block{Evidence: []Evidence{ev}}))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			return
		}
		again, err := b.Encode()
		if err != nil || string(again) != string(data) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
		// Whatever decodes must be safe to apply: an error or a sound state.
		if ns, _, err := fx.l.Apply(fx.st, b); err == nil {
			if err := CheckInvariant(ns); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzEnvelopeEvidence feeds arbitrary message pairs to the built-in
// evidence verifier: it must never panic, and must accept only pairs that
// really are two different signed votes of the named validator for the
// named slot.
func FuzzEnvelopeEvidence(f *testing.F) {
	keys := NewKeyring(newRand(17), 2)
	id := keys.IDs[0]
	ev, err := keys.Equivocate(testChain, id, 3, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ev.A, ev.B, uint64(3), int32(1), uint8(1))
	f.Add(ev.A, ev.A, uint64(3), int32(1), uint8(1))
	f.Add([]byte{0xa0}, ev.B, uint64(0), int32(0), uint8(0))
	f.Fuzz(func(t *testing.T, a, b []byte, height uint64, round int32, typ uint8) {
		e := Evidence{Validator: id, Height: height, Round: round, Type: typ, A: a, B: b}
		if err := (EnvelopeEvidence{}).VerifyEvidence(testChain, &e, nil); err != nil {
			if !errors.Is(err, ErrBadEvidence) {
				t.Fatalf("error %v is not ErrBadEvidence", err)
			}
			return
		}
		// Accepted: both are authentic votes by id for this slot, for
		// different blocks.
		var va, vb Vote
		for i, raw := range [][]byte{a, b} {
			env, err := protocol.Open(raw, testChain)
			if err != nil {
				t.Fatalf("accepted message %d does not open: %v", i, err)
			}
			v := &va
			if i == 1 {
				v = &vb
			}
			if err := env.Decode(v); err != nil || v.Height != height || v.Round != round || v.Type != typ {
				t.Fatalf("accepted message %d is not a vote for the slot", i)
			}
		}
		if string(va.BlockHash) == string(vb.BlockHash) {
			t.Fatal("accepted two votes for the same block")
		}
	})
}
