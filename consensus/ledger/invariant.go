package ledger

import (
	"fmt"
	"math/bits"
	"sync"
)

// CheckInvariant verifies the supply invariant of st:
//
//	sum(balances) + sum(stakes) + sum(unbonding) + sum(escrow)
//	    == genesis supply + minted - burned
//
// computed with overflow checks. It walks the whole state (O(accounts)),
// so tests and audits call it, not the hot path. It also checks that the
// state hash matches the state's contents.
func CheckInvariant(st *State) error {
	var sum, carry uint64
	add := func(v uint64) {
		var c uint64
		sum, c = bits.Add64(sum, v, 0)
		carry |= c
	}
	st.accounts.each(func(_ string, a Account) bool { add(a.Balance); return true })
	st.bonds.each(func(_ string, b Bond) bool { add(b.Validator); add(b.Provider); return true })
	for _, u := range st.unbonding {
		add(u.Amount)
	}
	st.escrow.each(func(_ string, v uint64) bool { add(v); return true })
	if carry != 0 {
		return fmt.Errorf("%w: holdings overflow uint64 at height %d", ErrInvariant, st.height)
	}
	want := st.genesisSupply + st.minted - st.burned
	if st.minted > ^uint64(0)-st.genesisSupply || st.burned > st.genesisSupply+st.minted {
		return fmt.Errorf("%w: supply counters out of range at height %d", ErrInvariant, st.height)
	}
	if sum != want {
		return fmt.Errorf("%w at height %d: holdings %d != genesis %d + minted %d - burned %d = %d",
			ErrInvariant, st.height, sum, st.genesisSupply, st.minted, st.burned, want)
	}
	if !st.accounts.verify(encAccount) || !st.bonds.verify(encBond) || !st.escrow.verify(encU64) || !st.ext.verify(encBytes) {
		return fmt.Errorf("%w: incremental map hash differs from a full recomputation at height %d", ErrInvariant, st.height)
	}
	fresh := *st
	fresh.seal(nil)
	if h := fresh.hash; h != st.hash {
		return fmt.Errorf("%w: stored state hash %x differs from recomputed %x at height %d", ErrInvariant, st.hash[:8], h[:8], st.height)
	}
	return nil
}

var (
	defaultOnce   sync.Once
	defaultLedger *Ledger
)

// Default is a Ledger with the built-in tx types and default options.
func Default() *Ledger {
	defaultOnce.Do(func() {
		var err error
		if defaultLedger, err = New(); err != nil {
			panic(err) // New without options cannot fail
		}
	})
	return defaultLedger
}

// Apply applies block to st with the Default ledger. See Ledger.Apply.
func Apply(st *State, b *Block) (*State, []Event, error) { return Default().Apply(st, b) }
