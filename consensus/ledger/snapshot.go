package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gpunode/gpunode/protocol"
)

// ErrBadSnapshot reports a state snapshot that does not decode or whose
// contents do not match its hash or the invariant.
var ErrBadSnapshot = errors.New("ledger: bad state snapshot")

const snapshotVersion = 1

// snapshot is the wire form of a State: every section as a sorted list.
type snapshot struct {
	Version       uint8         `cbor:"1,keyasint"`
	ChainID       string        `cbor:"2,keyasint"`
	Params        Params        `cbor:"3,keyasint"`
	Height        uint64        `cbor:"4,keyasint"`
	Time          int64         `cbor:"5,keyasint"`
	Last          [32]byte      `cbor:"6,keyasint"`
	GenesisSupply uint64        `cbor:"7,keyasint"`
	Minted        uint64        `cbor:"8,keyasint"`
	Burned        uint64        `cbor:"9,keyasint"`
	Accounts      []snapAccount `cbor:"10,keyasint"`
	Bonds         []snapBond    `cbor:"11,keyasint"`
	Escrow        []snapEscrow  `cbor:"12,keyasint"`
	Ext           []snapExt     `cbor:"13,keyasint"`
	Unbonding     []Unbonding   `cbor:"14,keyasint"`
	Sets          []setEntry    `cbor:"15,keyasint"`
	Slashed       []slashRecord `cbor:"16,keyasint"`
	Hash          [32]byte      `cbor:"17,keyasint"`
}

type snapAccount struct {
	ID      string `cbor:"1,keyasint"`
	Balance uint64 `cbor:"2,keyasint"`
	Nonce   uint64 `cbor:"3,keyasint"`
}

type snapBond struct {
	ID   string `cbor:"1,keyasint"`
	Bond Bond   `cbor:"2,keyasint"`
}

type snapEscrow struct {
	ID     string `cbor:"1,keyasint"`
	Amount uint64 `cbor:"2,keyasint"`
}

type snapExt struct {
	Key   string `cbor:"1,keyasint"`
	Value []byte `cbor:"2,keyasint"`
}

// Export encodes the state as deterministic CBOR, for a node to persist its
// latest state (instead of replaying every block from genesis) or hand it
// to a peer. ImportState reverses it. Lists are capped at 2^20 entries by
// the protocol decoder, so a state of more than about a million accounts
// needs a chunked format.
func (s *State) Export() ([]byte, error) {
	sn := snapshot{
		Version: snapshotVersion, ChainID: s.chainID, Params: s.params, Height: s.height, Time: s.time, Last: s.last,
		GenesisSupply: s.genesisSupply, Minted: s.minted, Burned: s.burned,
		Unbonding: s.unbonding, Sets: s.sets, Slashed: s.slashed, Hash: s.hash,
	}
	s.accounts.each(func(k string, a Account) bool {
		sn.Accounts = append(sn.Accounts, snapAccount{k, a.Balance, a.Nonce})
		return true
	})
	s.bonds.each(func(k string, b Bond) bool { sn.Bonds = append(sn.Bonds, snapBond{k, b}); return true })
	s.escrow.each(func(k string, v uint64) bool { sn.Escrow = append(sn.Escrow, snapEscrow{k, v}); return true })
	s.ext.each(func(k string, v []byte) bool { sn.Ext = append(sn.Ext, snapExt{k, v}); return true })
	// each visits by shard; the wire form is sorted by key so that it does
	// not depend on the shard layout.
	slices.SortFunc(sn.Accounts, func(a, b snapAccount) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(sn.Bonds, func(a, b snapBond) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(sn.Escrow, func(a, b snapEscrow) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(sn.Ext, func(a, b snapExt) int { return strings.Compare(a.Key, b.Key) })
	return protocol.Marshal(&sn)
}

// ImportState decodes an exported state and checks it completely: strict
// canonical decoding, sorted unique keys, valid parameters, a validator set
// history, the supply invariant, and the recomputed state hash against the
// recorded one. Compare Hash() with a trusted block header before relying on
// it.
func ImportState(data []byte) (*State, error) {
	var sn snapshot
	if err := protocol.Unmarshal(data, &sn); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if sn.Version != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadSnapshot, sn.Version)
	}
	if err := sn.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if len(sn.Sets) == 0 || slices.ContainsFunc(sn.Sets, func(e setEntry) bool { return len(e.Vals) == 0 }) {
		return nil, fmt.Errorf("%w: no validator set", ErrBadSnapshot)
	}
	sorted := func(n int, key func(int) string) bool {
		for i := 1; i < n; i++ {
			if key(i-1) >= key(i) {
				return false
			}
		}
		return true
	}
	if !sorted(len(sn.Accounts), func(i int) string { return sn.Accounts[i].ID }) ||
		!sorted(len(sn.Bonds), func(i int) string { return sn.Bonds[i].ID }) ||
		!sorted(len(sn.Escrow), func(i int) string { return sn.Escrow[i].ID }) ||
		!sorted(len(sn.Ext), func(i int) string { return sn.Ext[i].Key }) {
		return nil, fmt.Errorf("%w: keys not sorted and unique", ErrBadSnapshot)
	}
	st := sn.state()
	st.seal(nil)
	if st.hash != sn.Hash {
		return nil, fmt.Errorf("%w: contents hash to %x, snapshot says %x", ErrBadSnapshot, st.hash[:8], sn.Hash[:8])
	}
	if err := CheckInvariant(st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return st, nil
}

// state builds the State a snapshot describes, without checking it.
func (sn *snapshot) state() *State {
	accts := newSmap[Account](accountShards).begin(encAccount)
	for _, a := range sn.Accounts {
		accts.set(a.ID, Account{Balance: a.Balance, Nonce: a.Nonce})
	}
	bonds := newSmap[Bond](bondShards).begin(encBond)
	for _, b := range sn.Bonds {
		bonds.set(b.ID, b.Bond)
	}
	escrow := newSmap[uint64](escrowShards).begin(encU64)
	for _, e := range sn.Escrow {
		escrow.set(e.ID, e.Amount)
	}
	ext := newSmap[[]byte](extShards).begin(encBytes)
	for _, e := range sn.Ext {
		ext.set(e.Key, e.Value)
	}
	return &State{
		chainID: sn.ChainID, params: sn.Params, height: sn.Height, time: sn.Time, last: sn.Last,
		genesisSupply: sn.GenesisSupply, minted: sn.Minted, burned: sn.Burned,
		accounts: accts.commit(), bonds: bonds.commit(), escrow: escrow.commit(), ext: ext.commit(),
		unbonding: sn.Unbonding, sets: sn.Sets, slashed: sn.Slashed,
	}
}
