package ledger

import (
	"errors"
	"testing"

	"github.com/gpunode/gpunode/protocol"
)

var protocolUnmarshal = protocol.Unmarshal

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := protocol.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := newFixture(t, 8, 4)
	rng := newRand(21)
	for range 8 {
		f.apply(f.block(f.keys.RandomWorkload(rng, f.st, 20), nil))
	}
	ev, _ := f.keys.Equivocate(testChain, f.keys.IDs[1], f.st.Height(), 0)
	f.apply(f.block(nil, []Evidence{ev}))
	data, err := f.st.Export()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ImportState(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != f.st.Hash() || got.LastBlockHash() != f.st.LastBlockHash() || got.Height() != f.st.Height() {
		t.Fatalf("imported state differs: %s vs %s", got.HashHex(), f.st.HashHex())
	}
	// The imported state continues the chain exactly like the original.
	txs := f.keys.RandomWorkload(rng, f.st, 20)
	blk := f.block(txs, nil)
	a, _, err1 := f.l.Apply(f.st, blk)
	b, _, err2 := f.l.Apply(got, blk)
	if err1 != nil || err2 != nil || a.Hash() != b.Hash() {
		t.Fatalf("next block: %v, %v, equal=%v", err1, err2, err1 == nil && err2 == nil && a.Hash() == b.Hash())
	}
	again, _ := got.Export()
	if string(again) != string(data) {
		t.Fatal("export of an imported state differs")
	}

	// Tampering is caught: a changed balance no longer matches the
	// recorded hash, and with a matching hash it breaks the invariant.
	var sn snapshot
	if err := protocolUnmarshal(data, &sn); err != nil {
		t.Fatal(err)
	}
	sn.Accounts[0].Balance++
	if _, err := ImportState(mustMarshal(t, &sn)); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("snapshot with a changed balance: %v", err)
	}
	forged, err := forgeState(&sn)
	if err != nil {
		t.Fatal(err)
	}
	forged.seal(nil)
	sn.Hash = forged.hash
	if _, err := ImportState(mustMarshal(t, &sn)); !errors.Is(err, ErrInvariant) {
		t.Fatalf("snapshot with a changed balance and matching hash: %v; want ErrInvariant", err)
	}
	if _, err := ImportState(data[:len(data)-1]); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("truncated snapshot: %v", err)
	}
}

func FuzzImportState(f *testing.F) {
	fx := newFixture(f, 4, 2)
	fx.run(fx.tx(fx.keys.IDs[2], TxTransfer, 1, Transfer{To: fx.keys.IDs[3], Amount: 3}))
	data, err := fx.st.Export()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ImportState(data)
		if err != nil {
			return
		}
		if err := CheckInvariant(st); err != nil {
			t.Fatal(err)
		}
	})
}

// forgeState builds a state from a snapshot without any check,
// for forging test inputs.
func forgeState(sn *snapshot) (*State, error) { return sn.state(), nil }
