package node_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
)

// BenchmarkGossip measures sealed messages per second from one node to
// another over loopback TCP, envelope checks included.
func BenchmarkGossip(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := start(b, ctx, testConfig())
	dst := start(b, ctx, testConfig(src.AddrInfo()))
	ts, err := src.JoinTopic("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	td, err := dst.JoinTopic("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := td.Subscribe()
	if err != nil {
		b.Fatal(err)
	}
	for !slices.Contains(ts.Peers(), dst.PeerID()) {
		select {
		case <-ctx.Done():
			b.Fatal("no subscription seen")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Message IDs are content hashes: bodies must differ across the
	// benchmark's repeated runs too.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	// At most window messages in flight, so no queue overflows and drops.
	const window = 256
	tokens := make(chan struct{}, window)
	b.ResetTimer()
	begin := time.Now()
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := sub.Next(ctx); err != nil {
				done <- err
				return
			}
			<-tokens
		}
		done <- nil
	}()
	for i := range b.N {
		tokens <- struct{}{}
		if err := ts.Publish(ctx, protocol.KindPing, note{Text: run + "-" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "msgs/s")
}
