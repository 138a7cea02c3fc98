// Package mat is the hardware challenge's kernel: square matrices derived
// from a seed, their product, and Freivalds' check that verifies a claimed
// product in O(n²) instead of recomputing it in O(n³).
//
// Entries are small integers held in float64, so every product and sum is
// exact (|C[i][j]| <= 64n, far below 2^53): the answer is the same on a CPU,
// a GPU or under wasm whatever the summation order, and checks compare
// exactly.
package mat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxN bounds the dimension any function here accepts.
const MaxN = 1 << 13

// ErrSize: a dimension or encoded length is out of range.
var ErrSize = errors.New("mat: bad size")

// splitmix64, identical everywhere.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Generate derives the n x n row-major matrices A and B from seed, with
// integer entries in [-8, 8].
func Generate(seed uint64, n int) (a, b []float64, err error) {
	if n <= 0 || n > MaxN {
		return nil, nil, fmt.Errorf("%w: n = %d", ErrSize, n)
	}
	r := rng{s: seed}
	a, b = make([]float64, n*n), make([]float64, n*n)
	for i := range a {
		a[i] = float64(int(r.next()%17) - 8)
	}
	for i := range b {
		b[i] = float64(int(r.next()%17) - 8)
	}
	return a, b, nil
}

// Multiply returns A·B for n x n row-major matrices, blocked for cache
// locality.
func Multiply(a, b []float64, n int) []float64 {
	c := make([]float64, n*n)
	const bs = 64
	for ii := 0; ii < n; ii += bs {
		for kk := 0; kk < n; kk += bs {
			for i := ii; i < min(ii+bs, n); i++ {
				ci := c[i*n : (i+1)*n]
				for k := kk; k < min(kk+bs, n); k++ {
					aik := a[i*n+k]
					if aik == 0 {
						continue
					}
					bk := b[k*n : (k+1)*n]
					for j, bkj := range bk {
						ci[j] += aik * bkj
					}
				}
			}
		}
	}
	return c
}

// Freivalds reports whether c = a·b, testing rounds random 0/1 vectors r
// drawn from seed: it compares a·(b·r) with c·r. A wrong c passes one round
// with probability at most 1/2, so 20 rounds miss with probability < 1e-6.
func Freivalds(a, b, c []float64, n int, seed uint64, rounds int) bool {
	if len(a) != n*n || len(b) != n*n || len(c) != n*n {
		return false
	}
	rg := rng{s: seed}
	r := make([]float64, n)
	br := make([]float64, n)
	for range rounds {
		for i := range r {
			r[i] = float64(rg.next() & 1)
		}
		mulVec(b, r, br, n)
		for i := range n {
			var abr, cr float64
			ai, ci := a[i*n:(i+1)*n], c[i*n:(i+1)*n]
			for j := range n {
				abr += ai[j] * br[j]
				cr += ci[j] * r[j]
			}
			if abr != cr {
				return false
			}
		}
	}
	return true
}

func mulVec(m, v, out []float64, n int) {
	for i := range n {
		var s float64
		row := m[i*n : (i+1)*n]
		for j, x := range row {
			s += x * v[j]
		}
		out[i] = s
	}
}

// Encode writes c as little-endian int32s (entries are exact integers).
func Encode(c []float64) []byte {
	out := make([]byte, 0, 4*len(c))
	for _, v := range c {
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(v)))
	}
	return out
}

// Decode reads an n x n matrix written by Encode.
func Decode(b []byte, n int) ([]float64, error) {
	if n <= 0 || n > MaxN || len(b) != 4*n*n {
		return nil, fmt.Errorf("%w: %d bytes for n = %d", ErrSize, len(b), n)
	}
	c := make([]float64, n*n)
	for i := range c {
		c[i] = float64(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	return c, nil
}

// Exact reports whether every entry of c is an integer small enough for
// Encode to keep.
func Exact(c []float64) bool {
	for _, v := range c {
		if v != math.Trunc(v) || math.Abs(v) > math.MaxInt32 {
			return false
		}
	}
	return true
}
