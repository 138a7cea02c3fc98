package bft_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus/bft"
)

// BenchmarkHeight decides one height among n validators whose machines talk
// directly (no network, Ed25519 signing, no verification): the consensus
// core's own cost per block.
func BenchmarkHeight(b *testing.B) {
	for _, n := range []int{4, 10} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var vals []bft.Validator
			for i := range n {
				id := fmt.Sprintf("v%d", i)
				vals = append(vals, bft.Validator{ID: id, PubKey: testKey(id).Public().(ed25519.PublicKey), Power: 1})
			}
			vs, err := bft.NewValidatorSet(vals)
			if err != nil {
				b.Fatal(err)
			}
			ms := make([]*bft.Machine, n)
			for i, v := range vals {
				if ms[i], err = bft.New(bft.Config{ChainID: "bench", ID: v.ID, Signer: edSigner(testKey(v.ID)), App: fuzzApp{}}); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			b.ResetTimer()
			for h := uint64(1); h <= uint64(b.N); h++ {
				for _, m := range ms {
					if err := m.StartHeight(h, vs, nil); err != nil {
						b.Fatal(err)
					}
				}
				decided := 0
				for decided < n {
					progress := false
					for i, m := range ms {
						rd := m.Ready()
						if rd.Commit != nil {
							decided++
						}
						for _, msg := range rd.Messages {
							progress = true
							for j, other := range ms {
								if j != i {
									_ = other.Step(msg)
								}
							}
						}
					}
					if !progress && decided < n {
						b.Fatalf("height %d stalled", h)
					}
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/height")
		})
	}
}
