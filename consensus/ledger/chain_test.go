package ledger

import (
	"errors"
	"testing"
)

// TestChain runs a proposer, a validator and a follower (which only sees
// commits) through heights of random workloads, as the consensus glue
// would, and checks they agree on every state.
func TestChain(t *testing.T) {
	keys := NewKeyring(newRand(3), 8)
	st, err := InitialState(keys.TestGenesis(testChain, 4, 100_000, 10_000))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := New()
	strict, _ := New(WithVerifier(SigVerifier{}))
	proposer, validator, follower := NewChain(l, st), NewChain(strict, st), NewChain(strict, st)
	rng := newRand(4)
	for h := uint64(1); h <= 20; h++ {
		vals, err := proposer.ValidatorSet(h)
		if err != nil {
			t.Fatal(err)
		}
		txs := keys.RandomWorkload(rng, proposer.State(), 10)
		hash, data, skipped, err := proposer.Propose(Header{ChainID: testChain, Proposer: vals[0].ID, Time: int64(h)}, txs, keys.RandomEvidence(rng, proposer.State(), 1))
		if err != nil || len(skipped) != 0 {
			t.Fatalf("height %d: Propose: %v, skipped %d", h, err, len(skipped))
		}
		if err := validator.Validate(h, hash, data); err != nil {
			t.Fatalf("height %d: Validate: %v", h, err)
		}
		// A value whose hash does not match, or for another height, is refused.
		bad := hash
		bad[0] ^= 1
		if err := validator.Validate(h, bad, data); !errors.Is(err, ErrUnknownBlock) {
			t.Fatalf("mismatched hash: %v", err)
		}
		if err := validator.Validate(h+1, hash, data); !errors.Is(err, ErrUnknownBlock) {
			t.Fatalf("wrong height: %v", err)
		}
		var states [3]*State
		for i, c := range []*Chain{proposer, validator, follower} {
			ns, _, err := c.Commit(h, hash, data)
			if err != nil {
				t.Fatalf("height %d: chain %d: Commit: %v", h, i, err)
			}
			states[i] = ns
		}
		if states[0].Hash() != states[1].Hash() || states[1].Hash() != states[2].Hash() || states[0].Height() != h {
			t.Fatalf("height %d: chains disagree", h)
		}
		if err := CheckInvariant(states[2]); err != nil {
			t.Fatal(err)
		}
	}
	// A committed height cannot be committed again.
	if _, _, err := follower.Commit(follower.State().Height(), [32]byte{}, nil); !errors.Is(err, ErrUnknownBlock) {
		t.Fatalf("recommit: %v", err)
	}
}
