package protocol

import (
	"sync"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// ed25519Std selects curve25519-voi's verification rules that match Go's
// crypto/ed25519 exactly: small-order and non-canonical public keys and R
// accepted, S must be canonical, and the cofactorless equation with a
// byte comparison of R. Every node must accept exactly the same signatures
// (a tx one node accepts and another refuses would split the chain), so
// the equation is never swapped, and batch verification (a different,
// cofactored equation) is never used.
var ed25519Std = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// VerifyEd25519 reports whether sig is a valid Ed25519 signature of msg by
// the 32-byte public key pub, with exactly the acceptance rules of
// crypto/ed25519.Verify, about 1.7 times as fast. A key or signature of
// the wrong length does not verify (crypto/ed25519 would panic on the key).
//
// Keys are verified through their expanded form (voi's ExpandedPublicKey:
// the decompressed point with its precomputed multiples), kept in a small
// process-wide cache: a sender's txs, and a validator's messages, then
// skip the point decompression and the table set-up. Expanding a key
// costs less than the plain verification saves, so a key seen once costs
// no more than before; the expanded path checks the same conditions
// (voi's checkExpandedPublicKey mirrors unpackPublicKey).
func VerifyEd25519(pub, msg, sig []byte) bool {
	if len(pub) != voi.PublicKeySize || len(sig) != voi.SignatureSize {
		return false
	}
	x := expandedKeys.get(pub)
	if x == nil {
		return false // not a point on the curve: crypto/ed25519 refuses it too
	}
	return voi.VerifyExpandedWithOptions(x, msg, sig, ed25519Std)
}

// expandedKeyCacheSize bounds each generation of the expanded-key cache;
// an expanded key is about 1.5 KiB, so the cache holds at most about
// 2 x 1024 x 1.5 KiB = 3 MiB.
const expandedKeyCacheSize = 1024

var expandedKeys = keyCache{size: expandedKeyCacheSize}

// keyCache remembers expanded public keys in two generations: lookups
// check the current one, then the previous one (moving a hit forward);
// when the current one is full it becomes the previous one. Recently used
// keys therefore stay, and the cache never holds more than two
// generations. Safe for concurrent use.
type keyCache struct {
	size int // per generation

	mu       sync.Mutex // guards cur and old
	cur, old map[[32]byte]*voi.ExpandedPublicKey
}

// get returns pub's expanded form, or nil if pub is not a valid point
// encoding (which is not cached).
func (c *keyCache) get(pub []byte) *voi.ExpandedPublicKey {
	k := [32]byte(pub)
	c.mu.Lock()
	x := c.cur[k]
	if x == nil {
		if x = c.old[k]; x != nil {
			c.put(k, x)
		}
	}
	c.mu.Unlock()
	if x != nil {
		return x
	}
	x, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	if err != nil {
		return nil
	}
	c.mu.Lock()
	c.put(k, x)
	c.mu.Unlock()
	return x
}

// put adds k to the current generation; mu is held.
func (c *keyCache) put(k [32]byte, x *voi.ExpandedPublicKey) {
	if c.cur == nil || len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[[32]byte]*voi.ExpandedPublicKey, c.size)
	}
	c.cur[k] = x
}
