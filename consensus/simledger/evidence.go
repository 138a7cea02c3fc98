package simledger

import (
	"fmt"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// ToLedger converts a bft equivocation into the ledger's Evidence: A and B
// are the protocol encodings of the two votes (Type is the vote type) or
// of the two proposals (Type 0), in the canonical order bft put them in.
func ToLedger(ev bft.Evidence) (ledger.Evidence, error) {
	out := ledger.Evidence{Validator: ev.Offender(), Height: ev.Height()}
	var a, b any
	switch {
	case ev.VoteA != nil && ev.VoteB != nil:
		out.Round, out.Type = ev.VoteA.Round, uint8(ev.VoteA.Type)
		a, b = ev.VoteA, ev.VoteB
	case ev.ProposalA != nil && ev.ProposalB != nil:
		out.Round = ev.ProposalA.Round
		a, b = ev.ProposalA, ev.ProposalB
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
	if ev.Type == 0 {
		var a, b bft.Proposal
		if err := protocol.Unmarshal(ev.A, &a); err != nil {
			return out, fmt.Errorf("%w: proposal A: %w", ledger.ErrBadEvidence, err)
		}
		if err := protocol.Unmarshal(ev.B, &b); err != nil {
			return out, fmt.Errorf("%w: proposal B: %w", ledger.ErrBadEvidence, err)
		}
		out.ProposalA, out.ProposalB = &a, &b
	} else {
		var a, b bft.Vote
		if err := protocol.Unmarshal(ev.A, &a); err != nil {
			return out, fmt.Errorf("%w: vote A: %w", ledger.ErrBadEvidence, err)
		}
		if err := protocol.Unmarshal(ev.B, &b); err != nil {
			return out, fmt.Errorf("%w: vote B: %w", ledger.ErrBadEvidence, err)
		}
		if uint8(a.Type) != ev.Type {
			return out, fmt.Errorf("%w: vote type %d, evidence says %d", ledger.ErrBadEvidence, a.Type, ev.Type)
		}
		out.VoteA, out.VoteB = &a, &b
	}
	var round int32
	if out.VoteA != nil {
		round = out.VoteA.Round
	} else {
		round = out.ProposalA.Round
	}
	if out.Offender() != ev.Validator || out.Height() != ev.Height || round != ev.Round {
		return out, fmt.Errorf("%w: messages are by %s at %d/%d, evidence says %s at %d/%d",
			ledger.ErrBadEvidence, out.Offender(), out.Height(), round, ev.Validator, ev.Height, ev.Round)
	}
	return out, nil
}

// EvidenceVerifier is the ledger.EvidenceVerifier for bft equivocations
// (see ToLedger): the two messages must be a valid bft.Evidence against the
// offence height's validator set. The consensus Service can use it as is.
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
