//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64))

package wasm

import "github.com/tetratelabs/wazero/experimental"

// mapMemory is nil here: linear memory is a Go slice (see mem_mmap.go).
func (m *memLimiter) mapMemory(uint64) experimental.LinearMemory { return nil }

// mapsMemory: linear memory is mapped on this platform.
const mapsMemory = false
