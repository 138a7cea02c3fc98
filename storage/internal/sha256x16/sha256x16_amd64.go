//go:build amd64 && gc && !purego

package sha256x16

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"

	"golang.org/x/sys/cpu"
)

// The vector code uses AVX-512 F, BW, DQ and VL; x/sys/cpu also checks that
// the OS saves the AVX-512 state.
var accelerated = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL

// sha256X16Avx512 runs SHA-256 compression over the 64-byte blocks of the
// 16 inputs. digests holds the 16 states, word w of lane i at (i+16w)*4;
// mask has one entry per 64-byte round, whose bit i says lane i still has
// a block in that round.
//
//go:noescape
func sha256X16Avx512(digests *[512]byte, scratch *[512]byte, table *[512]uint64, mask []uint64, inputs [16][]byte)

// yieldSlice is how many bytes of each lane are hashed between yields.
const yieldSlice = 64 << 10

var initState = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// sumLanes hashes up to 16 messages in two vector passes: their whole
// 64-byte blocks, then each one's padded tail (one or two blocks).
func sumLanes(msgs [][]byte, out [][sha256.Size]byte) {
	var digests, scratch [512]byte
	for i := range Lanes {
		for w, v := range initState {
			binary.LittleEndian.PutUint32(digests[(i+16*w)*4:], v)
		}
	}
	var body, tails [16][]byte
	var tailBuf [16][2 * sha256.BlockSize]byte
	for i, m := range msgs {
		n := len(m) &^ (sha256.BlockSize - 1)
		body[i] = m[:n]
		t := tailBuf[i][:0]
		t = append(t, m[n:]...)
		t = append(t, 0x80)
		for len(t)%sha256.BlockSize != sha256.BlockSize-8 {
			t = append(t, 0)
		}
		t = binary.BigEndian.AppendUint64(t, uint64(len(m))<<3)
		tails[i] = t
	}
	// The assembly cannot be preempted; hashing 16 MiB in one call would
	// hold a processor for milliseconds and, on a machine with few cores,
	// starve the goroutines that feed the batch (the network's read loops).
	// The state carries over, so the bodies go through in slices.
	for {
		var slice [16][]byte
		more := false
		for i, b := range body {
			n := min(len(b), yieldSlice)
			slice[i], body[i] = b[:n], b[n:]
			more = more || len(body[i]) > 0
		}
		run(&digests, &scratch, slice)
		if !more {
			break
		}
		runtime.Gosched()
	}
	run(&digests, &scratch, tails)
	for i := range msgs {
		for w := range 8 {
			v := binary.LittleEndian.Uint32(digests[(i+16*w)*4:])
			binary.BigEndian.PutUint32(out[i][w*4:], v)
		}
	}
}

// run passes the inputs (multiples of 64 bytes) through the vector code.
// Lanes with shorter inputs drop out of the mask once they are done.
func run(digests, scratch *[512]byte, inputs [16][]byte) {
	rounds := 0
	for _, in := range inputs {
		rounds = max(rounds, len(in)/sha256.BlockSize)
	}
	if rounds == 0 {
		return
	}
	mask := make([]uint64, rounds)
	for r := range mask {
		var m uint64
		for i, in := range inputs {
			if len(in)/sha256.BlockSize > r {
				m |= 1 << i
			}
		}
		mask[r] = m
	}
	sha256X16Avx512(digests, scratch, &table, mask, inputs)
}
