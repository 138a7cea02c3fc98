package ledger

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// Genesis is the genesis file of a network: its chain ID, parameters,
// initial balances and initial validators. docs/GENESIS.md describes the
// JSON format.
type Genesis struct {
	ChainID     string             `json:"chain_id"`
	GenesisTime time.Time          `json:"genesis_time"`
	Params      Params             `json:"params"`
	Accounts    []GenesisAccount   `json:"accounts"`
	Validators  []GenesisValidator `json:"validators"`
	// Market holds the market's chain parameters, read by the market
	// package (settle.ParseParams); the ledger keeps it verbatim.
	Market json.RawMessage `json:"market,omitempty"`
}

// GenesisAccount is an initial balance.
type GenesisAccount struct {
	ID      string `json:"id"` // peer ID string
	Balance uint64 `json:"balance"`
}

// GenesisValidator is an initial validator with its bonded stake (in
// addition to any balance). Power is stake / params.power_unit, written out
// for readers and checked by Validate.
type GenesisValidator struct {
	ID    string `json:"id"`
	Stake uint64 `json:"stake"`
	Power int64  `json:"power"`
}

// NewGenesis returns a genesis for chainID with DefaultParams, no accounts
// and no validators. The genesis time is left zero for the caller to set
// (the CLI passes the current time); it is informational.
func NewGenesis(chainID string) *Genesis {
	return &Genesis{ChainID: chainID, Params: DefaultParams()}
}

// AddAccount adds amount to id's initial balance (creating the entry).
func (g *Genesis) AddAccount(id string, amount uint64) error {
	if err := checkGenesisID(id); err != nil {
		return err
	}
	if amount == 0 {
		return fmt.Errorf("%w: zero balance for %s", ErrBadGenesis, id)
	}
	for i := range g.Accounts {
		if g.Accounts[i].ID == id {
			s, carry := bits.Add64(g.Accounts[i].Balance, amount, 0)
			if carry != 0 {
				return fmt.Errorf("%w: balance of %s overflows", ErrBadGenesis, id)
			}
			g.Accounts[i].Balance = s
			return nil
		}
	}
	g.Accounts = append(g.Accounts, GenesisAccount{ID: id, Balance: amount})
	return nil
}

// AddValidator adds id as an initial validator bonding stake.
func (g *Genesis) AddValidator(id string, stake uint64) error {
	if err := checkGenesisID(id); err != nil {
		return err
	}
	if slices.ContainsFunc(g.Validators, func(v GenesisValidator) bool { return v.ID == id }) {
		return fmt.Errorf("%w: validator %s already present", ErrBadGenesis, id)
	}
	if stake < g.Params.MinValidatorStake {
		return fmt.Errorf("%w: stake %d below min_validator_stake %d", ErrBadGenesis, stake, g.Params.MinValidatorStake)
	}
	pu := max(g.Params.PowerUnit, 1)
	g.Validators = append(g.Validators, GenesisValidator{ID: id, Stake: stake, Power: int64(min(stake/pu, uint64(MaxTotalPower)))})
	return nil
}

// checkGenesisID requires the canonical string of an Ed25519 peer ID: the
// ledger needs the public key inside it for validator sets.
func checkGenesisID(id string) error {
	p, err := peer.Decode(id)
	if err != nil || p.String() != id {
		return fmt.Errorf("%w: %q is not a peer ID", ErrBadGenesis, id)
	}
	pub, err := p.ExtractPublicKey()
	if err != nil || pub.Type() != pb.KeyType_Ed25519 {
		return fmt.Errorf("%w: %s has no embedded Ed25519 key", ErrBadGenesis, id)
	}
	return nil
}

// Supply is the total of balances and validator stakes.
func (g *Genesis) Supply() (uint64, error) {
	var total uint64
	var carry uint64
	for _, a := range g.Accounts {
		total, carry = bits.Add64(total, a.Balance, 0)
		if carry != 0 {
			return 0, fmt.Errorf("%w: supply overflows uint64", ErrBadGenesis)
		}
	}
	for _, v := range g.Validators {
		total, carry = bits.Add64(total, v.Stake, 0)
		if carry != 0 {
			return 0, fmt.Errorf("%w: supply overflows uint64", ErrBadGenesis)
		}
	}
	return total, nil
}

