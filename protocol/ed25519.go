package protocol

import (
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
// crypto/ed25519.Verify, about 1.5 times as fast. A key or signature of
// the wrong length does not verify (crypto/ed25519 would panic on the key).
func VerifyEd25519(pub, msg, sig []byte) bool {
	if len(pub) != voi.PublicKeySize || len(sig) != voi.SignatureSize {
		return false
	}
	return voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig, ed25519Std)
}
