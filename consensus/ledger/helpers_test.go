package ledger

import (
	"math/rand/v2"
	"testing"
)

const testChain = "testnet"

// fixture is a small chain: keys, genesis state and a ledger.
type fixture struct {
	t    testing.TB
	keys *Keyring
	st   *State
	l    *Ledger
}

func newFixture(t testing.TB, nKeys, nVals int) *fixture {
	t.Helper()
	keys := NewKeyring(rand.New(rand.NewPCG(1, 2)), nKeys)
	g := keys.TestGenesis(testChain, nVals, 1_000_000, 10_000)
	st, err := InitialState(g)
	if err != nil {
		t.Fatalf("InitialState: %v", err)
	}
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, keys: keys, st: st, l: l}
}

// proposer is the first validator of the next height.
func (f *fixture) proposer() string {
	vals, err := ValidatorSet(f.st, f.st.Height()+1)
	if err != nil {
		f.t.Fatal(err)
	}
	return vals[0].ID
}

// block builds a valid block of txs and evs with Propose, asserting that
// nothing was skipped.
func (f *fixture) block(txs [][]byte, evs []Evidence) *Block {
	f.t.Helper()
	b, _, _, skipped, err := f.l.Propose(f.st, Header{ChainID: testChain, Proposer: f.proposer(), Time: int64(f.st.Height()) * 1000}, txs, evs)
	if err != nil {
		f.t.Fatalf("Propose: %v", err)
	}
	if len(skipped) != 0 || len(b.Evidence) != len(evs) {
		f.t.Fatalf("Propose skipped %d txs, kept %d of %d evidence", len(skipped), len(b.Evidence), len(evs))
	}
	return b
}

// apply applies b, checks the invariant, and advances the fixture.
func (f *fixture) apply(b *Block) []Event {
	f.t.Helper()
	ns, evs, err := f.l.Apply(f.st, b)
	if err != nil {
		f.t.Fatalf("Apply at height %d: %v", b.Header.Height, err)
	}
	if err := CheckInvariant(ns); err != nil {
		f.t.Fatal(err)
	}
	f.st = ns
	return evs
}

// run proposes and applies a block of txs.
func (f *fixture) run(txs ...[]byte) []Event { return f.apply(f.block(txs, nil)) }

// tx signs a tx from id with its current nonce (plus off) and fee.
func (f *fixture) tx(id string, typ TxType, fee uint64, body any) []byte {
	f.t.Helper()
	a, _ := f.st.Account(id)
	tx, err := NewTx(typ, a.Nonce, fee, body)
	if err != nil {
		f.t.Fatal(err)
	}
	raw, err := f.keys.Sign(testChain, id, tx)
	if err != nil {
		f.t.Fatal(err)
	}
	return raw
}

func balance(st *State, id string) uint64 { a, _ := st.Account(id); return a.Balance }

func eventsOf(evs []Event, k EventKind) []Event {
	var out []Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// NewKeyringForTest is a keyring from a fixed seed, distinct per seed.
func NewKeyringForTest(seed uint64) *Keyring { return NewKeyring(rand.New(rand.NewPCG(seed, seed)), 1) }

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }
