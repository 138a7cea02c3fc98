package exchange

import (
	"bytes"
	"sort"
	"testing"

	"github.com/gpunode/gpunode/protocol"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
)

// startDHTs starts a kad-dht in server mode with the network's prefix on
// each node, bootstrapped off the first.
func startDHTs(t *testing.T, ns []*node) []testDHT {
	t.Helper()
	boot := peer.AddrInfo{ID: ns[0].h.ID(), Addrs: ns[0].h.Addrs()}
	var out []testDHT
	for _, n := range ns {
		d, err := dht.New(n.h,
			dht.Mode(dht.ModeServer),
			dht.ProtocolPrefix(protocol.DHTPrefix(testNet)),
			dht.BootstrapPeers(boot),
		)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		// Set before any peer connects, so no DHT goroutine reads it yet.
		added := make(chan struct{}, 1)
		prev := d.RoutingTable().PeerAdded
		d.RoutingTable().PeerAdded = func(p peer.ID) {
			prev(p)
			select {
			case added <- struct{}{}:
			default:
			}
		}
		out = append(out, testDHT{d, added})
	}
	return out
}

type testDHT struct {
	*dht.IpfsDHT
	added chan struct{} // signalled when the routing table gains a peer
}

// waitRoutingTables waits until each routing table knows every other node,
// then refreshes it: the refresh before the first provide that DESIGN.md's
// DHT pitfall asks for.
func waitRoutingTables(t *testing.T, dhts []testDHT) {
	t.Helper()
	ctx := testCtx(t)
	for i, d := range dhts {
		for d.RoutingTable().Size() < len(dhts)-1 {
			select {
			case <-d.added:
			case <-ctx.Done():
				t.Fatalf("node %d routing table has %d peers; want %d", i, d.RoutingTable().Size(), len(dhts)-1)
			}
		}
		select {
		case err := <-d.RefreshRoutingTable():
			if err != nil {
				t.Fatalf("node %d refresh: %v", i, err)
			}
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

func TestAnnounceAndFindHolders(t *testing.T) {
	var dhts []testDHT
	ns := newNodesThen(t, 5, func(ns []*node) { dhts = startDHTs(t, ns) })
	waitRoutingTables(t, dhts)
	d := makeDAG(t, 12, 32<<10, 4)
	holders := ns[1:3]
	fetcher, fi := ns[4], 4
	ctx := testCtx(t)
	for i, h := range holders {
		d.load(t, h.bs)
		if err := Announce(ctx, dhts[i+1], d.root); err != nil {
			t.Fatal(err)
		}
	}
	found := FindHolders(ctx, dhts[fi], d.root, fetcher.h.ID(), 10)
	got := make([]string, 0, len(found))
	for _, p := range found {
		got = append(got, p.String())
	}
	want := []string{holders[0].h.ID().String(), holders[1].h.ID().String()}
	sort.Strings(got)
	sort.Strings(want)
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("FindHolders = %v; want %v", got, want)
	}
	// Only the root is announced, not its blocks.
	if blockHolders := FindHolders(ctx, dhts[fi], d.chunks[0], fetcher.h.ID(), 10); len(blockHolders) != 0 {
		t.Errorf("a chunk has providers %v; only roots should be announced", blockHolders)
	}
	if _, err := fetcher.ex.Fetch(ctx, d.root, found); err != nil {
		t.Fatalf("Fetch from found holders: %v", err)
	}
	if !bytes.Equal(d.assemble(t, fetcher.bs), d.data) {
		t.Fatal("fetched file differs from the original")
	}
}
