package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// littleEndian: this machine stores float64 as GNS2 does.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// ViewShard is DecodeShard without the copy: for a GNS2 shard in an
// 8-byte aligned buffer on a little-endian machine, the returned Shard's X
// and Y are b's arrays where they lie (the same checks are made: finite
// features, labels 0 or 1). b must not change while the Shard is in use.
// Any other input (GNS1, an unaligned buffer) is decoded by DecodeShard.
// This is what the C kernel does in its wasm build, so native and wasm
// runs of it do the same work on their input.
func ViewShard(b []byte) (Shard, error) {
	if len(b) < shardHeader2 || [4]byte(b[:4]) != shardMagic2 || !littleEndian ||
		uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 != 0 {
		return DecodeShard(b)
	}
	if binary.LittleEndian.Uint32(b[12:]) != 0 {
		return Shard{}, fmt.Errorf("%w: bad GNS2 header", ErrFormat)
	}
	dim := uint64(binary.LittleEndian.Uint32(b[4:]))
	rows := uint64(binary.LittleEndian.Uint32(b[8:]))
	if dim == 0 || dim > MaxDim || rows > MaxRows || uint64(len(b)) != shardHeader2+8*rows*(dim+1) {
		return Shard{}, fmt.Errorf("%w: shard %d x %d with %d bytes", ErrFormat, rows, dim, len(b))
	}
	var all []uint64
	if rows > 0 {
		all = unsafe.Slice((*uint64)(unsafe.Pointer(&b[shardHeader2])), rows*(dim+1))
	}
	xs, ys := all[:rows*dim], all[rows*dim:]
	for i, u := range xs {
		if u&expMask == expMask {
			return Shard{}, fmt.Errorf("%w: row %d feature %d is not finite", ErrFormat, uint64(i)/dim, uint64(i)%dim)
		}
	}
	for i, u := range ys {
		if u != 0 && u != one {
			return Shard{}, fmt.Errorf("%w: row %d label %v", ErrFormat, i, math.Float64frombits(u))
		}
	}
	s := Shard{Dim: int(dim)}
	if rows > 0 {
		s.X = unsafe.Slice((*float64)(unsafe.Pointer(&xs[0])), len(xs))
		s.Y = unsafe.Slice((*float64)(unsafe.Pointer(&ys[0])), len(ys))
	} else {
		s.X, s.Y = []float64{}, []float64{}
	}
	return s, nil
}
