package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// The seed corpora live in testdata/fuzz/<target>; TestVectors -update
// regenerates the vector-* files there from testdata/vectors.json.

// FuzzOpen: Open never panics, and whatever it accepts is a canonical,
// correctly signed envelope that re-encodes to the same bytes.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Open(data, vecChain)
		if err != nil {
			if env != nil {
				t.Fatal("Open returned an envelope with an error")
			}
			if !isSentinel(err) {
				t.Fatalf("Open error %v matches no sentinel", err)
			}
			return
		}
		if again := MustMarshal(env); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x", data, again)
		}
		if err := env.Verify(); err != nil {
			t.Fatalf("accepted envelope fails Verify: %v", err)
		}
		if env.ChainID != vecChain || len(env.Signature) == 0 {
			t.Fatalf("accepted envelope %+v", env)
		}
	})
}

// FuzzDecodeEnvelope: whatever decodes re-encodes to the same bytes and
// respects its kind's limit; the envelope's ID is the CID of the input.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnvelope(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("DecodeEnvelope error %v matches no sentinel", err)
			}
			return
		}
		if again := MustMarshal(env); !bytes.Equal(again, data) {
			t.Fatalf("accepted %x but re-encodes to %x", data, again)
		}
		limit, ok := MaxPayload(env.Kind)
		if !ok || len(env.Payload) > limit {
			t.Fatalf("accepted kind %q with %d-byte payload", env.Kind, len(env.Payload))
		}
		id, err := env.ID()
		if err != nil || !id.Equals(DagCBORCID(data)) {
			t.Fatalf("ID = %v, %v; want %v", id, err, DagCBORCID(data))
		}
		// Open on the same bytes fails only for a signature, author or
		// chain reason, never for a decoding one.
		if _, err := Open(data, env.ChainID); err != nil &&
			!errors.Is(err, ErrUnsigned) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadAuthor) {
			t.Fatalf("Open after a good decode: %v", err)
		}
	})
}

// FuzzUnmarshal decodes into the representative struct and into a dynamic
// value: whatever decodes re-encodes to the same bytes, and a failed decode
// leaves the target untouched.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := vecValue{S: "untouched"}
		v := orig
		if err := Unmarshal(data, &v); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNonCanonical) {
				t.Fatalf("Unmarshal error %v is neither ErrMalformed nor ErrNonCanonical", err)
			}
			if v.S != orig.S || v.U != 0 || v.Items != nil {
				t.Fatalf("failed Unmarshal changed the target: %+v", v)
			}
		} else {
			if again := MustMarshal(v); !bytes.Equal(again, data) {
				t.Fatalf("accepted %x but re-encodes to %x", data, again)
			}
			if c, err := ObjectID(v); err != nil || !c.Equals(DagCBORCID(data)) {
				t.Fatalf("ObjectID = %v, %v; want %v", c, err, DagCBORCID(data))
			}
		}
		var dyn any
		if err := Unmarshal(data, &dyn); err == nil {
			if again, err := Marshal(dyn); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("accepted %x as %#v but re-encodes to %x, %v", data, dyn, again, err)
			}
		}
	})
}

// FuzzCID covers the CID link decoder (through Unmarshal and directly) and
// ParseCID on the same input as a string.
func FuzzCID(f *testing.F) {
	f.Add([]byte{0xd8, 0x2a, 0x41, 0x00})
	f.Add([]byte("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c CID
		if err := Unmarshal(data, &c); err == nil {
			again, err := c.MarshalCBOR()
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("accepted %x but re-encodes to %x, %v", data, again, err)
			}
			if c.Version() != 1 {
				t.Fatalf("accepted CIDv%d", c.Version())
			}
		}
		var direct CID
		if err := direct.UnmarshalCBOR(data); err == nil {
			if again, err := direct.MarshalCBOR(); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("UnmarshalCBOR accepted %x but re-encodes to %x, %v", data, again, err)
			}
		}
		p, err := ParseCID(string(data))
		if err != nil {
			return
		}
		if p.Version() != 1 {
			t.Fatalf("ParseCID accepted CIDv%d", p.Version())
		}
		q, err := ParseCID(p.String())
		if err != nil || !q.Equals(p.Cid) {
			t.Fatalf("ParseCID(%q) = %v, %v; want %v", p.String(), q, err, p)
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
