package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/ledger"
)

// runCLI runs the root command with args and returns stdout and the error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// testPeerID is the peer ID of a key derived from seed, so tests are
// deterministic.
func testPeerID(t *testing.T, seed byte) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	k, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func TestGenesisCommands(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(home, "genesis.json")
	a, b := testPeerID(t, 1), testPeerID(t, 2)

	if _, err := runCLI(t, "genesis", "new", "--home", home, "--chain-id", "testnet"); err != nil {
		t.Fatal(err)
	}
	steps := [][]string{
		{"genesis", "add-account", a, "10000000", "--home", home},
		{"genesis", "add-account", b, "500", "--home", home},
		{"genesis", "add-account", b, "700", "--home", home}, // adds to the balance
		{"genesis", "add-validator", a, "2000000", "--home", home},
	}
	for _, s := range steps {
		if out, err := runCLI(t, s...); err != nil {
			t.Fatalf("%v: %v\n%s", s, err, out)
		}
	}
	g, err := ledger.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("built genesis does not validate: %v", err)
	}
	if g.ChainID != "testnet" || g.GenesisTime.IsZero() {
		t.Errorf("chain %q time %v; want testnet and a set time", g.ChainID, g.GenesisTime)
	}
	wantAccts := []ledger.GenesisAccount{{ID: a, Balance: 10000000}, {ID: b, Balance: 1200}}
	if len(g.Accounts) != 2 || g.Accounts[0] != wantAccts[0] || g.Accounts[1] != wantAccts[1] {
		t.Errorf("accounts = %+v, want %+v", g.Accounts, wantAccts)
	}
	if len(g.Validators) != 1 || g.Validators[0].ID != a || g.Validators[0].Stake != 2000000 {
		t.Errorf("validators = %+v, want %s with 2000000", g.Validators, a)
	}
	if _, err := ledger.InitialState(g); err != nil {
		t.Errorf("InitialState of the CLI's genesis: %v", err)
	}

	out, err := runCLI(t, "genesis", "show", "--home", home)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"testnet", a, b, "12001200", "2000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("genesis show lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "genesis", "show", "--home", home, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var shown ledger.Genesis
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.ChainID != "testnet" || len(shown.Accounts) != 2 {
		t.Errorf("genesis show --json = %v, %+v", err, shown)
	}
}

// TestGenesisBadInput checks that every refused edit says why and leaves
// the file byte for byte as it was.
func TestGenesisBadInput(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(home, "genesis.json")
	a, b := testPeerID(t, 1), testPeerID(t, 2)
	if _, err := runCLI(t, "genesis", "new", "--home", home, "--chain-id", "testnet"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "genesis", "add-validator", a, "2000000", "--home", home); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"genesis", "new", "--home", home, "--chain-id", "other"}, "refusing to overwrite"},
		{[]string{"genesis", "add-account", "not-a-peer", "10", "--home", home}, "is not a peer ID"},
		{[]string{"genesis", "add-account", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "10", "--home", home}, "Ed25519"},
		{[]string{"genesis", "add-account", b, "0", "--home", home}, "must be positive"},
		{[]string{"genesis", "add-account", b, "12abc", "--home", home}, "not a whole number"},
		{[]string{"genesis", "add-account", b, "18446744073709551616", "--home", home}, "not a whole number"},
		{[]string{"genesis", "add-account", b, "1", "--home", home, "extra"}, "accepts 2 arg"},
		{[]string{"genesis", "add-validator", a, "3000000", "--home", home}, "already present"},
		{[]string{"genesis", "add-validator", b, "5", "--home", home}, "below min_validator_stake"},
		{[]string{"genesis", "add-validator", "bogus", "2000000", "--home", home}, "is not a peer ID"},
		{[]string{"genesis", "add-account", b, "1", "--genesis", filepath.Join(home, "missing.json")}, "genesis new"},
	} {
		_, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
		after, rerr := os.ReadFile(file)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if !bytes.Equal(before, after) {
			t.Fatalf("%v changed the genesis file", c.args)
		}
	}

	// A supply overflow is refused too.
	if _, err := runCLI(t, "genesis", "add-account", b, "18446744073709551615", "--home", home); err == nil {
		t.Fatal("balance that overflows the supply accepted")
	}
	after, _ := os.ReadFile(file)
	if !bytes.Equal(before, after) {
		t.Fatal("refused overflow changed the genesis file")
	}

	// Bad chain IDs never produce a file.
	other := filepath.Join(t.TempDir(), "g.json")
	for _, id := range []string{"", "Has Space", strings.Repeat("a", 64)} {
		if _, err := runCLI(t, "genesis", "new", "--chain-id", id, "-o", other); err == nil {
			t.Errorf("chain ID %q accepted", id)
		}
		if _, err := os.Stat(other); err == nil {
			t.Fatalf("chain ID %q wrote %s", id, other)
		}
	}
	// -o and --force write elsewhere and overwrite on request.
	if _, err := runCLI(t, "genesis", "new", "mynet", "-o", other); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "genesis", "new", "--chain-id", "mynet2", "-o", other, "--force"); err != nil {
		t.Fatal(err)
	}
	if g, err := ledger.Load(other); err != nil || g.ChainID != "mynet2" {
		t.Fatalf("after --force: %v, %+v", err, g)
	}
}
