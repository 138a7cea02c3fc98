package sha256x16

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSumMatchesStdlib checks every batch size and lengths around the
// 64-byte block and padding boundaries against crypto/sha256.
func TestSumMatchesStdlib(t *testing.T) {
	t.Logf("accelerated: %v", Accelerated())
	r := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 4096, 1 << 16, 1<<20 + 3}
	for n := 1; n <= 2*Lanes+1; n++ {
		msgs := make([][]byte, n)
		for i := range msgs {
			l := lengths[(i+n)%len(lengths)]
			if n%3 == 0 {
				l = 1 << 14 // equal lengths: every lane runs every round
			}
			msgs[i] = make([]byte, l)
			for j := range msgs[i] {
				msgs[i][j] = byte(r.Uint32())
			}
		}
		out := make([][sha256.Size]byte, n)
		Sum(msgs, out)
		for i, m := range msgs {
			if want := sha256.Sum256(m); out[i] != want {
				t.Errorf("batch of %d: Sum of message %d (%d bytes) = %x; want %x", n, i, len(m), out[i], want)
			}
		}
	}
}

func TestSumLanesPartial(t *testing.T) {
	// sumLanes itself (below MinLanes Sum would not use it) with empty lanes.
	for n := 1; n <= Lanes; n++ {
		msgs := make([][]byte, n)
		for i := range msgs {
			msgs[i] = []byte(fmt.Sprintf("message %d of %d, long enough to span more than one block of sixty-four bytes", i, n))
		}
		out := make([][sha256.Size]byte, n)
		sumLanes(msgs, out)
		for i, m := range msgs {
			if want := sha256.Sum256(m); out[i] != want {
				t.Errorf("%d lanes: lane %d = %x; want %x", n, i, out[i], want)
			}
		}
	}
}

func BenchmarkSum16x1MiB(b *testing.B) {
	msgs := make([][]byte, Lanes)
	for i := range msgs {
		msgs[i] = make([]byte, 1<<20)
		for j := range msgs[i] {
			msgs[i][j] = byte(i + j)
		}
	}
	out := make([][sha256.Size]byte, Lanes)
	b.SetBytes(Lanes << 20)
	b.Run("lanes", func(b *testing.B) {
		for b.Loop() {
			Sum(msgs, out)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			for i, m := range msgs {
				out[i] = sha256.Sum256(m)
			}
		}
	})
}
