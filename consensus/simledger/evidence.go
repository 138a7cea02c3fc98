package simledger

import (
	"fmt"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// ToLedger converts a bft equivocation into the ledger's Evidence in the
// consensus Service's format (consensus.EvidenceVerifier checks it): A and
// B are the protocol encodings of the two bft.Messages, in the canonical
// order bft put them in; Type is the vote type, or 0 for proposals.
func ToLedger(ev bft.Evidence) (ledger.Evidence, error) {
	out := ledger.Evidence{Validator: ev.Offender(), Height: ev.Height()}
	var a, b bft.Message
	switch {
	case ev.VoteA != nil && ev.VoteB != nil:
		out.Round, out.Type = ev.VoteA.Round, uint8(ev.VoteA.Type)
		a, b = bft.Message{Vote: ev.VoteA}, bft.Message{Vote: ev.VoteB}
	case ev.ProposalA != nil && ev.ProposalB != nil:
		out.Round = ev.ProposalA.Round
		a, b = bft.Message{Proposal: ev.ProposalA}, bft.Message{Proposal: ev.ProposalB}
	default:
		return ledger.Evidence{}, fmt.Errorf("%w: need a pair of votes or proposals", bft.ErrInvalidEvidence)
	}
	var err error
	if out.A, err = protocol.Marshal(a); err != nil {
		return ledger.Evidence{}, err
	}
	if out.B, err = protocol.Marshal(b); err != nil {
		return ledger.Evidence{}, err
	}
	return out, nil
}

// FromLedger decodes the bft equivocation inside ev (see ToLedger) and
// checks that it is about ev's validator, height, round and type. It does
// not check signatures.
func FromLedger(ev *ledger.Evidence) (bft.Evidence, error) {
	var out bft.Evidence
	var a, b bft.Message
	if err := protocol.Unmarshal(ev.A, &a); err != nil {
		return out, fmt.Errorf("%w: message A: %w", ledger.ErrBadEvidence, err)
	}
	if err := protocol.Unmarshal(ev.B, &b); err != nil {
		return out, fmt.Errorf("%w: message B: %w", ledger.ErrBadEvidence, err)
	}
	switch {
	case a.Vote != nil && b.Vote != nil && a.Proposal == nil && b.Proposal == nil:
		if uint8(a.Vote.Type) != ev.Type {
			return out, fmt.Errorf("%w: vote type %d, evidence says %d", ledger.ErrBadEvidence, a.Vote.Type, ev.Type)
		}
		out.VoteA, out.VoteB = a.Vote, b.Vote
	case a.Proposal != nil && b.Proposal != nil && a.Vote == nil && b.Vote == nil:
		if ev.Type != 0 {
			return out, fmt.Errorf("%w: type %d for proposals", ledger.ErrBadEvidence, ev.Type)
		}
		out.ProposalA, out.ProposalB = a.Proposal, b.Proposal
	default:
		return out, fmt.Errorf("%w: need two votes or two proposals", ledger.ErrBadEvidence)
	}
	if out.Offender() != ev.Validator || out.Height() != ev.Height || a.Round() != ev.Round {
		return out, fmt.Errorf("%w: messages are by %s at %d/%d, evidence says %s at %d/%d",
			ledger.ErrBadEvidence, out.Offender(), out.Height(), a.Round(), ev.Validator, ev.Height, ev.Round)
	}
	return out, nil
}

// EvidenceVerifier is the ledger.EvidenceVerifier for bft equivocations
// (see ToLedger) with a pluggable signature check: the simulator's fast
// signatures need it. With Ed25519 it accepts what consensus.EvidenceVerifier
// accepts; runs with Ed25519 signatures use that one.
type EvidenceVerifier struct {
	// Verify checks Ed25519 signatures; nil means ed25519.Verify.
	Verify bft.SigVerifier
}

// VerifyEvidence implements ledger.EvidenceVerifier.
func (v EvidenceVerifier) VerifyEvidence(chainID string, ev *ledger.Evidence, vals []ledger.Validator) error {
	bev, err := FromLedger(ev)
	if err != nil {
		return err
	}
	vs, err := ValidatorSet(vals)
	if err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrBadEvidence, err)
	}
	if v.Verify == nil {
		err = bev.Verify(chainID, vs)
	} else {
		err = bev.VerifyWith(chainID, vs, v.Verify)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrBadEvidence, err)
	}
	return nil
}

// ValidatorSet converts a ledger validator set into consensus's.
func ValidatorSet(vals []ledger.Validator) (*bft.ValidatorSet, error) {
	bv := make([]bft.Validator, len(vals))
	for i, v := range vals {
		bv[i] = bft.Validator{ID: v.ID, PubKey: v.PubKey, Power: v.Power}
	}
	return bft.NewValidatorSet(bv)
}
