package consensus

import (
	"fmt"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// toLedgerEvidence packs the machine's evidence for the ledger: A and B are
// the CBOR of the two bft.Messages, Type the bft vote type (0 for
// proposals).
func toLedgerEvidence(ev bft.Evidence) (ledger.Evidence, error) {
	var a, b bft.Message
	out := ledger.Evidence{Validator: ev.Offender(), Height: ev.Height()}
	switch {
	case ev.VoteA != nil && ev.VoteB != nil:
		a, b = bft.Message{Vote: ev.VoteA}, bft.Message{Vote: ev.VoteB}
		out.Round, out.Type = ev.VoteA.Round, uint8(ev.VoteA.Type)
	case ev.ProposalA != nil && ev.ProposalB != nil:
		a, b = bft.Message{Proposal: ev.ProposalA}, bft.Message{Proposal: ev.ProposalB}
		out.Round = ev.ProposalA.Round
	default:
		return ledger.Evidence{}, fmt.Errorf("%w: empty evidence", bft.ErrInvalidEvidence)
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

// EvidenceVerifier is the ledger.EvidenceVerifier for evidence built from
// bft messages (see toLedgerEvidence).
type EvidenceVerifier struct{}

// VerifyEvidence implements ledger.EvidenceVerifier.
func (EvidenceVerifier) VerifyEvidence(chainID string, ev *ledger.Evidence, vals []ledger.Validator) error {
	var a, b bft.Message
	if err := protocol.Unmarshal(ev.A, &a); err != nil {
		return fmt.Errorf("%w: message A: %w", ledger.ErrBadEvidence, err)
	}
	if err := protocol.Unmarshal(ev.B, &b); err != nil {
		return fmt.Errorf("%w: message B: %w", ledger.ErrBadEvidence, err)
	}
	var be bft.Evidence
	switch {
	case a.Vote != nil && b.Vote != nil && a.Proposal == nil && b.Proposal == nil:
		if uint8(a.Vote.Type) != ev.Type {
			return fmt.Errorf("%w: type %d, votes are %s", ledger.ErrBadEvidence, ev.Type, a.Vote.Type)
		}
		be = bft.Evidence{VoteA: a.Vote, VoteB: b.Vote}
	case a.Proposal != nil && b.Proposal != nil && a.Vote == nil && b.Vote == nil:
		if ev.Type != 0 {
			return fmt.Errorf("%w: type %d for proposals", ledger.ErrBadEvidence, ev.Type)
		}
		be = bft.Evidence{ProposalA: a.Proposal, ProposalB: b.Proposal}
	default:
		return fmt.Errorf("%w: need two votes or two proposals", ledger.ErrBadEvidence)
	}
	if be.Offender() != ev.Validator || be.Height() != ev.Height || a.Round() != ev.Round {
		return fmt.Errorf("%w: messages do not match the claim", ledger.ErrBadEvidence)
	}
	vs, err := toBFTSet(vals)
	if err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrBadEvidence, err)
	}
	if err := be.Verify(chainID, vs); err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrBadEvidence, err)
	}
	return nil
}

func toBFTSet(vals []ledger.Validator) (*bft.ValidatorSet, error) {
	bv := make([]bft.Validator, len(vals))
	for i, v := range vals {
		bv[i] = bft.Validator{ID: v.ID, PubKey: v.PubKey, Power: v.Power}
	}
	return bft.NewValidatorSet(bv)
}
