package bft

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sentinel errors. Step wraps them with detail; callers use errors.Is.
var (
	ErrInvalidMessage    = errors.New("bft: invalid message")
	ErrPastHeight        = errors.New("bft: message for a past height")
	ErrFutureHeight      = errors.New("bft: message for a future height")
	ErrUnknownValidator  = errors.New("bft: author is not a validator at this height")
	ErrWrongProposer     = errors.New("bft: proposal not from the round's proposer")
	ErrNotStarted        = errors.New("bft: no height started")
	ErrBadSignature      = errors.New("bft: bad signature")
	ErrInvalidValidators = errors.New("bft: invalid validator set")
	ErrInsufficientPower = errors.New("bft: certificate lacks more than 2/3 of voting power")
	ErrInvalidEvidence   = errors.New("bft: invalid evidence")
	ErrInvalidConfig     = errors.New("bft: invalid config")
)

// HashSize is the length of a value (block) hash.
const HashSize = 32

// Hash identifies a value (a block). The zero Hash stands for nil: a vote for
// the zero hash is a vote for "no value".
type Hash [HashSize]byte

// IsZero reports whether h is the nil hash.
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns the first 8 hex characters, or "nil".
func (h Hash) String() string {
	if h.IsZero() {
		return "nil"
	}
	return hex.EncodeToString(h[:4])
}

// Value is what consensus agrees on. The machine treats it as opaque: Hash
// must identify Data (the application's ValidateValue checks that), and
// votes and certificates only carry the Hash.
type Value struct {
	Hash Hash   `cbor:"1,keyasint"`
	Data []byte `cbor:"2,keyasint"`
}

// VoteType is prevote or precommit.
type VoteType uint8

// Vote types.
const (
	Prevote   VoteType = 1
	Precommit VoteType = 2
)

func (t VoteType) String() string {
	switch t {
	case Prevote:
		return "prevote"
	case Precommit:
		return "precommit"
	}
	return fmt.Sprintf("votetype(%d)", uint8(t))
}

// Step is a phase of a round.
type Step uint8

// Round steps, in order.
const (
	StepPropose   Step = 1
	StepPrevote   Step = 2
	StepPrecommit Step = 3
)

func (s Step) String() string {
	switch s {
	case StepPropose:
		return "propose"
	case StepPrevote:
		return "prevote"
	case StepPrecommit:
		return "precommit"
	}
	return fmt.Sprintf("step(%d)", uint8(s))
}

// Vote is a signed prevote or precommit. Wire type: encode with
// protocol.Marshal.
//
// Signing bytes (VoteSignBytes), all integers big-endian:
//
//	"gpunode/bft/vote/1" 0x00
//	uint16 len(chainID) || chainID
//	uint8  Type
//	uint64 Height
//	uint32 Round
//	[32]   BlockHash (all zero for a nil vote)
//	uint16 len(Validator) || Validator
type Vote struct {
	Type      VoteType `cbor:"1,keyasint"`
	Height    uint64   `cbor:"2,keyasint"`
	Round     int32    `cbor:"3,keyasint"`
	BlockHash Hash     `cbor:"4,keyasint"`
	Validator string   `cbor:"5,keyasint"` // validator ID (a libp2p peer ID string)
	Signature []byte   `cbor:"6,keyasint"`
}

// Proposal is a signed block proposal for (Height, Round). POLRound is the
// round of the proof of lock (the round in which the value got more than 2/3
// prevotes) when re-proposing a value, or -1. Wire type: encode with
// protocol.Marshal.
//
// Signing bytes (ProposalSignBytes), all integers big-endian; the block data
// is not signed, only its hash (the application checks that Value.Hash
// identifies Value.Data):
//
//	"gpunode/bft/proposal/1" 0x00
//	uint16 len(chainID) || chainID
//	uint64 Height
//	uint32 Round
//	uint32 POLRound (two's complement, so -1 is 0xffffffff)
//	[32]   Value.Hash
//	uint16 len(Proposer) || Proposer
type Proposal struct {
	Height    uint64 `cbor:"1,keyasint"`
	Round     int32  `cbor:"2,keyasint"`
	POLRound  int32  `cbor:"3,keyasint"`
	Value     Value  `cbor:"4,keyasint"`
	Proposer  string `cbor:"5,keyasint"`
	Signature []byte `cbor:"6,keyasint"`
}

// Message is the consensus wire message: exactly one of Proposal or Vote is
// set.
type Message struct {
	Proposal *Proposal `cbor:"1,keyasint,omitempty"`
	Vote     *Vote     `cbor:"2,keyasint,omitempty"`
}

// Height returns the message's height.
func (m Message) Height() uint64 {
	if m.Proposal != nil {
		return m.Proposal.Height
	}
	if m.Vote != nil {
		return m.Vote.Height
	}
	return 0
}

// Round returns the message's round.
func (m Message) Round() int32 {
	if m.Proposal != nil {
		return m.Proposal.Round
	}
	if m.Vote != nil {
		return m.Vote.Round
	}
	return 0
}

// Author returns the signer's validator ID.
func (m Message) Author() string {
	if m.Proposal != nil {
		return m.Proposal.Proposer
	}
	if m.Vote != nil {
		return m.Vote.Validator
	}
	return ""
}

