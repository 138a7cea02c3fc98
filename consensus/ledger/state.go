package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"

	"github.com/gpunode/gpunode/protocol"
)

// Role says what a stake bonds: validating blocks or providing compute.
type Role string

// The stake roles.
const (
	RoleValidator Role = "validator"
	RoleProvider  Role = "provider"
)

func (r Role) valid() bool { return r == RoleValidator || r == RoleProvider }

// Account is the spendable part of a peer's holdings. The account of a peer
// exists once anything was credited to it; it is never deleted, so its nonce
// keeps protecting against replays.
type Account struct {
	Balance uint64 `json:"balance"`
	Nonce   uint64 `json:"nonce"` // the nonce the next tx from this account must carry
}

// Bond is what a peer has staked, and its jail status as a validator.
type Bond struct {
	Validator   uint64 `cbor:"1,keyasint" json:"validator"`
	Provider    uint64 `cbor:"2,keyasint" json:"provider"`
	Jailed      bool   `cbor:"3,keyasint" json:"jailed"`
	JailedUntil uint64 `cbor:"4,keyasint" json:"jailed_until"` // first height at which Unjail is accepted
}

func (b Bond) stake(r Role) uint64 {
	if r == RoleValidator {
		return b.Validator
	}
	return b.Provider
}

func (b *Bond) setStake(r Role, v uint64) {
	if r == RoleValidator {
		b.Validator = v
	} else {
		b.Provider = v
	}
}

func (b Bond) isZero() bool { return b == Bond{} }

// Unbonding is stake on its way back to its owner's balance. It still
// counts in the supply invariant and can still be slashed for evidence of
// an offence committed before the unstake.
type Unbonding struct {
	Account string `cbor:"1,keyasint" json:"account"`
	Role    Role   `cbor:"2,keyasint" json:"role"`
	Amount  uint64 `cbor:"3,keyasint" json:"amount"`
	Since   uint64 `cbor:"4,keyasint" json:"since"`   // height of the Unstake
	Release uint64 `cbor:"5,keyasint" json:"release"` // height at whose end the amount returns
}

// Validator is a member of the validator set of some height, in the shape
// consensus/bft wants: PubKey is the raw Ed25519 key extracted from the
// peer ID and Power is the stake divided by Params.PowerUnit.
type Validator struct {
	ID     string `cbor:"1,keyasint" json:"id"`
	PubKey []byte `cbor:"2,keyasint" json:"pub_key"`
	Power  int64  `cbor:"3,keyasint" json:"power"`
	Stake  uint64 `cbor:"4,keyasint" json:"stake"`
}

// setEntry is the validator set in force from height From until the next
// entry's From.
type setEntry struct {
	From uint64      `cbor:"1,keyasint"`
	Vals []Validator `cbor:"2,keyasint"`
}

// Shard counts of the hashed maps. They are part of the state hash layout:
// changing one is a consensus change.
const (
	accountShards = 16384
	bondShards    = 64
	escrowShards  = 256
	extShards     = 1024
)

// State is the ledger state after some height. It is immutable: Apply
// returns a new State and never changes its input, so a caller may keep
// old states (e.g. to serve queries at a past height) without copying.
type State struct {
	chainID string
	params  Params
	height  uint64
	time    int64 // header time of the last block (informational)
	// last is the hash of the last block header (zero at genesis). It is
	// not part of the state hash: the header that carries the state hash
	// cannot be inside it. The next header's PrevHash chains blocks.
	last [32]byte

	genesisSupply uint64
	minted        uint64
	burned        uint64

	accounts *smap[Account]
	bonds    *smap[Bond]
	escrow   *smap[uint64]
	ext      *smap[[]byte]

	unbonding []Unbonding   // sorted by Release, then insertion order
	sets      []setEntry    // validator set history, oldest first; covers [height-EvidenceMaxAge, height+2]
	slashed   []slashRecord // evidence already punished within EvidenceMaxAge, sorted
	secHash   [3][32]byte   // sha256 of the CBOR of unbonding, sets and slashed
	hash      [32]byte      // StateHash, computed once by seal
}

// slashRecord remembers that Validator was slashed for an offence at Height,
// so the same offence is never punished twice.
type slashRecord struct {
	Validator string `cbor:"1,keyasint"`
	Height    uint64 `cbor:"2,keyasint"`
}

// ChainID is the chain this state belongs to.
func (s *State) ChainID() string { return s.chainID }

// Params are the genesis parameters.
func (s *State) Params() Params { return s.params }

// Height is the height of the last applied block; 0 for the genesis state.
func (s *State) Height() uint64 { return s.height }

// Time is the header time (unix ms) of the last applied block, or the
// genesis time. Informational only.
func (s *State) Time() int64 { return s.time }

// LastBlockHash is the hash of the last applied block's header (zero at
// genesis); the next block's PrevHash must equal it.
func (s *State) LastBlockHash() [32]byte { return s.last }

