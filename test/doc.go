// Package test holds gpunode's multi-node integration, end-to-end, fault and
// benchmark harnesses. Each subdirectory is one harness; they run real
// go-libp2p on loopback, never fakes of it.
package test
