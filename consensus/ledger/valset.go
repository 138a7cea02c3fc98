package ledger

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxTotalPower bounds the sum of voting powers of a set (consensus/bft
// computes 3*power in int64).
const MaxTotalPower = math.MaxInt64 / 4

// ValidatorSet returns the validator set consensus must use at height, in
// ID order, with stake-weighted power. A block at height h changes stakes;
// the change takes effect in the set of h+2, so after applying block h the
// sets of h+1 and h+2 are final. The state also remembers past sets back to
// EvidenceMaxAge heights, for evidence. Other heights give
// ErrNoValidatorSet. The result is a copy.
func ValidatorSet(st *State, height uint64) ([]Validator, error) {
	if height == 0 || height > st.height+2 || len(st.sets) == 0 || height < st.sets[0].From {
		return nil, fmt.Errorf("%w: %d (state at %d)", ErrNoValidatorSet, height, st.height)
	}
	i, _ := slices.BinarySearchFunc(st.sets, height+1, func(e setEntry, h uint64) int { return cmp.Compare(e.From, h) })
	vals := st.sets[i-1].Vals
	out := make([]Validator, len(vals))
	for j, v := range vals {
		out[j] = v
		out[j].PubKey = slices.Clone(v.PubKey)
	}
	return out, nil
}

// computeSet derives a validator set from bonds: unjailed validators with at
// least MinValidatorStake and positive power, the MaxValidators largest
// stakes (ties by ID), sorted by ID. Powers are halved together until their
// total fits MaxTotalPower.
func computeSet(p Params, each func(func(id string, b Bond) bool)) []Validator {
	var cands []Validator
	each(func(id string, b Bond) bool {
		if b.Jailed || b.Validator < p.MinValidatorStake || b.Validator/p.PowerUnit == 0 {
			return true
		}
		pid, err := peer.Decode(id)
		if err != nil {
			return true // stake is only ever bonded by tx authors, whose IDs decode
		}
		pub, err := pid.ExtractPublicKey()
		if err != nil {
			return true
		}
		raw, err := pub.Raw()
		if err != nil {
			return true
		}
		cands = append(cands, Validator{ID: id, PubKey: raw, Stake: b.Validator, Power: int64(min(b.Validator/p.PowerUnit, math.MaxInt64))})
		return true
	})
	slices.SortFunc(cands, func(a, b Validator) int {
		if c := cmp.Compare(b.Stake, a.Stake); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(cands) > int(p.MaxValidators) {
		cands = cands[:p.MaxValidators]
	}
	for {
		var total uint64
		ok := true
		for _, v := range cands {
			total += uint64(v.Power)
			if total > MaxTotalPower {
				ok = false
				break
			}
		}
		if ok {
			break
		}
		for i := range cands {
			cands[i].Power = max(cands[i].Power/2, 1)
		}
	}
	slices.SortFunc(cands, func(a, b Validator) int { return cmp.Compare(a.ID, b.ID) })
	return cands
}

// nextSets appends the set of height h+2 to the history if it differs from
// the set of h+1. An empty result (every validator gone or jailed) would
// halt the chain for good, so the previous set then stays in force.
func (w *work) nextSets() []setEntry {
	sets := w.st.sets
	if !w.bonds.dirty() {
		return sets
	}
	next := computeSet(w.st.params, w.bonds.each)
	if len(next) == 0 || equalSets(next, sets[len(sets)-1].Vals) {
		return sets
	}
	w.events = append(w.events, Event{Kind: EventValidatorSet, Height: w.height(), Release: w.height() + 2, Amount: uint64(len(next))})
	return append(slices.Clone(sets), setEntry{From: w.height() + 2, Vals: next})
}

// pruneSets drops set entries that no longer cover any height >= low.
func pruneSets(sets []setEntry, low uint64) []setEntry {
	i := 0
	for i+1 < len(sets) && sets[i+1].From <= low {
		i++
	}
	if i == 0 {
		return sets
	}
	return slices.Clone(sets[i:])
}
