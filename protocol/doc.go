// Package protocol defines gpunode's wire: message types, the deterministic
// CBOR codec, signed envelopes, content identifiers, size limits and the
// topic and stream-protocol names derived from a network name.
//
// It imports nothing else of gpunode; every other package imports it.
package protocol
