package p2p_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/gpunode/gpunode/node"
)

const testNetwork = "p2ptest"

// pingBody is the payload of test messages.
type pingBody struct {
	Seq  uint64 `cbor:"1,keyasint"`
	Note string `cbor:"2,keyasint"`
}

// testConfig listens on loopback TCP only (QUIC off saves sockets and
// goroutines with many nodes in one process).
func testConfig(bootstrap ...string) node.Config {
	return node.Config{
		Network:     testNetwork,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		DisableQUIC: true,
		// Generous: tests share two cores with other builds.
		BootstrapTimeout: node.Duration(60 * time.Second),
		Bootstrap:        bootstrap,
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		PubSub:           node.PubSubConfig{ScoreInspectPeriod: node.Duration(100 * time.Millisecond)},
	}
}

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startNode(t testing.TB, ctx context.Context, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(ctx, cfg, newKey(t))
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

// waitUntil polls cond until it holds, failing the test with what() when
// ctx ends first.
func waitUntil(t testing.TB, ctx context.Context, cond func() bool, what func() string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out: %s", what())
		case <-tick.C:
		}
	}
}
