package ledger

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

func inSet(t *testing.T, st *State, h uint64, id string) bool {
	t.Helper()
	vals, err := ValidatorSet(st, h)
	if err != nil {
		t.Fatalf("ValidatorSet(%d): %v", h, err)
	}
	return slices.ContainsFunc(vals, func(v Validator) bool { return v.ID == id })
}

func TestEvidenceSlashesOnceAndJails(t *testing.T) {
	f := newFixture(t, 6, 4)
	f.run()
	f.run()
	bad := f.keys.IDs[2]
	ev, err := f.keys.Equivocate(testChain, bad, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, burnedBefore := f.st.Supply()
	stake := f.st.Bond(bad).Validator
	evs := f.apply(f.block(nil, []Evidence{ev}))
	h := f.st.Height()

	wantBurn := f.st.Params().SlashFraction.Of(stake)
	if got := f.st.Bond(bad).Validator; got != stake-wantBurn {
		t.Errorf("stake after slash = %d; want %d", got, stake-wantBurn)
	}
	if _, _, burned := f.st.Supply(); burned != burnedBefore+wantBurn {
		t.Errorf("burned = %d; want %d", burned, burnedBefore+wantBurn)
	}
	if s := eventsOf(evs, EventSlash); len(s) != 1 || s[0].Amount != wantBurn || s[0].Account != bad {
		t.Errorf("slash events = %+v", s)
	}
	b := f.st.Bond(bad)
	if !b.Jailed || b.JailedUntil != h+f.st.Params().JailPeriod {
		t.Errorf("bond = %+v; want jailed until %d", b, h+f.st.Params().JailPeriod)
	}
	// Jailing changes the set two heights later, not earlier.
	if !inSet(t, f.st, h+1, bad) || inSet(t, f.st, h+2, bad) {
		t.Errorf("jailed validator: in set h+1 = %v, h+2 = %v; want true, false", inSet(t, f.st, h+1, bad), inSet(t, f.st, h+2, bad))
	}

	// The same offence again, the same pair or another pair at another
	// round, is rejected: it slashes exactly once.
	again, _ := f.keys.Equivocate(testChain, bad, 1, 3)
	for _, e := range []Evidence{ev, again} {
		b, _, _, _, err := f.l.Propose(f.st, Header{ChainID: testChain, Proposer: f.proposer()}, nil, []Evidence{e})
		if err != nil || len(b.Evidence) != 0 {
			t.Fatalf("Propose kept duplicate evidence (%v)", err)
		}
		b.Evidence = []Evidence{e}
		b.Header.EvidenceRoot = EvidenceRoot(b.Evidence)
		assertRejected(t, f, b, ErrDuplicateEvidence)
	}
	// Twice in one block.
	f2 := newFixture(t, 6, 4)
	f2.run()
	f2.run()
	b2, _, _, _, err := f2.l.Propose(f2.st, Header{ChainID: testChain, Proposer: f2.proposer()}, nil, []Evidence{ev, ev})
	if err != nil || len(b2.Evidence) != 1 {
		t.Fatalf("Propose kept %d of a doubled evidence (%v); want 1", len(b2.Evidence), err)
	}
	b2.Evidence = []Evidence{ev, ev}
	b2.Header.EvidenceRoot = EvidenceRoot(b2.Evidence)
	assertRejected(t, f2, b2, ErrDuplicateEvidence)

	// Unjail before the period fails; after it succeeds and the validator
	// returns to the set two heights later.
	evs = f.run(f.tx(bad, TxUnjail, 1, Unjail{}))
	if len(eventsOf(evs, EventTxFailed)) != 1 {
		t.Fatalf("early unjail: %+v", evs)
	}
	for f.st.Height()+1 < b.JailedUntil {
		f.run()
	}
	f.run(f.tx(bad, TxUnjail, 1, Unjail{}))
	h = f.st.Height()
	if f.st.Bond(bad).Jailed || inSet(t, f.st, h+1, bad) || !inSet(t, f.st, h+2, bad) {
		t.Errorf("after unjail at %d: bond %+v, in h+1 %v, in h+2 %v", h, f.st.Bond(bad), inSet(t, f.st, h+1, bad), inSet(t, f.st, h+2, bad))
	}
}

func TestEvidenceRejected(t *testing.T) {
	f := newFixture(t, 6, 4)
	for range 3 {
		f.run()
	}
	val, plain := f.keys.IDs[1], f.keys.IDs[4]
	mk := func(id string, h uint64) Evidence {
		ev, err := f.keys.Equivocate(testChain, id, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	sealVote := func(id string, v Vote, chain string, kind protocol.Kind) []byte {
		raw, _, err := protocol.Seal(f.keys.Key(id), chain, kind, time.UnixMilli(0), v)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	cases := []struct {
		name string
		ev   func() Evidence
		want error
	}{
		{"not a validator", func() Evidence { return mk(plain, 2) }, ErrBadEvidence},
		{"future height", func() Evidence { return mk(val, f.st.Height()+1) }, ErrBadEvidence},
		{"height zero", func() Evidence { return mk(val, 0) }, ErrBadEvidence},
		{"same message twice", func() Evidence { e := mk(val, 2); e.B = e.A; return e }, ErrBadEvidence},
		{"same block hash", func() Evidence {
			// Two validly signed envelopes that differ only in timestamp.
			e := mk(val, 2)
			v := Vote{Type: 1, Height: 2, BlockHash: []byte{1}}
			e.A, _, _ = protocol.Seal(f.keys.Key(val), testChain, protocol.KindVote, time.UnixMilli(1), v)
			e.B, _, _ = protocol.Seal(f.keys.Key(val), testChain, protocol.KindVote, time.UnixMilli(2), v)
			return e
		}, ErrBadEvidence},
		{"bad signature", func() Evidence { e := mk(val, 2); e.A = slices.Clone(e.A); e.A[len(e.A)-1] ^= 1; return e }, ErrBadEvidence},
		{"signed by someone else", func() Evidence {
			e := mk(val, 2)
			e.B = sealVote(f.keys.IDs[0], Vote{Type: 1, Height: 2, BlockHash: []byte{9}}, testChain, protocol.KindVote)
			return e
		}, ErrBadEvidence},
		{"other round", func() Evidence { e := mk(val, 2); e.Round = 1; return e }, ErrBadEvidence},
		{"other type", func() Evidence { e := mk(val, 2); e.Type = 2; return e }, ErrBadEvidence},
		{"other chain", func() Evidence {
			e := mk(val, 2)
			e.B = sealVote(val, Vote{Type: 1, Height: 2, BlockHash: []byte{9}}, "othernet", protocol.KindVote)
			return e
		}, ErrBadEvidence},
		{"not votes", func() Evidence {
			e := mk(val, 2)
			e.B = sealVote(val, Vote{Type: 1, Height: 2, BlockHash: []byte{9}}, testChain, protocol.KindBid)
			return e
		}, ErrBadEvidence},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev()
			b, _, _, _, err := f.l.Propose(f.st, Header{ChainID: testChain, Proposer: f.proposer()}, nil, []Evidence{ev})
			if err != nil || len(b.Evidence) != 0 {
				t.Fatalf("Propose kept invalid evidence (%v)", err)
			}
			b.Evidence = []Evidence{ev}
			b.Header.EvidenceRoot = EvidenceRoot(b.Evidence)
			assertRejected(t, f, b, tc.want)
		})
	}

	t.Run("expired", func(t *testing.T) {
		old := mk(val, 1)
		for f.st.Height()+1-1 <= f.st.Params().EvidenceMaxAge {
			f.run()
		}
		b := f.block(nil, nil)
		b.Evidence = []Evidence{old}
		b.Header.EvidenceRoot = EvidenceRoot(b.Evidence)
		assertRejected(t, f, b, ErrExpiredEvidence)
		// One block younger is still accepted (in a fresh chain of the same
		// length, since Propose re-executes).
		ok := mk(val, f.st.Height()+1-f.st.Params().EvidenceMaxAge)
		f.apply(f.block(nil, []Evidence{ok}))
	})
}

// TestEvidenceSlashesUnbonding: a validator that equivocates and unstakes
// loses the slash fraction of the unbonding amount too.
func TestEvidenceSlashesUnbonding(t *testing.T) {
	f := newFixture(t, 6, 4)
	bad := f.keys.IDs[3]
	f.run()
	offence := f.st.Height()
	stake := f.st.Bond(bad).Validator
	f.run(f.tx(bad, TxUnstake, 1, Unstake{Role: RoleValidator, Amount: stake}))
	ev, _ := f.keys.Equivocate(testChain, bad, offence, 0)
	evs := f.apply(f.block(nil, []Evidence{ev}))
	cut := f.st.Params().SlashFraction.Of(stake)
	u := f.st.Unbonding()
	if len(u) != 1 || u[0].Amount != stake-cut {
		t.Fatalf("unbonding = %+v; want %d left", u, stake-cut)
	}
	if s := eventsOf(evs, EventSlash); len(s) != 1 || s[0].Amount != cut {
		t.Fatalf("slash events %+v; want %d", s, cut)
	}
	// It is paid out (reduced) after the unbonding period.
	before := balance(f.st, bad)
	var got uint64
	for f.st.Height() < u[0].Release {
		evs = f.run()
		got += unbondedTo(evs, bad)
	}
	if got != stake-cut || balance(f.st, bad) < before+got {
		t.Fatalf("released %d; want %d", got, stake-cut)
	}
}

func TestValidatorSetChangesAtHeightPlusTwo(t *testing.T) {
	f := newFixture(t, 6, 4)
	newVal, oldVal := f.keys.IDs[4], f.keys.IDs[0]
	f.run()
	f.run(
		f.tx(newVal, TxStake, 1, Stake{Role: RoleValidator, Amount: 5000}),
		f.tx(oldVal, TxUnstake, 1, Unstake{Role: RoleValidator, Amount: f.st.Bond(oldVal).Validator}),
	)
	h := f.st.Height()
	if inSet(t, f.st, h+1, newVal) || !inSet(t, f.st, h+1, oldVal) {
		t.Errorf("set of h+1 changed already")
	}
	if !inSet(t, f.st, h+2, newVal) || inSet(t, f.st, h+2, oldVal) {
		t.Errorf("set of h+2 did not change")
	}
	vals, _ := ValidatorSet(f.st, h+2)
	for _, v := range vals {
		if v.ID == newVal && (v.Power != 5000 || v.Stake != 5000 || len(v.PubKey) != 32) {
			t.Errorf("new validator = %+v; want power 5000 and a 32-byte key", v)
		}
	}
	// Old sets stay available for evidence; far heights are refused.
	if !inSet(t, f.st, 1, oldVal) {
		t.Error("height 1 set lost")
	}
	for _, bad := range []uint64{0, h + 3} {
		if _, err := ValidatorSet(f.st, bad); !errors.Is(err, ErrNoValidatorSet) {
			t.Errorf("ValidatorSet(%d) = %v; want ErrNoValidatorSet", bad, err)
		}
	}
	// A block at h+1 must still accept the old validator as proposer, and
	// one at h+2 must refuse it.
	hdr := Header{ChainID: testChain, Proposer: oldVal}
	if _, _, _, _, err := f.l.Propose(f.st, hdr, nil, nil); err != nil {
		t.Fatalf("old validator proposing at h+1: %v", err)
	}
	f.run()
	if _, _, _, _, err := f.l.Propose(f.st, hdr, nil, nil); !errors.Is(err, ErrUnknownProposer) {
		t.Fatalf("old validator proposing at h+2: %v; want ErrUnknownProposer", err)
	}
}

func TestEmptySetKeepsPrevious(t *testing.T) {
	f := newFixture(t, 2, 1)
	v := f.keys.IDs[0]
	f.run(f.tx(v, TxUnstake, 1, Unstake{Role: RoleValidator, Amount: f.st.Bond(v).Validator}))
	if !inSet(t, f.st, f.st.Height()+2, v) {
		t.Fatal("last validator left and the chain would halt")
	}
	f.run()
	f.run()
}

// TestKeyringEd25519 checks that the simulator's view of a key matches the
// validator set's public key, so votes it signs verify against the set.
func TestKeyringEd25519(t *testing.T) {
	f := newFixture(t, 4, 4)
	vals, _ := ValidatorSet(f.st, 1)
	for _, v := range vals {
		priv := f.keys.Ed25519(v.ID)
		msg := []byte("vote")
		if priv == nil || !ed25519.Verify(v.PubKey, msg, ed25519.Sign(priv, msg)) {
			t.Fatalf("key of %s does not match its validator public key", v.ID)
		}
	}
	if f.keys.Ed25519("nobody") != nil {
		t.Fatal("key for unknown ID")
	}
}

// TestEvidenceUnbondingBoundary: stake unstaked in block s still backs the
// sets of s and s+1. An offence at height o slashes unbonding entries from
// blocks o-1 and later, not o-2.
func TestEvidenceUnbondingBoundary(t *testing.T) {
	f := newFixture(t, 6, 4)
	v := f.keys.IDs[2]
	for range 3 {
		f.run()
	}
	f.run(f.tx(v, TxUnstake, 1, Unstake{Role: RoleValidator, Amount: 1000})) // block 4
	f.run(f.tx(v, TxUnstake, 1, Unstake{Role: RoleValidator, Amount: 2000})) // block 5
	f.run()                                                                  // block 6
	ev, _ := f.keys.Equivocate(testChain, v, 6, 0)
	f.apply(f.block(nil, []Evidence{ev}))
	cut := f.st.Params().SlashFraction.Of(2000)
	got := f.st.Unbonding()
	if len(got) != 2 || got[0].Since != 4 || got[0].Amount != 1000 || got[1].Since != 5 || got[1].Amount != 2000-cut {
		t.Fatalf("unbonding after offence at 6 = %+v; want block 4 untouched, block 5 cut by %d", got, cut)
	}
}
