package bft

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

// CommitSig is one validator's precommit signature inside a Certificate.
type CommitSig struct {
	Validator string `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

// Certificate proves that a block was decided at Height: precommits for
// BlockHash in Round from more than 2/3 of the height's voting power. Each
// signature is over VoteSignBytes of the Precommit{Height, Round, BlockHash,
// Validator}. Signatures are in strictly ascending validator ID order.
type Certificate struct {
	Height     uint64      `cbor:"1,keyasint"`
	Round      int32       `cbor:"2,keyasint"`
	BlockHash  Hash        `cbor:"3,keyasint"`
	Signatures []CommitSig `cbor:"4,keyasint"`
}

// Verify checks c against vals, the validator set of c.Height: a non-nil
// block hash, no unknown or repeated validator, every signature valid, and
// more than 2/3 of the total power. Followers call it for every block.
func (c *Certificate) Verify(chainID string, vals *ValidatorSet) error {
	return c.VerifyWith(chainID, vals, ed25519.Verify)
}

// VerifyWith is Verify with a given signature verifier.
func (c *Certificate) VerifyWith(chainID string, vals *ValidatorSet, verify SigVerifier) error {
	if c.BlockHash.IsZero() {
		return fmt.Errorf("%w: certificate for the nil hash", ErrInvalidMessage)
	}
	if c.Round < 0 {
		return fmt.Errorf("%w: certificate with negative round", ErrInvalidMessage)
	}
	if len(c.Signatures) > vals.Len() {
		return fmt.Errorf("%w: %d signatures for %d validators", ErrInvalidMessage, len(c.Signatures), vals.Len())
	}
	var power int64
	for i, s := range c.Signatures {
		val, ok := vals.Get(s.Validator)
		if !ok {
			return fmt.Errorf("%w: %q in certificate", ErrUnknownValidator, s.Validator)
		}
		// Strictly ascending IDs: no validator twice, one order per signer set.
		if i > 0 && c.Signatures[i-1].Validator >= s.Validator {
			return fmt.Errorf("%w: signatures not in strictly ascending validator order at %q", ErrInvalidMessage, s.Validator)
		}
		v := c.Vote(s)
		if !verify(val.PubKey, VoteSignBytes(chainID, &v), s.Signature) {
			return fmt.Errorf("%w: precommit of %q at height %d", ErrBadSignature, s.Validator, c.Height)
		}
		power += val.Power
	}
	if !vals.HasQuorum(power) {
		return fmt.Errorf("%w: %d of %d", ErrInsufficientPower, power, vals.TotalPower())
	}
	return nil
}

// Vote rebuilds the precommit that s signs.
func (c *Certificate) Vote(s CommitSig) Vote {
	return Vote{Type: Precommit, Height: c.Height, Round: c.Round, BlockHash: c.BlockHash, Validator: s.Validator, Signature: s.Signature}
}

// Evidence proves that one validator signed two different messages for the
// same (height, round, type): either VoteA and VoteB, or ProposalA and
// ProposalB. The pair is in canonical order (A's signing bytes sort before
// B's) so every node that sees the same equivocation builds the same
// Evidence, and the ledger can slash it exactly once.
type Evidence struct {
	VoteA     *Vote     `cbor:"1,keyasint,omitempty"`
	VoteB     *Vote     `cbor:"2,keyasint,omitempty"`
	ProposalA *Proposal `cbor:"3,keyasint,omitempty"`
	ProposalB *Proposal `cbor:"4,keyasint,omitempty"`
}

// Offender returns the equivocating validator's ID.
func (e *Evidence) Offender() string {
	if e.VoteA != nil {
		return e.VoteA.Validator
	}
	if e.ProposalA != nil {
		return e.ProposalA.Proposer
	}
	return ""
}

// Height returns the height of the equivocation.
func (e *Evidence) Height() uint64 {
	if e.VoteA != nil {
		return e.VoteA.Height
	}
	if e.ProposalA != nil {
		return e.ProposalA.Height
	}
	return 0
}

func (e *Evidence) String() string {
	if e.VoteA != nil {
		return fmt.Sprintf("evidence: %s h=%d r=%d from=%s: %s vs %s", e.VoteA.Type, e.VoteA.Height, e.VoteA.Round, e.VoteA.Validator, e.VoteA.BlockHash, e.VoteB.BlockHash)
	}
	if e.ProposalA != nil {
		return fmt.Sprintf("evidence: proposal h=%d r=%d from=%s: %s/%d vs %s/%d", e.ProposalA.Height, e.ProposalA.Round, e.ProposalA.Proposer,
			e.ProposalA.Value.Hash, e.ProposalA.POLRound, e.ProposalB.Value.Hash, e.ProposalB.POLRound)
	}
	return "evidence: empty"
}

// newVoteEvidence orders a and b canonically. It returns nil when they sign
// the same bytes (a duplicate, not an equivocation).
func newVoteEvidence(chainID string, a, b *Vote) *Evidence {
	c := bytes.Compare(VoteSignBytes(chainID, a), VoteSignBytes(chainID, b))
	switch {
	case c == 0:
		return nil
	case c > 0:
		a, b = b, a
	}
	return &Evidence{VoteA: cloneVote(a), VoteB: cloneVote(b)}
}

func newProposalEvidence(chainID string, a, b *Proposal) *Evidence {
	c := bytes.Compare(ProposalSignBytes(chainID, a), ProposalSignBytes(chainID, b))
	switch {
	case c == 0:
		return nil
	case c > 0:
		a, b = b, a
	}
	// The data is not signed and not needed to prove the equivocation.
	pa, pb := *a, *b
	pa.Value.Data, pb.Value.Data = nil, nil
	pa.Signature, pb.Signature = bytes.Clone(a.Signature), bytes.Clone(b.Signature)
	return &Evidence{ProposalA: &pa, ProposalB: &pb}
}

func cloneVote(v *Vote) *Vote {
	c := *v
	c.Signature = bytes.Clone(v.Signature)
	return &c
}

// Verify checks e against vals, the validator set of e.Height(): one kind of
// pair, same author, height, round (and type), different signed content in
// canonical order, and both signatures valid. Whether the evidence has
// expired or was already punished is the ledger's call.
func (e *Evidence) Verify(chainID string, vals *ValidatorSet) error {
	return e.VerifyWith(chainID, vals, ed25519.Verify)
}

// VerifyWith is Verify with a given signature verifier.
func (e *Evidence) VerifyWith(chainID string, vals *ValidatorSet, verify SigVerifier) error {
	var a, b Message
	switch {
	case e.VoteA != nil && e.VoteB != nil && e.ProposalA == nil && e.ProposalB == nil:
		x, y := e.VoteA, e.VoteB
		if x.Type != y.Type || x.Height != y.Height || x.Round != y.Round || x.Validator != y.Validator {
			return fmt.Errorf("%w: votes for different slots", ErrInvalidEvidence)
		}
		if bytes.Compare(VoteSignBytes(chainID, x), VoteSignBytes(chainID, y)) >= 0 {
			return fmt.Errorf("%w: votes not different or not in canonical order", ErrInvalidEvidence)
		}
		a, b = Message{Vote: x}, Message{Vote: y}
	case e.ProposalA != nil && e.ProposalB != nil && e.VoteA == nil && e.VoteB == nil:
		x, y := e.ProposalA, e.ProposalB
		if x.Height != y.Height || x.Round != y.Round || x.Proposer != y.Proposer {
			return fmt.Errorf("%w: proposals for different slots", ErrInvalidEvidence)
		}
		if bytes.Compare(ProposalSignBytes(chainID, x), ProposalSignBytes(chainID, y)) >= 0 {
			return fmt.Errorf("%w: proposals not different or not in canonical order", ErrInvalidEvidence)
		}
		a, b = Message{Proposal: x}, Message{Proposal: y}
	default:
		return fmt.Errorf("%w: need exactly one pair of votes or proposals", ErrInvalidEvidence)
	}
	for _, m := range []Message{a, b} {
		if err := VerifyMessageWith(chainID, vals, m, verify); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidEvidence, err)
		}
	}
	return nil
}
