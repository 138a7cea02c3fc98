package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenesisRoundTrip(t *testing.T) {
	keys := NewKeyring(newRand(11), 3)
	g := NewGenesis("devnet")
	g.GenesisTime = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for _, step := range []error{
		g.AddAccount(keys.IDs[0], 500),
		g.AddAccount(keys.IDs[0], 250), // adds up
		g.AddAccount(keys.IDs[1], 1),
		g.AddValidator(keys.IDs[2], 2_000_000),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ChainID != "devnet" || !got.GenesisTime.Equal(g.GenesisTime) || got.Params != g.Params ||
		len(got.Accounts) != 2 || got.Accounts[0].Balance != 750 || got.Validators[0] != (GenesisValidator{keys.IDs[2], 2_000_000, 2_000_000}) {
		t.Fatalf("loaded %+v; saved %+v", got, g)
	}
	st, err := InitialState(got)
	if err != nil {
		t.Fatal(err)
	}
	if gs, _, _ := st.Supply(); gs != 2_000_751 {
		t.Fatalf("supply = %d; want 2000751", gs)
	}
	if err := CheckInvariant(st); err != nil {
		t.Fatal(err)
	}
	for _, h := range []uint64{1, 2} {
		vals, err := ValidatorSet(st, h)
		if err != nil || len(vals) != 1 || vals[0].ID != keys.IDs[2] || vals[0].Power != 2_000_000 {
			t.Fatalf("ValidatorSet(%d) = %+v, %v", h, vals, err)
		}
	}
	// Same genesis, same state hash; any change, a different one.
	st2, _ := InitialState(got)
	got.Accounts[1].Balance++
	st3, _ := InitialState(got)
	if st.Hash() != st2.Hash() || st.Hash() == st3.Hash() {
		t.Fatal("genesis state hash is not a function of the genesis")
	}
	// The example in testdata (shown in docs/GENESIS.md) stays valid.
	if _, err := Load(filepath.Join("testdata", "genesis.json")); err != nil {
		t.Fatalf("testdata/genesis.json: %v", err)
	}
}

func TestGenesisValidate(t *testing.T) {
	keys := NewKeyring(newRand(12), 2)
	base := func() *Genesis {
		g := NewGenesis("devnet")
		if err := g.AddAccount(keys.IDs[0], 10); err != nil {
			t.Fatal(err)
		}
		if err := g.AddValidator(keys.IDs[1], 1_000_000); err != nil {
			t.Fatal(err)
		}
		return g
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("base genesis invalid: %v", err)
	}
	rsaLike := "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N" // a sha256 peer ID: no embedded key
	cases := []struct {
		name   string
		mutate func(g *Genesis)
		want   string
	}{
		{"bad chain ID", func(g *Genesis) { g.ChainID = "Dev Net" }, "chain_id"},
		{"empty chain ID", func(g *Genesis) { g.ChainID = "" }, "chain_id"},
		{"no validators", func(g *Genesis) { g.Validators = nil }, "no validators"},
		{"account not a peer ID", func(g *Genesis) { g.Accounts[0].ID = "alice" }, "not a peer ID"},
		{"account without Ed25519 key", func(g *Genesis) { g.Accounts[0].ID = rsaLike }, "Ed25519"},
		{"duplicate account", func(g *Genesis) { g.Accounts = append(g.Accounts, g.Accounts[0]) }, "twice"},
		{"duplicate validator", func(g *Genesis) { g.Validators = append(g.Validators, g.Validators[0]) }, "twice"},
		{"stake below minimum", func(g *Genesis) { g.Validators[0].Stake, g.Validators[0].Power = 5, 5 }, "min_validator_stake"},
		{"power mismatch", func(g *Genesis) { g.Validators[0].Power++ }, "power"},
		{"supply overflow", func(g *Genesis) { g.Accounts[0].Balance = ^uint64(0) }, "overflows"},
		{"zero unbonding", func(g *Genesis) { g.Params.UnbondingPeriod = 0 }, "unbonding_period"},
		{"evidence outlives unbonding", func(g *Genesis) { g.Params.EvidenceMaxAge = g.Params.UnbondingPeriod }, "evidence_max_age"},
		{"slash above one", func(g *Genesis) { g.Params.SlashFraction = Fraction{3, 2} }, "slash_fraction"},
		{"slash zero denominator", func(g *Genesis) { g.Params.SlashFraction = Fraction{0, 0} }, "slash_fraction"},
		{"emission not decreasing", func(g *Genesis) { g.Params.Emission.Decay = Fraction{1, 1} }, "decay"},
		{"zero epoch", func(g *Genesis) { g.Params.Emission.EpochLength = 0 }, "epoch_length"},
		{"zero power unit", func(g *Genesis) { g.Params.PowerUnit = 0 }, "power_unit"},
		{"zero max validators", func(g *Genesis) { g.Params.MaxValidators = 0 }, "max_validators"},
		{"free txs", func(g *Genesis) { g.Params.MinFee = 0 }, "min_fee"},
		{"zero max txs", func(g *Genesis) { g.Params.MaxBlockTxs = 0 }, "max_block_txs"},
		{"market fee above one", func(g *Genesis) { g.Params.MarketFee = Fraction{2, 1} }, "market_fee"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := base()
			c.mutate(g)
			err := g.Validate()
			if !errors.Is(err, ErrBadGenesis) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v; want ErrBadGenesis mentioning %q", err, c.want)
			}
			if err := g.Save(filepath.Join(t.TempDir(), "g.json")); !errors.Is(err, ErrBadGenesis) && c.name != "no validators" {
				t.Fatalf("Save of invalid genesis = %v", err)
			}
			if _, err := InitialState(g); !errors.Is(err, ErrBadGenesis) {
				t.Fatalf("InitialState of invalid genesis = %v", err)
			}
		})
	}
	if err := base().AddValidator(keys.IDs[1], 1_000_000); !errors.Is(err, ErrBadGenesis) {
		t.Errorf("AddValidator twice = %v", err)
	}
	if err := base().AddAccount(keys.IDs[0], ^uint64(0)); !errors.Is(err, ErrBadGenesis) {
		t.Errorf("AddAccount overflow = %v", err)
	}
	if err := base().AddAccount(keys.IDs[0], 0); !errors.Is(err, ErrBadGenesis) {
		t.Errorf("AddAccount zero = %v", err)
	}
}

