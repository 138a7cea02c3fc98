package protocol

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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

// TestAuthorKeyFastPath: the in-place read of an Ed25519 peer ID gives
// libp2p's answer, and IDs of other shapes still go through libp2p (a
// secp256k1 author is refused as before).
func TestAuthorKeyFastPath(t *testing.T) {
	for i := range 20 {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		e := &Envelope{Author: []byte(id)}
		if !bytes.HasPrefix(e.Author, ed25519IDPrefix) {
			t.Fatalf("key %d: peer ID %x does not have the Ed25519 prefix", i, e.Author)
		}
		got, err := e.authorKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := id.ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := pub.Raw()
		if !bytes.Equal(got, want) {
			t.Fatalf("key %d: authorKey %x, libp2p %x", i, got, want)
		}
	}
	sk, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Envelope{Author: []byte(id)}).authorKey(); !errors.Is(err, ErrBadAuthor) {
		t.Fatalf("secp256k1 author: %v, want ErrBadAuthor", err)
	}
	if _, err := (&Envelope{Author: append(bytes.Clone(ed25519IDPrefix), 1, 2, 3)}).authorKey(); !errors.Is(err, ErrBadAuthor) {
		t.Fatalf("truncated Ed25519 author: %v, want ErrBadAuthor", err)
	}
}
