package protocol

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

type testBody struct {
	N    uint64 `cbor:"1,keyasint"`
	Text string `cbor:"2,keyasint"`
}

func TestSealOpen(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := Seal(key, "devnet", KindPing, time.UnixMilli(1700000000000), testBody{7, "hi"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := Open(data, "devnet")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var got testBody
	if err := env.Decode(&got); err != nil || got != (testBody{7, "hi"}) {
		t.Fatalf("Decode = %+v, %v", got, err)
	}
	if _, err := Open(data, "testnet-1"); !errors.Is(err, ErrWrongChain) {
		t.Fatalf("Open on other chain: %v, want ErrWrongChain", err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1 // last byte is in the signature
	if _, err := Open(bad, "devnet"); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Open with flipped signature bit: %v, want ErrBadSignature", err)
	}
}

func TestUnmarshalRejectsNonCanonical(t *testing.T) {
	// {1: 7, 2: "hi"} with the integer 7 in a two-byte form (0x18 0x07).
	nonMinimal := []byte{0xa2, 0x01, 0x18, 0x07, 0x02, 0x62, 'h', 'i'}
	var b testBody
	if err := Unmarshal(nonMinimal, &b); !errors.Is(err, ErrNonCanonical) {
		t.Fatalf("Unmarshal(non-minimal int) = %v, want ErrNonCanonical", err)
	}
	// Keys out of order: {2: "hi", 1: 7}.
	unsorted := []byte{0xa2, 0x02, 0x62, 'h', 'i', 0x01, 0x07}
	if err := Unmarshal(unsorted, &b); !errors.Is(err, ErrNonCanonical) {
		t.Fatalf("Unmarshal(unsorted keys) = %v, want ErrNonCanonical", err)
	}
	if err := Unmarshal(append(MustMarshal(testBody{7, "hi"}), 0), &b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Unmarshal(trailing byte) = %v, want ErrMalformed", err)
	}
}
