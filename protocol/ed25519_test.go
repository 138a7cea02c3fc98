package protocol

import (
	"crypto/ed25519"
	"encoding/hex"
	"math/big"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// smallOrder are the eight points of small order (the torsion subgroup),
// canonically encoded.
var smallOrder = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
}

// oddEncodings are non-canonical or invalid point encodings: y = p and
// y = p+1 (0 and 1 again), with and without the sign bit, a negative zero
// x, and a y that is not on the curve.
var oddEncodings = []string{
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"0100000000000000000000000000000000000000000000000000000000000080",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"0200000000000000000000000000000000000000000000000000000000000000",
}

// groupOrder is L, the order of the prime-order subgroup.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// scalarLE encodes n (mod 2^256) as 32 little-endian bytes.
func scalarLE(n *big.Int) []byte {
	be := new(big.Int).Mod(n, new(big.Int).Lsh(big.NewInt(1), 256)).FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return be
}

func leInt(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyEd25519SmallOrderList checks the test's own table: the eight
// encodings are points of small order.
func TestVerifyEd25519SmallOrderList(t *testing.T) {
	for _, s := range smallOrder {
		var c curve.CompressedEdwardsY
		if _, err := c.SetBytes(mustHex(t, s)); err != nil {
			t.Fatal(err)
		}
		var p curve.EdwardsPoint
		if _, err := p.SetCompressedY(&c); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if !p.IsSmallOrder() {
			t.Errorf("%s is not of small order", s)
		}
	}
}

// TestVerifyEd25519MatchesStdlib pins VerifyEd25519 to crypto/ed25519 on
// the edge cases where Ed25519 implementations disagree: small-order and
// non-canonical A and R, S at and above the group order, and a real
// signature with S replaced by S+L. Both must give the same answer on
// every combination; some combinations (e.g. the identity as A and R with
// S = 0) verify, so the test covers acceptance, not only rejection.
func TestVerifyEd25519MatchesStdlib(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	msgs := [][]byte{nil, []byte("gpunode"), make([]byte, 300)}
	points := append(append([]string{}, smallOrder...), oddEncodings...)
	realSig := ed25519.Sign(priv, msgs[1])
	points = append(points, hex.EncodeToString(pub), hex.EncodeToString(realSig[:32]))
	sVal := leInt(realSig[32:])
	scalars := [][]byte{
		make([]byte, 32),
		scalarLE(big.NewInt(1)),
		scalarLE(new(big.Int).Sub(groupOrder, big.NewInt(1))),
		scalarLE(groupOrder),
		scalarLE(new(big.Int).Add(groupOrder, big.NewInt(1))),
		mustHex(t, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		mustHex(t, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
		realSig[32:],
		scalarLE(new(big.Int).Add(sVal, groupOrder)),
	}
	accepted, cases := 0, 0
	for _, a := range points {
		for _, r := range points {
			for _, s := range scalars {
				for _, m := range msgs {
					sig := append(mustHex(t, r), s...)
					pk := mustHex(t, a)
					want := ed25519.Verify(pk, m, sig)
					if got := VerifyEd25519(pk, m, sig); got != want {
						t.Errorf("A=%s R=%s S=%x msg=%q: VerifyEd25519 %v, crypto/ed25519 %v", a, r, s, m, got, want)
					}
					cases++
					if want {
						accepted++
					}
				}
			}
		}
	}
	t.Logf("%d of %d edge cases verify", accepted, cases)
	if accepted < 2 {
		t.Fatalf("only %d of %d edge cases verify; the table no longer covers acceptance", accepted, cases)
	}
	if !VerifyEd25519(pub, msgs[1], realSig) {
		t.Fatal("a real signature does not verify")
	}
	// Wrong lengths never verify (crypto/ed25519 panics on a short key).
	if VerifyEd25519(pub[:31], msgs[1], realSig) || VerifyEd25519(pub, msgs[1], realSig[:63]) ||
		VerifyEd25519(pub, msgs[1], append(realSig, 0)) {
		t.Fatal("a key or signature of the wrong length verifies")
	}
}

// FuzzVerifyEd25519: VerifyEd25519 gives crypto/ed25519's answer for any
// key, message and signature. With sign set, pub is a seed whose key signs
// msg and sig is XORed into that signature (so the fuzzer explores near
// valid signatures, not only random bytes).
func FuzzVerifyEd25519(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	sig := ed25519.Sign(priv, []byte("m"))
	f.Add([]byte(priv.Public().(ed25519.PublicKey)), []byte("m"), sig, false)
	f.Add([]byte{1}, []byte("m"), []byte{}, true)
	f.Add([]byte{1}, []byte("m"), append(make([]byte, 63), 0x10), true)
	id := mustHex(f, smallOrder[0])
	f.Add(id, []byte{}, append(append([]byte{}, id...), make([]byte, 32)...), false)
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte, sign bool) {
		if sign {
			k := ed25519.NewKeyFromSeed(append(pub, make([]byte, ed25519.SeedSize)...)[:ed25519.SeedSize])
			good := ed25519.Sign(k, msg)
			for i := range min(len(sig), len(good)) {
				good[i] ^= sig[i]
			}
			pub, sig = k.Public().(ed25519.PublicKey), good
		}
		if len(pub) != ed25519.PublicKeySize {
			if VerifyEd25519(pub, msg, sig) {
				t.Fatal("a key of the wrong length verifies")
			}
			return
		}
		if got, want := VerifyEd25519(pub, msg, sig), ed25519.Verify(pub, msg, sig); got != want {
			t.Fatalf("VerifyEd25519 %v, crypto/ed25519 %v", got, want)
		}
	})
}

// TestKeyCacheGenerations: keys keep verifying through generation
// rollovers, the cache stays within two generations, and an encoding that
// is not a point is refused without being cached.
func TestKeyCacheGenerations(t *testing.T) {
	c := keyCache{size: 16}
	msg := []byte("gpunode")
	type signed struct{ pub, sig []byte }
	var keys []signed
	for i := range 3*c.size + 7 {
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), byte(i>>8)
		priv := ed25519.NewKeyFromSeed(seed)
		keys = append(keys, signed{priv.Public().(ed25519.PublicKey), ed25519.Sign(priv, msg)})
	}
	for round := range 2 {
		for i, k := range keys {
			x := c.get(k.pub)
			if x == nil || !voi.VerifyExpandedWithOptions(x, msg, k.sig, ed25519Std) {
				t.Fatalf("round %d key %d: cached key does not verify its signature", round, i)
			}
			if n := len(c.cur) + len(c.old); n > 2*c.size {
				t.Fatalf("cache holds %d keys, bound %d", n, 2*c.size)
			}
		}
	}
	// The first key is long evicted, the last one is current: both give
	// the same answers as crypto/ed25519.
	for _, k := range []signed{keys[0], keys[len(keys)-1]} {
		if !VerifyEd25519(k.pub, msg, k.sig) || VerifyEd25519(k.pub, []byte("other"), k.sig) {
			t.Fatal("VerifyEd25519 disagrees with crypto/ed25519 on a real key")
		}
	}
	bad := mustHex(t, oddEncodings[len(oddEncodings)-1]) // y not on the curve
	before := len(c.cur)
	if c.get(bad) != nil {
		t.Fatal("an encoding off the curve expanded")
	}
	if len(c.cur) != before {
		t.Fatal("an invalid key was cached")
	}
}
