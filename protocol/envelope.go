package protocol

import (
	"bytes"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Envelope is a signed message: the author's signature over the kind, chain
// ID, author, timestamp and payload, under a domain tag. Every message that
// matters travels in one.
type Envelope struct {
	Kind      Kind   `cbor:"1,keyasint"`
	ChainID   string `cbor:"2,keyasint"`
	Author    []byte `cbor:"3,keyasint"` // binary peer ID; Ed25519 IDs embed the public key
	Timestamp int64  `cbor:"4,keyasint"` // unix milliseconds, set by the author; freshness is the consumer's rule
	Payload   []byte `cbor:"5,keyasint"` // deterministic CBOR of the body
	Signature []byte `cbor:"6,keyasint,omitempty"`
}

// signingDomain prefixes every signed byte string, separating gpunode
// signatures from any other use of the same key (libp2p's own records sign
// with it too).
const signingDomain = "gpunode/envelope/v1\x00"

// SigningBytes is what the author signs: the domain tag, the kind and chain
// ID (the domain of this message), then the encoding of the envelope without
// its signature.
func (e *Envelope) SigningBytes() ([]byte, error) {
	buf := getBuffer()
	defer putBuffer(buf)
	if err := e.writeSigningBytes(buf); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// writeSigningBytes writes SigningBytes to buf.
func (e *Envelope) writeSigningBytes(buf *bytes.Buffer) error {
	buf.Grow(len(signingDomain) + len(e.Kind) + len(e.ChainID) + 2 + len(e.Payload) + len(e.Author) + 32)
	buf.WriteString(signingDomain)
	buf.WriteString(string(e.Kind))
	buf.WriteByte(0)
	buf.WriteString(e.ChainID)
	buf.WriteByte(0)
	u := *e
	u.Signature = nil
	if err := bufMode.MarshalToBuffer(&u, buf); err != nil {
		return fmt.Errorf("protocol: encode %T: %w", &u, err)
	}
	return nil
}

// AuthorID is the author's peer ID (the account address).
func (e *Envelope) AuthorID() (peer.ID, error) {
	id, err := peer.IDFromBytes(e.Author)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadAuthor, err)
	}
	return id, nil
}

// Time is the author's timestamp.
func (e *Envelope) Time() time.Time { return time.UnixMilli(e.Timestamp) }

// Decode strictly decodes the payload into body.
func (e *Envelope) Decode(body any) error {
	if err := Unmarshal(e.Payload, body); err != nil {
		return fmt.Errorf("%s payload: %w", e.Kind, err)
	}
	return nil
}

// ID is the content ID of the whole signed envelope.
func (e *Envelope) ID() (CID, error) {
	c, err := ObjectID(e)
	return CID{c}, err
}

// Seal encodes body, wraps it in an envelope of kind for chainID signed by
// key at ts, and returns the encoded envelope. key must be Ed25519.
func Seal(key crypto.PrivKey, chainID string, kind Kind, ts time.Time, body any) ([]byte, *Envelope, error) {
	if key == nil || key.Type() != pb.KeyType_Ed25519 {
		return nil, nil, fmt.Errorf("%w: signing key must be Ed25519", ErrBadAuthor)
	}
	limit, ok := MaxPayload(kind)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	payload, err := Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	if len(payload) > limit {
		return nil, nil, fmt.Errorf("%w: %s payload %d bytes > %d", ErrTooLarge, kind, len(payload), limit)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadAuthor, err)
	}
	env := &Envelope{Kind: kind, ChainID: chainID, Author: []byte(id), Timestamp: ts.UnixMilli(), Payload: payload}
	msg, err := env.SigningBytes()
	if err != nil {
		return nil, nil, err
	}
	if env.Signature, err = key.Sign(msg); err != nil {
		return nil, nil, fmt.Errorf("protocol: sign %s: %w", kind, err)
	}
	data, err := Marshal(env)
	if err != nil {
		return nil, nil, err
	}
	return data, env, nil
}

// DecodeEnvelope strictly decodes an envelope and checks its size limits and
// kind, without checking the signature or chain. Open does everything.
func DecodeEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelope {
		return nil, fmt.Errorf("%w: envelope %d bytes > %d", ErrTooLarge, len(data), MaxEnvelope)
	}
	var env Envelope
	if err := Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	limit, ok := MaxPayload(env.Kind)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, env.Kind)
	}
	if len(env.Payload) > limit {
		return nil, fmt.Errorf("%w: %s payload %d bytes > %d", ErrTooLarge, env.Kind, len(env.Payload), limit)
	}
	return &env, nil
}

// Open decodes and authenticates an envelope for chainID: size limits, strict
// canonical decoding, a known kind, the chain ID, an Ed25519 author and a
// valid signature. It returns the envelope only if all hold.
func Open(data []byte, chainID string) (*Envelope, error) {
	env, err := DecodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	if env.ChainID != chainID {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrWrongChain, env.ChainID, chainID)
	}
	if len(env.Signature) == 0 {
		return nil, ErrUnsigned
	}
	if err := env.Verify(); err != nil {
		return nil, err
	}
	return env, nil
}

// ed25519IDPrefix starts the binary peer ID of every Ed25519 key: an
// identity multihash (code 0, length 36) of the key's protobuf encoding
// (field 1, type Ed25519; field 2, 32 bytes of key).
var ed25519IDPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// authorKey is the author's raw Ed25519 public key. The usual form of an
// Ed25519 peer ID is read in place; any other goes through libp2p's
// parsing (which accepts that form with the same result).
func (e *Envelope) authorKey() ([]byte, error) {
	if len(e.Author) == len(ed25519IDPrefix)+32 && bytes.HasPrefix(e.Author, ed25519IDPrefix) {
		return e.Author[len(ed25519IDPrefix):], nil
	}
	id, err := e.AuthorID()
	if err != nil {
		return nil, err
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: no public key in peer ID: %v", ErrBadAuthor, err)
	}
	if pub.Type() != pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("%w: author key is %s, want Ed25519", ErrBadAuthor, pub.Type())
	}
	raw, err := pub.Raw()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadAuthor, err)
	}
	return raw, nil
}

// Verify checks the signature against the author's Ed25519 key (with
// VerifyEd25519, which accepts what crypto/ed25519 accepts).
func (e *Envelope) Verify() error {
	raw, err := e.authorKey()
	if err != nil {
		return err
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if err := e.writeSigningBytes(buf); err != nil {
		return err
	}
	if !VerifyEd25519(raw, buf.Bytes(), e.Signature) {
		return ErrBadSignature
	}
	return nil
}
