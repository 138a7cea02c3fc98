package ledger

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
)

// stateImage is everything a caller can read from a State.
type stateImage struct {
	hash     [32]byte
	export   []byte
	accounts map[string]Account
	bonds    map[string]Bond
	escrows  map[string]uint64
}

func imageOf(t *testing.T, st *State) stateImage {
	t.Helper()
	data, err := st.Export()
	if err != nil {
		t.Fatal(err)
	}
	im := stateImage{hash: st.Hash(), export: data, accounts: map[string]Account{}, bonds: map[string]Bond{}, escrows: map[string]uint64{}}
	st.Accounts(func(id string, a Account) bool { im.accounts[id] = a; return true })
	st.Bonds(func(id string, b Bond) bool { im.bonds[id] = b; return true })
	st.Escrows(func(id string, v uint64) bool { im.escrows[id] = v; return true })
	return im
}

func (im stateImage) check(t *testing.T, st *State) {
	t.Helper()
	if st.Hash() != im.hash {
		t.Errorf("height %d: hash changed from %x to %x", st.Height(), im.hash[:8], st.Hash())
	}
	now := imageOf(t, st)
	if !bytes.Equal(now.export, im.export) || !maps.Equal(now.accounts, im.accounts) || !maps.Equal(now.bonds, im.bonds) || !maps.Equal(now.escrows, im.escrows) {
		t.Errorf("height %d: contents changed after later blocks were applied", st.Height())
	}
	if err := CheckInvariant(st); err != nil {
		t.Errorf("height %d: %v", st.Height(), err)
	}
}

// TestApplyKeepsOldStates: applying blocks, including two different blocks
// to the same state at once (a fork, as when validating two proposals),
// never changes a state that was already computed: its hash, its contents
// and its export stay as they were, and its incremental hashes still match
// a full recomputation.
func TestApplyKeepsOldStates(t *testing.T) {
	f := newFixture(t, 64, 4)
	fresh := NewKeyring(newRand(99), 80) // recipients without accounts yet
	rng := newRand(5)
	states := []*State{f.st}
	images := []stateImage{imageOf(t, f.st)}
	for h := range 10 {
		txs := f.keys.RandomWorkload(rng, f.st, 30)
		if h%2 == 1 {
			// Transfers to new accounts insert keys into shards the old
			// state shares with the new one.
			txs = nil
			for i := range 8 {
				txs = append(txs, f.tx(f.keys.IDs[i], TxTransfer, 1, Transfer{To: fresh.IDs[h*8+i], Amount: 5}))
			}
		}
		blk := f.block(nil, nil) // a sibling: the same height without the txs
		var wg sync.WaitGroup
		var sibErr error
		parent := f.st // f.apply replaces f.st while the sibling runs
		wg.Go(func() { _, _, sibErr = f.l.Apply(parent, blk) })
		f.apply(f.block(txs, nil))
		wg.Wait()
		if sibErr != nil {
			t.Fatalf("height %d: sibling block: %v", h+1, sibErr)
		}
		states = append(states, f.st)
		images = append(images, imageOf(t, f.st))
	}
	if n := f.st.NumAccounts(); n <= states[0].NumAccounts() {
		t.Fatalf("the blocks created no accounts: %d then %d", states[0].NumAccounts(), n)
	}
	for i, st := range states {
		images[i].check(t, st)
	}
	if images[0].hash == images[len(images)-1].hash {
		t.Fatal("the blocks changed nothing")
	}
}

// TestSmapReference drives random writes through overlays of random older
// versions and checks every version against a plain map: the contents,
// Len, the iteration order (shard, then key), a from-scratch verify, and
// that the root depends only on the contents (a map built in one step
// with the same keys has the same root). Rolled-back writes and reads
// through the overlay are covered too.
func TestSmapReference(t *testing.T) {
	for _, nShards := range []int{1, 64, 300} { // one group, a partial group, a partial last group
		t.Run(fmt.Sprint("shards=", nShards), func(t *testing.T) {
			rng := newRand(uint64(nShards))
			versions := []*smap[uint64]{newSmap[uint64](nShards)}
			refs := []map[string]uint64{{}}
			for range 300 {
				from := rng.IntN(len(versions))
				tx := versions[from].begin(encU64)
				ref := maps.Clone(refs[from])
				for range rng.IntN(12) {
					k := fmt.Sprint("k", rng.IntN(400))
					if rng.IntN(4) == 0 {
						tx.del(k)
						delete(ref, k)
					} else {
						v := rng.Uint64N(1000)
						tx.set(k, v)
						ref[k] = v
					}
					if got, ok := tx.get(k); got != ref[k] || ok != hasKey(ref, k) {
						t.Fatalf("overlay get(%q) = %d, %v; want %d", k, got, ok, ref[k])
					}
				}
				wrote := tx.dirty()
				s := tx.commit()
				if !wrote && s != versions[from] {
					t.Fatal("an overlay without writes made a new version")
				}
				versions = append(versions, s)
				refs = append(refs, ref)
			}
			for i, s := range versions {
				checkSmap(t, i, s, refs[i], nShards)
			}
		})
	}
}

func hasKey(m map[string]uint64, k string) bool { _, ok := m[k]; return ok }

func checkSmap(t *testing.T, i int, s *smap[uint64], ref map[string]uint64, nShards int) {
	t.Helper()
	if s.Len() != len(ref) || !s.verify(encU64) {
		t.Fatalf("version %d: Len %d, want %d; verify %v", i, s.Len(), len(ref), s.verify(encU64))
	}
	var got []string
	s.each(func(k string, v uint64) bool {
		if ref[k] != v || !hasKey(ref, k) {
			t.Fatalf("version %d: %q = %d, want %d", i, k, v, ref[k])
		}
		got = append(got, k)
		return true
	})
	want := slices.SortedFunc(maps.Keys(ref), func(a, b string) int {
		if c := shardOf(a, nShards) - shardOf(b, nShards); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("version %d: order %v, want %v", i, got, want)
	}
	for k, v := range ref {
		if g, ok := s.get(k); !ok || g != v {
			t.Fatalf("version %d: get(%q) = %d, %v; want %d", i, k, g, ok, v)
		}
	}
	one := newSmap[uint64](nShards).begin(encU64)
	for _, k := range want {
		one.set(k, ref[k])
	}
	if r := one.commit().root; r != s.root {
		t.Fatalf("version %d: root %x differs from a map built in one step (%x)", i, s.root[:8], r[:8])
	}
}
