package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestDecodeEnvelopeRejectsOversizeBeforeDecoding(t *testing.T) {
	// Not even CBOR: the size check must come first.
	big := bytes.Repeat([]byte{0xff}, MaxEnvelope+1)
	if _, err := DecodeEnvelope(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("DecodeEnvelope(%d bytes) = %v, want ErrTooLarge", len(big), err)
	}
	if _, err := Open(big, vecChain); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Open(%d bytes) = %v, want ErrTooLarge", len(big), err)
	}
}

func TestSealRefuses(t *testing.T) {
	alice := edKey(t, "alice")
	secp, err := crypto.UnmarshalSecp256k1PrivateKey(seed("carol-secp256k1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Seal(secp, vecChain, KindPing, vecTime, vecValue{}); !errors.Is(err, ErrBadAuthor) {
		t.Errorf("Seal with secp256k1 key: %v, want ErrBadAuthor", err)
	}
	if _, _, err := Seal(nil, vecChain, KindPing, vecTime, vecValue{}); !errors.Is(err, ErrBadAuthor) {
		t.Errorf("Seal with nil key: %v, want ErrBadAuthor", err)
	}
	if _, _, err := Seal(alice, vecChain, "nope", vecTime, vecValue{}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("Seal with unknown kind: %v, want ErrUnknownKind", err)
	}
	big := vecValue{B: make([]byte, 2<<10)}
	if _, _, err := Seal(alice, vecChain, KindPing, vecTime, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Seal over the ping limit: %v, want ErrTooLarge", err)
	}
	// At the limit exactly is fine.
	limit, _ := MaxPayload(KindPing)
	exact := vecValue{}
	exact.B = make([]byte, limit-len(MustMarshal(exact)))
	for len(MustMarshal(exact)) > limit { // the length prefix grows with B
		exact.B = exact.B[:len(exact.B)-1]
	}
	data, _, err := Seal(alice, vecChain, KindPing, vecTime, exact)
	if err != nil {
		t.Fatalf("Seal at the limit (%d bytes): %v", len(MustMarshal(exact)), err)
	}
	if _, err := Open(data, vecChain); err != nil {
		t.Fatalf("Open at the limit: %v", err)
	}
}

func TestUnmarshalNesting(t *testing.T) {
	var v any
	// MaxNesting arrays, one inside the other, around an integer.
	ok := append(bytes.Repeat([]byte{0x81}, MaxNesting), 0x00)
	if err := Unmarshal(ok, &v); err != nil {
		t.Errorf("%d nested arrays: %v", MaxNesting, err)
	}
	deep := append(bytes.Repeat([]byte{0x81}, MaxNesting+1), 0x00)
	if err := Unmarshal(deep, &v); !errors.Is(err, ErrMalformed) {
		t.Errorf("%d nested arrays: %v, want ErrMalformed", MaxNesting+1, err)
	}
	// A header that claims far more elements than the input holds fails
	// without allocating for them.
	lie := []byte{0x9b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := Unmarshal(lie, &v); !errors.Is(err, ErrMalformed) {
		t.Errorf("lying array header: %v, want ErrMalformed", err)
	}
}

func TestUnmarshalTargets(t *testing.T) {
	if err := Unmarshal([]byte{0x01}, vecValue{}); err == nil {
		t.Error("Unmarshal into a non-pointer succeeded")
	}
	var nilp *vecValue
	if err := Unmarshal([]byte{0xa0}, nilp); err == nil {
		t.Error("Unmarshal into a nil pointer succeeded")
	}
}

func TestNilAndEmptyEncodeAlike(t *testing.T) {
	a := MustMarshal(vecValue{B: nil, Items: nil})
	b := MustMarshal(vecValue{B: []byte{}, Items: []vecInner{}})
	if !bytes.Equal(a, b) {
		t.Fatalf("nil and empty slices encode differently: %x vs %x", a, b)
	}
}

func TestOptionalCIDOmitted(t *testing.T) {
	with := MustMarshal(vecValue{Link: NewCID(BlockCID([]byte("x")))})
	without := MustMarshal(vecValue{})
	if bytes.Equal(with, without) || bytes.Contains(without, []byte{0xd8, 0x2a}) {
		t.Fatalf("undefined CID not omitted: %x", without)
	}
	if _, err := Marshal(struct {
		C CID `cbor:"1,keyasint"`
	}{}); err == nil {
		t.Fatal("a required undefined CID encoded")
	}
}

func TestParseCID(t *testing.T) {
	c := BlockCID([]byte("data"))
	p, err := ParseCID(c.String())
	if err != nil || !p.Equals(c) {
		t.Fatalf("ParseCID(%s) = %v, %v", c, p, err)
	}
	if _, err := ParseCID("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"); err == nil || !strings.Contains(err.Error(), "version 0") {
		t.Errorf("ParseCID(CIDv0) = %v, want a version error", err)
	}
	if _, err := ParseCID("not a cid"); err == nil {
		t.Error("ParseCID(garbage) succeeded")
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"devnet", "testnet-1", "a", strings.Repeat("a", 63)} {
		if err := ValidateNetwork(ok); err != nil {
			t.Errorf("ValidateNetwork(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "Dev", "a/b", "a b", strings.Repeat("a", 64)} {
		if ValidateNetwork(bad) == nil {
			t.Errorf("ValidateNetwork(%q) accepted", bad)
		}
	}
	if got := Topic("devnet", TopicTxs); got != "/gpunode/devnet/txs/1" {
		t.Errorf("Topic = %q", got)
	}
	if got := StreamProtocol("devnet", "blocksync"); got != "/gpunode/devnet/blocksync/1.0.0" {
		t.Errorf("StreamProtocol = %q", got)
	}
	if got := DHTPrefix("devnet"); got != "/gpunode/devnet" {
		t.Errorf("DHTPrefix = %q", got)
	}
}
