package bft

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Validator is one member of a validator set.
type Validator struct {
	ID     string `cbor:"1,keyasint"` // libp2p peer ID string; also the account
	PubKey []byte `cbor:"2,keyasint"` // raw Ed25519 public key (32 bytes)
	Power  int64  `cbor:"3,keyasint"` // voting power (stake), > 0
}

// MaxTotalPower bounds the sum of voting powers so quorum arithmetic
// (3*power) cannot overflow int64.
const MaxTotalPower = math.MaxInt64 / 4

// ValidatorSet is an immutable validator set for one height, sorted by ID.
type ValidatorSet struct {
	vals  []Validator
	index map[string]int
	total int64
	hash  Hash
}

// NewValidatorSet validates vals and returns the set. It copies its input.
func NewValidatorSet(vals []Validator) (*ValidatorSet, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidValidators)
	}
	vs := &ValidatorSet{vals: make([]Validator, len(vals)), index: make(map[string]int, len(vals))}
	for i, v := range vals {
		switch {
		case v.ID == "" || len(v.ID) > maxIDLen:
			return nil, fmt.Errorf("%w: bad ID %q", ErrInvalidValidators, v.ID)
		case len(v.PubKey) != ed25519.PublicKeySize:
			return nil, fmt.Errorf("%w: %q: public key of %d bytes", ErrInvalidValidators, v.ID, len(v.PubKey))
		case v.Power <= 0:
			return nil, fmt.Errorf("%w: %q: power %d", ErrInvalidValidators, v.ID, v.Power)
		case v.Power > MaxTotalPower-vs.total:
			return nil, fmt.Errorf("%w: total power above %d", ErrInvalidValidators, int64(MaxTotalPower))
		}
		vs.total += v.Power
		vs.vals[i] = Validator{ID: v.ID, PubKey: slices.Clone(v.PubKey), Power: v.Power}
	}
	slices.SortFunc(vs.vals, func(a, b Validator) int { return strings.Compare(a.ID, b.ID) })
	h := sha256.New()
	h.Write([]byte("gpunode/bft/valset/1\x00"))
	for i, v := range vs.vals {
		if i > 0 && vs.vals[i-1].ID == v.ID {
			return nil, fmt.Errorf("%w: duplicate ID %q", ErrInvalidValidators, v.ID)
		}
		vs.index[v.ID] = i
		var b [8]byte
		binary.BigEndian.PutUint16(b[:2], uint16(len(v.ID)))
		h.Write(b[:2])
		h.Write([]byte(v.ID))
		h.Write(v.PubKey)
		binary.BigEndian.PutUint64(b[:], uint64(v.Power))
		h.Write(b[:])
	}
	copy(vs.hash[:], h.Sum(nil))
	return vs, nil
}

// Len returns the number of validators.
func (vs *ValidatorSet) Len() int { return len(vs.vals) }

// TotalPower returns the sum of voting powers.
func (vs *ValidatorSet) TotalPower() int64 { return vs.total }

// Hash commits to the set (IDs, keys and powers).
func (vs *ValidatorSet) Hash() Hash { return vs.hash }

// Validators returns a copy of the members, sorted by ID.
func (vs *ValidatorSet) Validators() []Validator { return slices.Clone(vs.vals) }

// Get returns the validator with the given ID.
func (vs *ValidatorSet) Get(id string) (Validator, bool) {
	i, ok := vs.index[id]
	if !ok {
		return Validator{}, false
	}
	return vs.vals[i], true
}

// HasQuorum reports whether power is more than 2/3 of the total.
func (vs *ValidatorSet) HasQuorum(power int64) bool { return 3*power > 2*vs.total }

// HasOneThird reports whether power is more than 1/3 of the total, so at
// least one honest validator is among its holders.
func (vs *ValidatorSet) HasOneThird(power int64) bool { return 3*power > vs.total }

// ProposerOrder returns the proposers of rounds 0, 1, ..., Len()-1 at
// height; round r's proposer is ProposerOrder(height)[r % Len()].
//
// The order is a stake-weighted sampling without replacement seeded by the
// set's hash and the height: the first proposer of a height is validator i
// with probability Power_i/TotalPower, and every validator proposes once
// within Len() consecutive rounds, so at most f+1 rounds pass before an
// honest proposer. Integers only, so every platform computes the same order.
func (vs *ValidatorSet) ProposerOrder(height uint64) []string {
	remaining := slices.Clone(vs.vals)
	total := vs.total
	order := make([]string, 0, len(remaining))
	var seed [8 + 8 + HashSize + 24]byte
	copy(seed[:], "propose\x00")
	binary.BigEndian.PutUint64(seed[8:], height)
	copy(seed[16:], vs.hash[:])
	for k := 0; len(remaining) > 0; k++ {
		binary.BigEndian.PutUint64(seed[16+HashSize:], uint64(k))
		sum := sha256.Sum256(seed[:])
		// 128-bit modulo by way of two 64-bit halves keeps the bias negligible.
		hi, lo := binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])
		x := int64(bits.Rem64(hi%uint64(total), lo, uint64(total)))
		i := 0
		for ; i < len(remaining)-1; i++ {
			if x < remaining[i].Power {
				break
			}
			x -= remaining[i].Power
		}
		order = append(order, remaining[i].ID)
		total -= remaining[i].Power
		remaining = slices.Delete(remaining, i, i+1)
	}
	return order
}

// Proposer returns the proposer of (height, round). Callers that ask often
// should cache ProposerOrder(height), as the Machine does.
func (vs *ValidatorSet) Proposer(height uint64, round int32) string {
	order := vs.ProposerOrder(height)
	return order[int(round)%len(order)]
}
