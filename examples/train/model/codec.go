package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Limits on what the decoders accept.
const (
	MaxDim  = 1 << 16
	MaxRows = 1 << 24
)

// ErrFormat: bytes are not a valid weights or shard file.
var ErrFormat = errors.New("model: bad file format")

var (
	weightsMagic = [4]byte{'G', 'N', 'W', '1'}
	shardMagic   = [4]byte{'G', 'N', 'S', '1'}
	shardMagic2  = [4]byte{'G', 'N', 'S', '2'}
)

// EncodeWeights: "GNW1", uint32 dim, then dim+1 float64, little-endian.
func EncodeWeights(w Weights) []byte {
	b := make([]byte, 8, 8+8*len(w.W))
	copy(b, weightsMagic[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(w.Dim()))
	for _, v := range w.W {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// DecodeWeights parses EncodeWeights output; NaN and infinities are refused.
func DecodeWeights(b []byte) (Weights, error) {
	if len(b) < 8 || [4]byte(b[:4]) != weightsMagic {
		return Weights{}, fmt.Errorf("%w: not a weights file", ErrFormat)
	}
	dim := binary.LittleEndian.Uint32(b[4:])
	if dim == 0 || dim > MaxDim || uint64(len(b)) != 8+8*(uint64(dim)+1) {
		return Weights{}, fmt.Errorf("%w: weights dim %d with %d bytes", ErrFormat, dim, len(b))
	}
	w := Weights{W: make([]float64, dim+1)}
	for i := range w.W {
		v := math.Float64frombits(binary.LittleEndian.Uint64(b[8+8*i:]))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Weights{}, fmt.Errorf("%w: weight %d is not finite", ErrFormat, i)
		}
		w.W[i] = v
	}
	return w, nil
}

// Shard files. EncodeShard writes GNS2, whose arrays a program can use
// where they lie in the file, with no decoding pass:
//
//	"GNS2", uint32 dim, uint32 rows, uint32 0,
//	rows*dim float64 features (row-major), rows float64 labels (0 or 1),
//
// little-endian; the header is 16 bytes so both arrays are 8-byte aligned
// in a buffer that is. DecodeShard also reads the older GNS1:
//
//	"GNS1", uint32 dim, uint32 rows, then per row dim float64 features and
//	one byte label.
//
// Both hold the same shards (finite features, labels exactly 0 or 1), so a
// shard trains to the same weights from either.
const shardHeader2 = 16

// EncodeShard encodes s as GNS2.
func EncodeShard(s Shard) []byte {
	b := make([]byte, shardHeader2, shardHeader2+8*(len(s.X)+len(s.Y)))
	copy(b, shardMagic2[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(s.Dim))
	binary.LittleEndian.PutUint32(b[8:], uint32(s.Rows()))
	for _, v := range s.X {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for _, v := range s.Y {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// EncodeShardV1 encodes s in the older GNS1 format.
func EncodeShardV1(s Shard) []byte {
	b := make([]byte, 12, 12+s.Rows()*(8*s.Dim+1))
	copy(b, shardMagic[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(s.Dim))
	binary.LittleEndian.PutUint32(b[8:], uint32(s.Rows()))
	for i := range s.Rows() {
		for _, v := range s.X[i*s.Dim : (i+1)*s.Dim] {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		b = append(b, byte(s.Y[i]))
	}
	return b
}

// DecodeShard parses a GNS2 or GNS1 shard. It refuses features that are
// not finite and labels other than 0 and 1, and accepts only the bytes its
// encoder of that format writes.
func DecodeShard(b []byte) (Shard, error) {
	if len(b) >= 4 && [4]byte(b[:4]) == shardMagic2 {
		return decodeShard2(b)
	}
	if len(b) < 12 || [4]byte(b[:4]) != shardMagic {
		return Shard{}, fmt.Errorf("%w: not a shard file", ErrFormat)
	}
	dim := uint64(binary.LittleEndian.Uint32(b[4:]))
	rows := uint64(binary.LittleEndian.Uint32(b[8:]))
	if dim == 0 || dim > MaxDim || rows > MaxRows || uint64(len(b)) != 12+rows*(8*dim+1) {
		return Shard{}, fmt.Errorf("%w: shard %d x %d with %d bytes", ErrFormat, rows, dim, len(b))
	}
	s := Shard{Dim: int(dim), X: make([]float64, rows*dim), Y: make([]float64, rows)}
	p := b[12:]
	for i := range int(rows) {
		for j := range int(dim) {
			v := math.Float64frombits(binary.LittleEndian.Uint64(p))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Shard{}, fmt.Errorf("%w: row %d feature %d is not finite", ErrFormat, i, j)
			}
			s.X[i*int(dim)+j] = v
			p = p[8:]
		}
		if p[0] > 1 {
			return Shard{}, fmt.Errorf("%w: row %d label %d", ErrFormat, i, p[0])
		}
		s.Y[i] = float64(p[0])
		p = p[1:]
	}
	return s, nil
}

func decodeShard2(b []byte) (Shard, error) {
	if len(b) < shardHeader2 || binary.LittleEndian.Uint32(b[12:]) != 0 {
		return Shard{}, fmt.Errorf("%w: bad GNS2 header", ErrFormat)
	}
	dim := uint64(binary.LittleEndian.Uint32(b[4:]))
	rows := uint64(binary.LittleEndian.Uint32(b[8:]))
	if dim == 0 || dim > MaxDim || rows > MaxRows || uint64(len(b)) != shardHeader2+8*rows*(dim+1) {
		return Shard{}, fmt.Errorf("%w: shard %d x %d with %d bytes", ErrFormat, rows, dim, len(b))
	}
	s := Shard{Dim: int(dim), X: make([]float64, rows*dim), Y: make([]float64, rows)}
	p := b[shardHeader2:]
	for i := range s.X {
		u := binary.LittleEndian.Uint64(p[8*i:])
		if u&expMask == expMask { // NaN or an infinity
			return Shard{}, fmt.Errorf("%w: row %d feature %d is not finite", ErrFormat, i/int(dim), i%int(dim))
		}
		s.X[i] = math.Float64frombits(u)
	}
	p = p[8*len(s.X):]
	for i := range s.Y {
		switch u := binary.LittleEndian.Uint64(p[8*i:]); u {
		case 0:
		case one:
			s.Y[i] = 1
		default:
			return Shard{}, fmt.Errorf("%w: row %d label %v", ErrFormat, i, math.Float64frombits(u))
		}
	}
	return s, nil
}

// Bits of float64: the exponent field (all ones for NaN and infinities)
// and 1.0.
const (
	expMask = 0x7ff0000000000000
	one     = 0x3ff0000000000000
)
