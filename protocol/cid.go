package protocol

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// ObjectID is the content ID of a wire object: a CIDv1 with the dag-cbor
// codec over the sha2-256 of its deterministic encoding.
func ObjectID(v any) (cid.Cid, error) {
	b, err := Marshal(v)
	if err != nil {
		return cid.Undef, err
	}
	return DagCBORCID(b), nil
}

// DagCBORCID is the CIDv1 (dag-cbor, sha2-256) of already encoded bytes.
func DagCBORCID(encoded []byte) cid.Cid {
	return sumCID(cid.DagCBOR, encoded)
}

// BlockCID is the CIDv1 (raw codec, sha2-256) of a data chunk.
func BlockCID(data []byte) cid.Cid {
	return sumCID(cid.Raw, data)
}

func sumCID(codec uint64, data []byte) cid.Cid {
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil { // only for unknown hash codes; sha2-256 is built in
		panic(err)
	}
	return cid.NewCidV1(codec, h)
}

// cidTag is the CBOR tag IPLD's dag-cbor uses for links.
const cidTag = 42

// CID is a content identifier as a field of a wire message. It encodes as a
// dag-cbor link (tag 42 over a byte string of 0x00 followed by the binary
// CID), so manifests and specs are valid IPLD. The zero value is cid.Undef.
type CID struct{ cid.Cid }

// NewCID wraps c for use in a wire struct.
func NewCID(c cid.Cid) CID { return CID{c} }

// MarshalCBOR implements cbor.Marshaler.
func (c CID) MarshalCBOR() ([]byte, error) {
	if !c.Defined() {
		return nil, fmt.Errorf("protocol: encode undefined CID")
	}
	b := append([]byte{0}, c.Bytes()...)
	return encMode.Marshal(cbor.Tag{Number: cidTag, Content: b})
}

// UnmarshalCBOR implements cbor.Unmarshaler. It accepts only the canonical
// form MarshalCBOR produces, and only CIDv1: a CIDv0 names the same content
// as a CIDv1 and would give a second encoding of the same link.
func (c *CID) UnmarshalCBOR(data []byte) error {
	var t cbor.RawTag
	if err := decMode.Unmarshal(data, &t); err != nil {
		return err
	}
	if t.Number != cidTag {
		return fmt.Errorf("protocol: CID has tag %d, want %d", t.Number, cidTag)
	}
	var b []byte
	if err := decMode.Unmarshal(t.Content, &b); err != nil {
		return fmt.Errorf("protocol: CID content: %w", err)
	}
	if len(b) < 2 || b[0] != 0 {
		return fmt.Errorf("protocol: CID without multibase identity prefix")
	}
	n, parsed, err := cid.CidFromBytes(b[1:])
	if err != nil {
		return fmt.Errorf("protocol: CID: %w", err)
	}
	if n != len(b)-1 {
		return fmt.Errorf("protocol: CID has %d trailing bytes", len(b)-1-n)
	}
	if parsed.Version() != 1 {
		return fmt.Errorf("protocol: CID version %d, want 1", parsed.Version())
	}
	again, err := CID{parsed}.MarshalCBOR()
	if err != nil || !bytes.Equal(again, data) {
		return fmt.Errorf("%w: CID link", ErrNonCanonical)
	}
	c.Cid = parsed
	return nil
}

// ParseCID parses a CID from its string form, for CLI and API input.
func ParseCID(s string) (CID, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return CID{}, fmt.Errorf("protocol: parse CID %q: %w", s, err)
	}
	if c.Version() != 1 {
		return CID{}, fmt.Errorf("protocol: parse CID %q: version %d, want 1", s, c.Version())
	}
	return CID{c}, nil
}

// IsZero reports whether c is undefined, so that optional links tagged
// `cbor:",omitzero"` are left out of the encoding.
func (c CID) IsZero() bool { return !c.Defined() }
