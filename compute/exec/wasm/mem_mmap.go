//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package wasm

import (
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// hugePage is the transparent huge page size of the 64-bit Linux ports
// (2 MiB on amd64, and on arm64 and the others with 4 KiB base pages).
const hugePage = 2 << 20

// mappedMemory is linear memory in one private anonymous mapping: reserve
// bytes of address space (PROT_NONE, so nothing is committed), of which the
// first committed bytes are readable and writable. The kernel hands out
// zeroed pages, so grown memory is zero as wasm requires, without a copy.
type mappedMemory struct {
	l         *memLimiter
	region    []byte // the whole mapping, as munmap needs it
	mem       []byte // region from its first huge-page boundary
	committed uint64 // bytes of mem that are read-write
}

// mapMemory reserves max bytes of linear memory, or returns nil (the
// caller then uses a slice) if max is zero or the kernel refuses.
func (m *memLimiter) mapMemory(max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil
	}
	size := int(roundUp(max, hugePage))
	// One huge page more, to start linear memory on a huge-page boundary:
	// only aligned 2 MiB ranges can be backed by huge pages.
	region, err := syscall.Mmap(-1, 0, size+hugePage, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	// Advice only: without transparent huge pages the memory still works.
	_ = syscall.Madvise(region, syscall.MADV_HUGEPAGE)
	off := 0
	if mis := int(uintptrOf(region) % hugePage); mis != 0 {
		off = hugePage - mis
	}
	return &mappedMemory{l: m, region: region, mem: region[off : off+size : off+size]}
}

func (lm *mappedMemory) Reallocate(size uint64) []byte {
	if lm.l.refuse(size) || size > uint64(len(lm.mem)) {
		return nil
	}
	if size > lm.committed {
		// Commit whole huge pages, so each can be backed by one.
		c := min(roundUp(size, hugePage), uint64(len(lm.mem)))
		if err := syscall.Mprotect(lm.mem[lm.committed:c], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		lm.committed = c
	}
	return lm.mem[:size:lm.committed]
}

func (lm *mappedMemory) Free() {
	if lm.region != nil {
		_ = syscall.Munmap(lm.region)
		lm.region, lm.mem = nil, nil
	}
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// mapsMemory: linear memory is mapped on this platform.
const mapsMemory = true
