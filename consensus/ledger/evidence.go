package ledger

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/gpunode/gpunode/protocol"
)

// Evidence claims that Validator signed two conflicting consensus messages
// for the same (Height, Round, Type). A and B are the two signed messages in
// the encoding the EvidenceVerifier understands (consensus/bft fills them
// with its own votes or proposals). The ledger checks age, membership and
// uniqueness itself and delegates the cryptographic proof to the verifier.
type Evidence struct {
	Validator string `cbor:"1,keyasint" json:"validator"`
	Height    uint64 `cbor:"2,keyasint" json:"height"`
	Round     int32  `cbor:"3,keyasint" json:"round"`
	Type      uint8  `cbor:"4,keyasint" json:"type"` // vote type as the bft package numbers it; 0 for proposals
	A         []byte `cbor:"5,keyasint" json:"a"`
	B         []byte `cbor:"6,keyasint" json:"b"`
}

// Hash identifies the evidence item.
func (e *Evidence) Hash() [32]byte {
	s := sha256.New()
	s.Write([]byte(evidenceDomain))
	s.Write(protocol.MustMarshal(e))
	var out [32]byte
	s.Sum(out[:0])
	return out
}

// EvidenceVerifier proves an Evidence item: A and B are two different
// messages, both validly signed by ev.Validator (whose key is in vals, the
// validator set of ev.Height), both for ev.Height, ev.Round and ev.Type.
// It must be deterministic. The consensus package supplies one that decodes
// its own vote format; EnvelopeEvidence is the built-in format.
type EvidenceVerifier interface {
	VerifyEvidence(chainID string, ev *Evidence, vals []Validator) error
}

// Vote is the consensus-message shape EnvelopeEvidence understands: the
// payload of a protocol.KindVote envelope.
type Vote struct {
	Type      uint8  `cbor:"1,keyasint"`
	Height    uint64 `cbor:"2,keyasint"`
	Round     int32  `cbor:"3,keyasint"`
	BlockHash []byte `cbor:"4,keyasint"`
}

// EnvelopeEvidence verifies evidence whose A and B are protocol envelopes of
// KindVote carrying a Vote, signed by the offender.
type EnvelopeEvidence struct{}

// VerifyEvidence implements EvidenceVerifier.
func (EnvelopeEvidence) VerifyEvidence(chainID string, ev *Evidence, vals []Validator) error {
	if bytes.Equal(ev.A, ev.B) {
		return fmt.Errorf("%w: identical messages", ErrBadEvidence)
	}
	var votes [2]Vote
	for i, raw := range [][]byte{ev.A, ev.B} {
		env, err := protocol.Open(raw, chainID)
		if err != nil {
			return fmt.Errorf("%w: message %d: %w", ErrBadEvidence, i, err)
		}
		if env.Kind != protocol.KindVote {
			return fmt.Errorf("%w: message %d is a %q", ErrBadEvidence, i, env.Kind)
		}
		author, err := env.AuthorID()
		if err != nil || author.String() != ev.Validator {
			return fmt.Errorf("%w: message %d not signed by %s", ErrBadEvidence, i, ev.Validator)
		}
		if err := env.Decode(&votes[i]); err != nil {
			return fmt.Errorf("%w: message %d: %w", ErrBadEvidence, i, err)
		}
		v := votes[i]
		if v.Height != ev.Height || v.Round != ev.Round || v.Type != ev.Type {
			return fmt.Errorf("%w: message %d is for %d/%d/%d, evidence says %d/%d/%d",
				ErrBadEvidence, i, v.Height, v.Round, v.Type, ev.Height, ev.Round, ev.Type)
		}
	}
	if bytes.Equal(votes[0].BlockHash, votes[1].BlockHash) {
		return fmt.Errorf("%w: both messages vote for the same block", ErrBadEvidence)
	}
	return nil
}
