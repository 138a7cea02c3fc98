package ledger

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("ledger.rewrite", false, "rewrite testdata/state_vectors.txt")

// TestStateHashVectors pins the state hashes and block hashes of a fixed
// chain (the example genesis, then blocks of deterministic signed txs and
// evidence). Any change to the state layout, the hashing or the rules
// changes them: that is a consensus change, and the vectors must be
// rewritten on purpose with -ledger.rewrite, never silently.
func TestStateHashVectors(t *testing.T) {
	g, err := Load(filepath.Join("testdata", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := NewKeyring(newRand(2026), 3) // the keys of testdata/genesis.json
	for i, a := range g.Accounts {
		if a.ID != keys.IDs[i] {
			t.Fatalf("testdata genesis account %d is %s, keyring has %s", i, a.ID, keys.IDs[i])
		}
	}
	st, err := InitialState(g)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := New()
	f := &fixture{t: t, keys: keys, st: st, l: l}
	var lines []string
	record := func(name string) {
		lines = append(lines, fmt.Sprintf("%s state=%s block=%s", name, f.st.HashHex(), hex.EncodeToString(f.st.last[:])))
	}
	record("genesis")
	rng := newRand(99)
	for h := 1; h <= 6; h++ {
		var evs []Evidence
		if h == 4 {
			ev, err := keys.Equivocate(g.ChainID, keys.IDs[1], 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		txs := keys.RandomWorkload(rng, f.st, 5)
		b, _, _, skipped, err := l.Propose(f.st, Header{ChainID: g.ChainID, Proposer: keys.IDs[0], Time: int64(h) * 1000}, txs, evs)
		if err != nil || len(skipped) != 0 {
			t.Fatalf("height %d: %v, skipped %d", h, err, len(skipped))
		}
		f.apply(b)
		if h == 4 && !f.st.Bond(keys.IDs[1]).Jailed {
			t.Fatal("evidence in the vector chain did not jail")
		}
		record(fmt.Sprint("height-", h))
	}
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "state_vectors.txt")
	if *rewrite {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -ledger.rewrite to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("state hash vectors changed (a consensus change; rewrite with -ledger.rewrite only on purpose):\ngot:\n%swant:\n%s", got, want)
	}
}
