package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
)

func TestEnsureDevnetGenesis(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, role string, seed byte) *devnetNode {
		n := &devnetNode{Name: name, Roles: []string{role}, Home: filepath.Join(dir, name), PeerID: testPeerID(t, seed)}
		if err := os.MkdirAll(n.Home, 0o700); err != nil {
			t.Fatal(err)
		}
		return n
	}
	nodes := []*devnetNode{mk("validator-0", "validator", 1), mk("validator-1", "validator", 2), mk("provider-0", "provider", 3)}
	now := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	fresh, err := ensureDevnetGenesis(nodes, "mynet", now)
	if err != nil || !fresh {
		t.Fatalf("first ensureDevnetGenesis = %v, %v; want a fresh genesis", fresh, err)
	}
	read := func(n *devnetNode) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(n.Home, "genesis.json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := read(nodes[0])
	g, err := ledger.ParseGenesis(want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.InitialState(g); err != nil {
		t.Fatalf("devnet genesis does not start a chain: %v", err)
	}
	if g.ChainID != "mynet" || !g.GenesisTime.Equal(now) || len(g.Accounts) != 3 || len(g.Validators) != 2 {
		t.Fatalf("genesis = %+v", g)
	}
	for i, a := range g.Accounts {
		if a.ID != nodes[i].PeerID || a.Balance != devnetBalance {
			t.Errorf("account %d = %+v, want %s with %d", i, a, nodes[i].PeerID, devnetBalance)
		}
	}
	for i, v := range g.Validators {
		if v.ID != nodes[i].PeerID || v.Stake != devnetValidatorBond {
			t.Errorf("validator %d = %+v, want %s with %d", i, v, nodes[i].PeerID, devnetValidatorBond)
		}
	}
	for _, n := range nodes[1:] {
		if !bytes.Equal(read(n), want) {
			t.Fatalf("%s got a different genesis", n.Name)
		}
	}

	// Resume, with one node added since: the existing file is kept and
	// copied to the new node, not regenerated.
	nodes = append(nodes, mk("renter-0", "renter", 4))
	fresh, err = ensureDevnetGenesis(nodes, "mynet", now.Add(time.Hour))
	if err != nil || fresh {
		t.Fatalf("resume = %v, %v; want the existing genesis kept", fresh, err)
	}
	for _, n := range nodes {
		if !bytes.Equal(read(n), want) {
			t.Fatalf("%s: genesis differs after resume", n.Name)
		}
	}

	// A corrupt genesis in a home stops devnet instead of being replaced.
	if err := os.WriteFile(filepath.Join(nodes[1].Home, "genesis.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureDevnetGenesis(nodes, "mynet", now); err == nil {
		t.Fatal("corrupt genesis.json accepted")
	}
	if !bytes.Equal(read(nodes[0]), want) {
		t.Fatal("refused resume changed another node's genesis")
	}
}