// Validate checks the whole genesis: chain ID, parameters, IDs, no
// duplicates, validator stakes and powers, at least one validator, and a
// supply that fits in uint64. InitialState requires it.
func (g *Genesis) Validate() error {
	if err := g.validateDraft(); err != nil {
		return err
	}
	if len(g.Validators) == 0 {
		return fmt.Errorf("%w: no validators", ErrBadGenesis)
	}
	return nil
}

// validateDraft is Validate without requiring a validator: a genesis
// being assembled by `gpunode genesis new` and `add-account` is saved and
// loaded before its first `add-validator`.
func (g *Genesis) validateDraft() error {
	if err := protocol.ValidateNetwork(g.ChainID); err != nil {
		return fmt.Errorf("%w: chain_id: %w", ErrBadGenesis, err)
	}
	if err := g.Params.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range g.Accounts {
		if err := checkGenesisID(a.ID); err != nil {
			return err
		}
		if seen[a.ID] {
			return fmt.Errorf("%w: account %s listed twice", ErrBadGenesis, a.ID)
		}
		seen[a.ID] = true
	}
	if len(g.Validators) > int(g.Params.MaxValidators) {
		return fmt.Errorf("%w: %d validators, max_validators %d", ErrBadGenesis, len(g.Validators), g.Params.MaxValidators)
	}
	clear(seen)
	var power uint64
	for _, v := range g.Validators {
		if err := checkGenesisID(v.ID); err != nil {
			return err
		}
		if seen[v.ID] {
			return fmt.Errorf("%w: validator %s listed twice", ErrBadGenesis, v.ID)
		}
		seen[v.ID] = true
		if v.Stake < g.Params.MinValidatorStake {
			return fmt.Errorf("%w: validator %s stake %d below min_validator_stake %d", ErrBadGenesis, v.ID, v.Stake, g.Params.MinValidatorStake)
		}
		if want := v.Stake / g.Params.PowerUnit; v.Power < 0 || uint64(v.Power) != want {
			return fmt.Errorf("%w: validator %s power %d, stake/power_unit is %d", ErrBadGenesis, v.ID, v.Power, want)
		}
		power += uint64(v.Power)
		if power > MaxTotalPower {
			return fmt.Errorf("%w: total power above %d; raise power_unit", ErrBadGenesis, int64(MaxTotalPower))
		}
	}
	_, err := g.Supply()
	return err
}

// Load reads and checks a genesis file. Unknown fields are an error, so a
// typo in a parameter name does not silently fall back to zero. A file
// without validators loads (it may be in the making); InitialState refuses
// it.
func Load(path string) (*Genesis, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: read genesis: %w", err)
	}
	return ParseGenesis(data)
}

// ParseGenesis decodes and checks genesis JSON like Load.
func ParseGenesis(data []byte) (*Genesis, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var g Genesis
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadGenesis, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the genesis object", ErrBadGenesis)
	}
	if err := g.validateDraft(); err != nil {
		return nil, err
	}
	return &g, nil
}

// Save checks g like Load and writes it as indented JSON, atomically
// (temporary file and rename) with mode 0644.
func (g *Genesis) Save(path string) error {
	if err := g.validateDraft(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".genesis-*.json")
	if err != nil {
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ledger: save genesis: %w", err)
	}
	return nil
}

// InitialState is the state at height 0: the genesis balances, the genesis
// validators' stakes bonded, and their set in force for heights 1 and 2.
func InitialState(g *Genesis) (*State, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	supply, _ := g.Supply()
	accts := newSmap[Account](accountShards).begin(encAccount)
	for _, a := range g.Accounts {
		accts.set(a.ID, Account{Balance: a.Balance})
	}
	bonds := newSmap[Bond](bondShards).begin(encBond)
	for _, v := range g.Validators {
		bonds.set(v.ID, Bond{Validator: v.Stake})
	}
	st := &State{
		chainID:       g.ChainID,
		params:        g.Params,
		time:          g.GenesisTime.UnixMilli(),
		genesisSupply: supply,
		accounts:      accts.commit(),
		bonds:         bonds.commit(),
		escrow:        newSmap[uint64](escrowShards),
		ext:           newSmap[[]byte](extShards),
	}
	vals := computeSet(g.Params, st.bonds.each)
	if len(vals) != len(g.Validators) {
		return nil, fmt.Errorf("%w: only %d of %d validators qualify", ErrBadGenesis, len(vals), len(g.Validators))
	}
	st.sets = []setEntry{{From: 1, Vals: vals}}
	st.seal(nil)
	return st, nil
}
