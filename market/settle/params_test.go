package settle

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gpunode/gpunode/consensus/ledger"
)

func TestParseParams(t *testing.T) {
	def := DefaultParams()
	with := func(f func(p *Params)) Params { p := def; f(&p); return p }
	for _, tc := range []struct {
		in   string
		want Params
	}{
		{``, def},
		{`null`, def},
		{`{}`, def},
		{` { } `, def},
		{`{"challenge_window": 3}`, with(func(p *Params) { p.ChallengeWindow = 3 })},
		{`{"challenge_window": 0}`, with(func(p *Params) { p.ChallengeWindow = 0 })},
		{`{"block_time_ms": 2000, "slash_amount": 5, "expiry_grace_ms": 0, "check_blocks": 7}`,
			with(func(p *Params) { p.BlockTimeMs, p.SlashAmount, p.ExpiryGraceMs, p.CheckBlocks = 2000, 5, 0, 7 })},
	} {
		got, err := ParseParams(json.RawMessage(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ParseParams(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		`{"check_block": 3}`,         // unknown key (typo)
		`{"block_time_ms": 0}`,       // invalid value
		`{"check_blocks": 0}`,        // invalid value
		`{"expiry_grace_ms": -1}`,    // invalid value
		`{"slash_amount": -1}`,       // wrong type
		`{"slash_amount": "5"}`,      // wrong type
		`[]`,                         // not an object
		`{"challenge_window": 1} {}`, // trailing data
		`{`,
	} {
		if p, err := ParseParams(json.RawMessage(in)); !errors.Is(err, ErrBadParams) {
			t.Errorf("ParseParams(%q) = %+v, %v; want ErrBadParams", in, p, err)
		}
	}
}

// TestGenesisMarket: the genesis file's "market" object survives Save and
// Load, the ledger still validates and starts from such a genesis, and the
// object parses to the params it states.
func TestGenesisMarket(t *testing.T) {
	keys := ledger.NewKeyring(rand.New(rand.NewPCG(1, 2)), 2)
	g := keys.TestGenesis("market-genesis", 1, 1000, 200)
	g.Market = json.RawMessage(`{"check_blocks": 9, "slash_amount": 42}`)
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := ledger.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseParams(back.Market)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Params{ChallengeWindow: 10, BlockTimeMs: 1000, SlashAmount: 42, ExpiryGraceMs: DefaultParams().ExpiryGraceMs, CheckBlocks: 9}); p != want {
		t.Fatalf("params %+v, want %+v", p, want)
	}
	st1, err := ledger.InitialState(g)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := ledger.InitialState(back)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Hash() != st2.Hash() {
		t.Fatal("genesis state differs after Save and Load")
	}
	// Without the object the file is as before and the defaults apply.
	g.Market = nil
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	if back, err = ledger.Load(path); err != nil || back.Market != nil {
		t.Fatalf("Load without market: %v, %q", err, back.Market)
	}
	if p, err := ParseParams(back.Market); err != nil || p != DefaultParams() {
		t.Fatalf("defaults: %+v, %v", p, err)
	}
}
