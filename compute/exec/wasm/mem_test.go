package wasm

import (
	"bytes"
	"testing"
)

// Linear memory, mapped or a slice: grown memory is zero, growing keeps
// the contents, and growing past the limit fails and is remembered.
func TestLinearMemory(t *testing.T) {
	const limit = 5 * pageSize << 3 // not a multiple of a huge page
	for _, mapped := range []bool{true, false} {
		m := &memLimiter{limit: limit}
		lm := m.Allocate(pageSize, 1<<32)
		if !mapped {
			lm = &sliceMemory{l: m}
		}
		_, isSlice := lm.(*sliceMemory)
		t.Logf("mapped %v: %T", mapped, lm)
		var want []byte
		for _, size := range []uint64{pageSize, 3 * pageSize, 33 * pageSize, limit} {
			b := lm.Reallocate(size)
			if uint64(len(b)) != size {
				t.Fatalf("%T: Reallocate(%d) gave %d bytes", lm, size, len(b))
			}
			if !bytes.Equal(b[:len(want)], want) {
				t.Fatalf("%T: growing to %d lost the contents", lm, size)
			}
			if i := bytes.IndexFunc(b[len(want):], func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("%T: grown memory not zero at %d", lm, len(want)+i)
			}
			for i := len(want); i < len(b); i += 4093 {
				b[i] = byte(i)
			}
			b[len(b)-1] = 1
			want = append([]byte(nil), b...)
		}
		if m.exceeded.Load() {
			t.Fatalf("%T: exceeded before the limit", lm)
		}
		if b := lm.Reallocate(limit + pageSize); b != nil {
			t.Fatalf("%T: grew past the limit", lm)
		}
		if !m.exceeded.Load() || m.asked.Load() != limit+pageSize {
			t.Fatalf("%T: refusal not recorded (asked %d)", lm, m.asked.Load())
		}
		lm.Free()
		lm.Free()
		if mapped && isSlice && mapsMemory {
			t.Errorf("Allocate gave %T; want a mapping on this platform", lm)
		}
	}
}
