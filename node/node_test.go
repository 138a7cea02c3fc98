package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/protocol"
)

const net = "nodetest"

type note struct {
	Text string `cbor:"1,keyasint"`
}

func testConfig(bootstrap ...peer.AddrInfo) node.Config {
	var bs []string
	for _, ai := range bootstrap {
		addrs, err := peer.AddrInfoToP2pAddrs(&ai)
		if err != nil {
			panic(err)
		}
		for _, a := range addrs {
			bs = append(bs, a.String())
		}
	}
	return node.Config{
		Network:          net,
		ListenAddrs:      []string{"/ip4/127.0.0.1/tcp/0"},
		DisableQUIC:      true,
		Bootstrap:        bs,
		BootstrapTimeout: node.Duration(60 * time.Second),
		Logger:           slog.New(slog.DiscardHandler),
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

func start(t testing.TB, ctx context.Context, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(ctx, cfg, newKey(t))
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitUntil(t *testing.T, ctx context.Context, cond func() bool, what string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting: %s", what)
		case <-tick.C:
		}
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTopicVerdicts: a remote node's Reject and Ignore verdicts keep
// messages from its application; Accept delivers them with the right
// sender; the publisher's own subscription gets all of its messages.
func TestTopicVerdicts(t *testing.T) {
	ctx := testCtx(t)
	a := start(t, ctx, testConfig())
	b := start(t, ctx, testConfig(a.AddrInfo()))

	judge := func(_ context.Context, from peer.ID, env *protocol.Envelope) node.Verdict {
		var n note
		if err := env.Decode(&n); err != nil {
			return node.Reject
		}
		switch n.Text {
		case "reject":
			return node.Reject
		case "ignore":
			return node.Ignore
		}
		return node.Accept
	}
	ta, err := a.JoinTopic("verdicts", judge)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.JoinTopic("verdicts", nil) // b accepts everything it sends
	if err != nil {
		t.Fatal(err)
	}
	sa, err := ta.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := tb.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool { return slices.Contains(tb.Peers(), a.PeerID()) }, "b sees a's subscription")

	texts := []string{"reject", "ignore", "hello"}
	for _, s := range texts {
		if err := tb.Publish(ctx, protocol.KindPing, note{s}); err != nil {
			t.Fatalf("publish %q: %v", s, err)
		}
	}
	for _, want := range texts {
		m, err := sb.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got note
		if err := m.Envelope.Decode(&got); err != nil || got.Text != want || !m.Local || m.From != b.PeerID() {
			t.Fatalf("b's own subscription: %+v local=%v from=%s err=%v; want %q, local, from b", got, m.Local, m.From, err, want)
		}
	}
	waitUntil(t, ctx, func() bool { s := ta.Stats(); return s.Accepted+s.Rejected+s.Ignored == 3 }, "a judges all three")
	if s := ta.Stats(); s != (node.TopicStats{Accepted: 1, Rejected: 1, Ignored: 1}) {
		t.Fatalf("a's stats %+v; want one of each", s)
	}
	m, err := sa.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got note
	author, _ := m.Envelope.AuthorID()
	if err := m.Envelope.Decode(&got); err != nil || got.Text != "hello" || m.Local || m.From != b.PeerID() || m.Publisher != b.PeerID() || author != b.PeerID() {
		t.Fatalf("a received %+v from %s (publisher %s, author %s, local %v); want hello from b", got, m.From, m.Publisher, author, m.Local)
	}
}

// TestPublishRefusedLocally: what the node's own validators refuse is not
// published, and Publish says why.
func TestPublishRefusedLocally(t *testing.T) {
	ctx := testCtx(t)
	a := start(t, ctx, testConfig())
	tp, err := a.JoinTopic("local", func(context.Context, peer.ID, *protocol.Envelope) node.Verdict { return node.Ignore })
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Publish(ctx, protocol.KindPing, note{"x"}); err == nil {
		t.Error("Publish succeeded although the node's validator ignores everything")
	}
	other, err := a.JoinTopic("chain", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := protocol.Seal(a.Key(), "some-other-chain", protocol.KindPing, time.Now(), note{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.PublishRaw(ctx, data); err == nil {
		t.Error("PublishRaw of an envelope for another chain succeeded")
	}
	if err := other.Publish(ctx, protocol.Kind("no-such-kind"), note{"x"}); !errors.Is(err, protocol.ErrUnknownKind) {
		t.Errorf("Publish of an unknown kind = %v, want ErrUnknownKind", err)
	}
	if s := other.Stats(); s.Rejected != 1 || s.Accepted != 0 {
		t.Errorf("stats %+v; want the foreign-chain envelope rejected", s)
	}
}

func TestJoinTopicErrors(t *testing.T) {
	ctx := testCtx(t)
	a := start(t, ctx, testConfig())
	for _, name := range []string{"", "a/b", "with space"} {
		if _, err := a.JoinTopic(name, nil); !errors.Is(err, node.ErrTopicName) {
			t.Errorf("JoinTopic(%q) = %v, want ErrTopicName", name, err)
		}
	}
	tp, err := a.JoinTopic(protocol.TopicTxs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp.FullName() != protocol.Topic(net, protocol.TopicTxs) {
		t.Errorf("FullName %q, want %q", tp.FullName(), protocol.Topic(net, protocol.TopicTxs))
	}
	if _, err := a.JoinTopic(protocol.TopicTxs, nil); !errors.Is(err, node.ErrTopicJoined) {
		t.Errorf("second JoinTopic = %v, want ErrTopicJoined", err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Topic.Close: %v", err)
	}
	if _, err := sub.Next(ctx); err == nil {
		t.Error("Next on a closed topic's subscription succeeded")
	}
	if _, err := tp.Subscribe(); !errors.Is(err, node.ErrTopicClosed) {
		t.Errorf("Subscribe on closed topic = %v, want ErrTopicClosed", err)
	}
	if _, err := a.JoinTopic(protocol.TopicTxs, nil); err != nil {
		t.Errorf("rejoin after Close: %v", err)
	}
}

func TestStreamProtocol(t *testing.T) {
	ctx := testCtx(t)
	a := start(t, ctx, testConfig())
	b := start(t, ctx, testConfig(a.AddrInfo()))
	a.SetStreamHandler("echo", func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	s, err := b.NewStream(ctx, a.PeerID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Protocol(), protocol.StreamProtocol(net, "echo"); got != want {
		t.Errorf("stream protocol %s, want %s", got, want)
	}
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	a.RemoveStreamHandler("echo")
	for _, name := range []string{"nothing-here", "echo"} {
		if err := roundTrip(ctx, b, a.PeerID(), name); err == nil {
			t.Errorf("exchange on unserved protocol %q succeeded", name)
		}
	}
}

// roundTrip opens a stream and exchanges a byte; protocol negotiation may
// be lazy, so a refusal can surface on the first read rather than at open.
func roundTrip(ctx context.Context, n *node.Node, p peer.ID, name string) error {
	s, err := n.NewStream(ctx, p, name)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Write([]byte{1}); err != nil {
		return err
	}
	s.CloseWrite()
	_, err = io.ReadAll(s)
	return err
}

// TestDHTModesAndBootstrap: a client-mode node uses the DHT but is not in
// anyone's table; our prefix replaces the IPFS one; only configured
// bootstrap peers are dialled.
func TestDHTModesAndBootstrap(t *testing.T) {
	ctx := testCtx(t)
	a := start(t, ctx, testConfig())
	b := start(t, ctx, testConfig(a.AddrInfo()))
	ccfg := testConfig(a.AddrInfo())
	ccfg.DHTMode = node.DHTClient
	c := start(t, ctx, ccfg)
	loner := start(t, ctx, testConfig())

	kad := protocol.DHTPrefix(net) + "/kad/1.0.0"
	if got := a.DHT().Mode(); got != dht.ModeServer {
		t.Errorf("default DHT mode %v, want server", got)
	}
	if got := c.DHT().Mode(); got != dht.ModeClient {
		t.Errorf("client node's DHT mode %v, want client", got)
	}
	if !slices.Contains(a.Host().Mux().Protocols(), kad) {
		t.Errorf("server does not speak %s: %v", kad, a.Host().Mux().Protocols())
	}
	for _, n := range []*node.Node{a, c} {
		if slices.Contains(n.Host().Mux().Protocols(), "/ipfs/kad/1.0.0") {
			t.Error("node speaks the public IPFS DHT protocol")
		}
	}
	if slices.Contains(c.Host().Mux().Protocols(), kad) {
		t.Error("client-mode node answers DHT queries")
	}

	if !slices.Contains(b.RoutingTablePeers(), a.PeerID()) || !slices.Contains(c.RoutingTablePeers(), a.PeerID()) {
		t.Errorf("bootstrap peer missing from routing tables: b %v, c %v", b.RoutingTablePeers(), c.RoutingTablePeers())
	}
	waitUntil(t, ctx, func() bool { return slices.Contains(a.RoutingTablePeers(), b.PeerID()) }, "server b enters a's routing table")
	if slices.Contains(a.RoutingTablePeers(), c.PeerID()) || slices.Contains(b.RoutingTablePeers(), c.PeerID()) {
		t.Error("client-mode node is in a routing table")
	}

	if loner.ConnectedPeers() != 0 || loner.RoutingTableSize() != 0 {
		t.Errorf("node without bootstrap peers has %d connections, %d table entries", loner.ConnectedPeers(), loner.RoutingTableSize())
	}
	public := map[peer.ID]bool{}
	for _, ai := range dht.GetDefaultBootstrapPeerAddrInfos() {
		public[ai.ID] = true
	}
	for _, n := range []*node.Node{a, b, c, loner} {
		for _, p := range n.Host().Peerstore().Peers() {
			if public[p] {
				t.Errorf("%s knows public IPFS bootstrapper %s", n.PeerID(), p)
			}
		}
	}
}

// TestRestartKeepsIdentity: a node restarted from its key file has the same
// peer ID; Close is idempotent and a closed node refuses work.
func TestRestartKeepsIdentity(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), node.KeyFileName)
	key, err := node.InitKey(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := node.New(ctx, testConfig(), key)
	if err != nil {
		t.Fatal(err)
	}
	id := first.PeerID()
	if want, _ := node.PeerIDFromKey(key); id != want {
		t.Fatalf("node ID %s, key's ID %s", id, want)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := first.JoinTopic("x", nil); !errors.Is(err, node.ErrClosed) {
		t.Errorf("JoinTopic after Close = %v, want ErrClosed", err)
	}

	loaded, err := node.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := node.New(ctx, testConfig(), loaded)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.PeerID() != id {
		t.Fatalf("restarted peer ID %s, want %s", second.PeerID(), id)
	}
	for _, a := range second.Addrs() {
		if p, err := peer.AddrInfoFromP2pAddr(a); err != nil || p.ID != id {
			t.Errorf("address %s does not end in /p2p/%s", a, id)
		}
	}
}

func TestNewRejects(t *testing.T) {
	ctx := testCtx(t)
	if _, err := node.New(ctx, node.Config{Network: "Bad Net"}, newKey(t)); !errors.Is(err, node.ErrConfig) {
		t.Errorf("New with a bad network = %v, want ErrConfig", err)
	}
	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.New(ctx, testConfig(), secp); !errors.Is(err, node.ErrKeyType) {
		t.Errorf("New with a secp256k1 key = %v, want ErrKeyType", err)
	}
}

func TestCheckFresh(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, tc := range []struct {
		offset time.Duration
		want   node.Verdict
	}{
		{0, node.Accept},
		{-time.Minute, node.Accept},
		{-time.Minute - time.Millisecond, node.Ignore},
		{5 * time.Second, node.Accept},
		{5*time.Second + time.Millisecond, node.Ignore},
	} {
		env := &protocol.Envelope{Timestamp: now.Add(tc.offset).UnixMilli()}
		if got := node.CheckFresh(env, now, time.Minute, 5*time.Second); got != tc.want {
			t.Errorf("CheckFresh(now%+v) = %v, want %v", tc.offset, got, tc.want)
		}
	}
}

// TestAllFeaturesQUIC: relay service and client, hole punching, explicit
// resource limits and QUIC together start, and a second node reaches the
// first over QUIC alone. (mDNS is left out: it multicasts beyond loopback.)
func TestAllFeaturesQUIC(t *testing.T) {
	ctx := testCtx(t)
	cfg := testConfig()
	cfg.DisableQUIC = false
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.RelayService = true
	cfg.RelayClient = true
	cfg.Resources = node.ResourceConfig{MaxConns: 1000, MaxStreams: 4000, MaxMemoryMiB: 256}
	a := start(t, ctx, cfg)

	bcfg := testConfig(a.AddrInfo())
	bcfg.DisableQUIC = false
	bcfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	b := start(t, ctx, bcfg)
	if !slices.Contains(b.RoutingTablePeers(), a.PeerID()) {
		t.Fatalf("b's routing table %v lacks a", b.RoutingTablePeers())
	}
	conns := b.Host().Network().ConnsToPeer(a.PeerID())
	if len(conns) == 0 {
		t.Fatal("b not connected to a")
	}
	for _, c := range conns {
		if !strings.Contains(c.RemoteMultiaddr().String(), "/quic-v1") {
			t.Errorf("connection over %s, want QUIC", c.RemoteMultiaddr())
		}
	}
}