// Supply returns the genesis supply, everything minted and everything burned
// so far. Circulating supply is genesis + minted - burned.
func (s *State) Supply() (genesis, minted, burned uint64) {
	return s.genesisSupply, s.minted, s.burned
}

// Account returns id's account; ok is false if it never received anything.
func (s *State) Account(id string) (Account, bool) { return s.accounts.get(id) }

// NumAccounts is the number of accounts.
func (s *State) NumAccounts() int { return s.accounts.Len() }

// Bond returns id's stakes and jail status (zero if none).
func (s *State) Bond(id string) Bond { b, _ := s.bonds.get(id); return b }

// Escrow returns the amount held in escrow id (zero if none).
func (s *State) Escrow(id string) uint64 { v, _ := s.escrow.get(id); return v }

// Ext returns the extension record under key, as stored by a tx handler.
func (s *State) Ext(key string) ([]byte, bool) {
	v, ok := s.ext.get(key)
	return slices.Clone(v), ok
}

// Unbonding lists the stakes being unbonded, by release height.
func (s *State) Unbonding() []Unbonding { return slices.Clone(s.unbonding) }

// Accounts calls f for every account in a deterministic order until f
// returns false.
func (s *State) Accounts(f func(id string, a Account) bool) { s.accounts.each(f) }

// Bonds calls f for every bond in a deterministic order until f returns false.
func (s *State) Bonds(f func(id string, b Bond) bool) { s.bonds.each(f) }

// Escrows calls f for every escrow in a deterministic order until f returns false.
func (s *State) Escrows(f func(id string, amount uint64) bool) { s.escrow.each(f) }

// Hash is the state hash: what the header of the block that produced this
// state carries in StateHash.
func (s *State) Hash() [32]byte { return s.hash }

// HashHex is Hash in hex, for logs and the API.
func (s *State) HashHex() string { return hex.EncodeToString(s.hash[:]) }

// stateHashDomain separates state hashes from any other sha256 use.
const stateHashDomain = "gpunode/ledger/state/1\x00"

// computeHash hashes the globals, the roots of the hashed maps and the
// hashes of the canonical CBOR of the small sections (set by seal).
func (s *State) computeHash() [32]byte {
	h := sha256.New()
	h.Write([]byte(stateHashDomain))
	var b [8]byte
	u64 := func(v uint64) { binary.BigEndian.PutUint64(b[:], v); h.Write(b[:]) }
	str := func(v string) { u64(uint64(len(v))); h.Write([]byte(v)) }
	str(s.chainID)
	ph := s.params.hash()
	h.Write(ph[:])
	u64(s.height)
	u64(uint64(s.time))
	u64(s.genesisSupply)
	u64(s.minted)
	u64(s.burned)
	for _, r := range [][32]byte{s.accounts.root, s.bonds.root, s.escrow.root, s.ext.root} {
		h.Write(r[:])
	}
	for _, sh := range s.secHash {
		h.Write(sh[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// seal computes the section hashes and the state hash. Sections are
// copied on write, so a section that is the very slice of prev is unchanged
// and keeps prev's hash; prev may be nil.
func (s *State) seal(prev *State) {
	for i, sec := range [3]func(*State) any{
		func(x *State) any { return x.unbonding },
		func(x *State) any { return x.sets },
		func(x *State) any { return x.slashed },
	} {
		if prev != nil && sameSlice(i, s, prev) {
			s.secHash[i] = prev.secHash[i]
			continue
		}
		s.secHash[i] = sha256.Sum256(protocol.MustMarshal(sec(s)))
	}
	s.hash = s.computeHash()
}

func sameSlice(section int, a, b *State) bool {
	switch section {
	case 0:
		return same(a.unbonding, b.unbonding)
	case 1:
		return same(a.sets, b.sets)
	default:
		return same(a.slashed, b.slashed)
	}
}

// same reports whether x and y are the same slice (same backing array and
// length), not merely equal ones.
func same[T any](x, y []T) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}

// Leaf encodings of the hashed maps: fixed big-endian layouts, cheaper than
// CBOR for the per-account hot path.
func encAccount(dst []byte, a Account) []byte {
	dst = binary.BigEndian.AppendUint64(dst, a.Balance)
	return binary.BigEndian.AppendUint64(dst, a.Nonce)
}

func encBond(dst []byte, b Bond) []byte {
	dst = binary.BigEndian.AppendUint64(dst, b.Validator)
	dst = binary.BigEndian.AppendUint64(dst, b.Provider)
	j := byte(0)
	if b.Jailed {
		j = 1
	}
	dst = append(dst, j)
	return binary.BigEndian.AppendUint64(dst, b.JailedUntil)
}

func encU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

func encBytes(dst []byte, v []byte) []byte { return append(dst, v...) }