func (m Message) String() string {
	switch {
	case m.Proposal != nil:
		p := m.Proposal
		return fmt.Sprintf("proposal h=%d r=%d pol=%d v=%s from=%s", p.Height, p.Round, p.POLRound, p.Value.Hash, p.Proposer)
	case m.Vote != nil:
		v := m.Vote
		return fmt.Sprintf("%s h=%d r=%d v=%s from=%s", v.Type, v.Height, v.Round, v.BlockHash, v.Validator)
	}
	return "empty message"
}

// maxIDLen bounds validator IDs so signing bytes stay unambiguous.
const maxIDLen = 1 << 10

// check validates the structure of a message (not its signature).
func (m Message) check() error {
	if (m.Proposal == nil) == (m.Vote == nil) {
		return fmt.Errorf("%w: exactly one of proposal or vote must be set", ErrInvalidMessage)
	}
	if p := m.Proposal; p != nil {
		switch {
		case p.Round < 0:
			return fmt.Errorf("%w: negative round", ErrInvalidMessage)
		case p.POLRound < -1 || p.POLRound >= p.Round:
			return fmt.Errorf("%w: POL round %d not in [-1, %d)", ErrInvalidMessage, p.POLRound, p.Round)
		case p.Value.Hash.IsZero():
			return fmt.Errorf("%w: proposal of the nil hash", ErrInvalidMessage)
		case p.Proposer == "" || len(p.Proposer) > maxIDLen:
			return fmt.Errorf("%w: bad proposer ID", ErrInvalidMessage)
		}
		return nil
	}
	v := m.Vote
	switch {
	case v.Type != Prevote && v.Type != Precommit:
		return fmt.Errorf("%w: vote type %d", ErrInvalidMessage, v.Type)
	case v.Round < 0:
		return fmt.Errorf("%w: negative round", ErrInvalidMessage)
	case v.Validator == "" || len(v.Validator) > maxIDLen:
		return fmt.Errorf("%w: bad validator ID", ErrInvalidMessage)
	}
	return nil
}

func putString(b *bytes.Buffer, s string) {
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(s)))
	b.Write(l[:])
	b.WriteString(s)
}

func putUint(b *bytes.Buffer, v uint64, size int) {
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], v)
	b.Write(x[8-size:])
}

// VoteSignBytes returns the bytes a validator signs for v (see Vote). The
// Signature field is not covered.
func VoteSignBytes(chainID string, v *Vote) []byte {
	var b bytes.Buffer
	b.Grow(64 + len(chainID) + len(v.Validator))
	b.WriteString("gpunode/bft/vote/1\x00")
	putString(&b, chainID)
	b.WriteByte(byte(v.Type))
	putUint(&b, v.Height, 8)
	putUint(&b, uint64(uint32(v.Round)), 4)
	b.Write(v.BlockHash[:])
	putString(&b, v.Validator)
	return b.Bytes()
}

// ProposalSignBytes returns the bytes a proposer signs for p (see Proposal).
// The Signature field and Value.Data are not covered.
func ProposalSignBytes(chainID string, p *Proposal) []byte {
	var b bytes.Buffer
	b.Grow(80 + len(chainID) + len(p.Proposer))
	b.WriteString("gpunode/bft/proposal/1\x00")
	putString(&b, chainID)
	putUint(&b, p.Height, 8)
	putUint(&b, uint64(uint32(p.Round)), 4)
	putUint(&b, uint64(uint32(p.POLRound)), 4)
	b.Write(p.Value.Hash[:])
	putString(&b, p.Proposer)
	return b.Bytes()
}

// VerifyMessage checks that m is well formed, that its author is in vals and
// that the signature is the author's Ed25519 signature over the signing
// bytes. The Service calls it before Step.
func VerifyMessage(chainID string, vals *ValidatorSet, m Message) error {
	return VerifyMessageWith(chainID, vals, m, ed25519.Verify)
}

// SigVerifier checks an Ed25519 signature. ed25519.Verify is the default;
// a caller that sees the same signatures many times (votes, then the
// certificates made of them) may pass a caching one.
type SigVerifier func(pub ed25519.PublicKey, msg, sig []byte) bool

// VerifyMessageWith is VerifyMessage with a given signature verifier.
func VerifyMessageWith(chainID string, vals *ValidatorSet, m Message, verify SigVerifier) error {
	if err := m.check(); err != nil {
		return err
	}
	val, ok := vals.Get(m.Author())
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownValidator, m.Author())
	}
	var msg, sig []byte
	if m.Proposal != nil {
		msg, sig = ProposalSignBytes(chainID, m.Proposal), m.Proposal.Signature
	} else {
		msg, sig = VoteSignBytes(chainID, m.Vote), m.Vote.Signature
	}
	if !verify(val.PubKey, msg, sig) {
		return fmt.Errorf("%w: %s", ErrBadSignature, m)
	}
	return nil
}

// Signer signs this node's own proposals and votes. Ed25519 is expected
// (followers verify with ed25519.Verify against Validator.PubKey); a libp2p
// crypto.PrivKey's Sign method satisfies it.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
}

// Application is what the machine asks of the block layer. Both methods are
// called synchronously from Step, Timeout and StartHeight, so they must be
// deterministic and must not call back into the Machine.
type Application interface {
	// ProposeValue returns the value to propose at (height, round) when this
	// node is the proposer and holds no valid value. An error means "nothing
	// to propose": the round times out.
	ProposeValue(height uint64, round int32) (Value, error)
	// ValidateValue reports whether v may be decided at height. It must check
	// that v.Hash identifies v.Data. It is called at most once per proposal.
	ValidateValue(height uint64, v Value) error
}
