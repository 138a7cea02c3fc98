// Package test holds gpunode's multi-node integration, end-to-end, fault and
// benchmark harnesses. Its subpackages run real libp2p hosts on loopback and
// real gpunode processes; nothing here is imported by the binary.
package test
