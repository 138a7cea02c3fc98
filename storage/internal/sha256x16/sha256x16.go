// Package sha256x16 computes the SHA-256 digests of several messages at
// once. On amd64 with AVX-512 it hashes up to 16 messages in parallel in
// the 16 lanes of the vector unit (the assembly of minio/sha256-simd, see
// NOTICE); elsewhere, and for batches too small to fill enough lanes, it
// uses crypto/sha256 one message at a time, which beats a mostly idle
// vector (a pass costs the same however many lanes are filled).
//
// Usage: collect up to Lanes messages of similar length and call Sum. Only
// whole batches of at least MinLanes messages gain anything; callers that
// cannot wait for a batch should hash as usual.
package sha256x16

import "crypto/sha256"

// Lanes is the most messages one vector pass hashes.
const Lanes = 16

// MinLanes is the smallest batch hashed in the vector unit; a smaller one is
// hashed one message at a time. Measured on an AMD EPYC (Zen 5) with SHA-NI:
// 16 lanes give about 2.2 GB/s, one SHA-NI stream 1.7 GB/s, so the vector
// wins from about 13 lanes.
const MinLanes = 13

// Accelerated reports whether Sum uses the vector unit for full batches.
// Without it batching gains nothing and callers may as well hash each
// message as it arrives.
func Accelerated() bool { return accelerated }

// Sum sets out[i] to the SHA-256 digest of msgs[i]. out must be at least as
// long as msgs. Any number of messages may be passed; they are hashed in
// groups of Lanes.
func Sum(msgs [][]byte, out [][sha256.Size]byte) {
	_ = out[:len(msgs)]
	for len(msgs) > 0 {
		n := min(len(msgs), Lanes)
		if accelerated && n >= MinLanes {
			sumLanes(msgs[:n], out[:n])
		} else {
			for i, m := range msgs[:n] {
				out[i] = sha256.Sum256(m)
			}
		}
		msgs, out = msgs[n:], out[n:]
	}
}