// TestGenesisCLIFlow follows `genesis new`, `add-account`, `add-validator`:
// each step loads and saves the file; only the last is a startable genesis.
func TestGenesisCLIFlow(t *testing.T) {
	keys := NewKeyring(newRand(13), 2)
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := NewGenesis("devnet").Save(path); err != nil {
		t.Fatalf("new: %v", err)
	}
	steps := []func(g *Genesis) error{
		func(g *Genesis) error { return g.AddAccount(keys.IDs[0], 100) },
		func(g *Genesis) error { return g.AddValidator(keys.IDs[1], 1_000_000) },
	}
	for i, step := range steps {
		g, err := Load(path)
		if err != nil {
			t.Fatalf("step %d: load: %v", i, err)
		}
		if _, err := InitialState(g); !errors.Is(err, ErrBadGenesis) {
			t.Fatalf("step %d: a genesis without validators started: %v", i, err)
		}
		if err := step(g); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if err := g.Save(path); err != nil {
			t.Fatalf("step %d: save: %v", i, err)
		}
	}
	g, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitialState(g); err != nil {
		t.Fatalf("final genesis: %v", err)
	}
}

func TestParseGenesisStrict(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"unknown field":  strings.Replace(string(data), `"min_fee"`, `"min_fees"`, 1),
		"trailing data":  string(data) + "{}",
		"negative":       strings.Replace(string(data), `"min_fee": 1`, `"min_fee": -1`, 1),
		"not JSON":       "chain_id: devnet",
		"missing params": `{"chain_id": "devnet"}`,
		"negative power": strings.Replace(string(data), `"power": 2000000`, `"power": -2000000`, 1),
	} {
		if _, err := ParseGenesis([]byte(bad)); !errors.Is(err, ErrBadGenesis) {
			t.Errorf("%s: ParseGenesis = %v; want ErrBadGenesis", name, err)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func FuzzParseGenesis(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "genesis.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGenesis(data)
		if err != nil {
			return
		}
		st, err := InitialState(g)
		if err != nil {
			t.Fatalf("valid genesis gave no state: %v", err)
		}
		if err := CheckInvariant(st); err != nil {
			t.Fatal(err)
		}
	})
}
