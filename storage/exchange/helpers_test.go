package exchange

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

const testNet = "devnet"

// quietLog drops the exchange's logs: tests check outcomes, and servers
// may still log after a test has ended.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

var errMemNotFound = errors.New("memstore: not found")

// memStore is an in-memory Blockstore that verifies on Put and Get like the
// real one, copies what it is given, and counts Puts per CID.
type memStore struct {
	mu     sync.Mutex // guards blocks, puts, getHook
	blocks map[cid.Cid][]byte
	puts   map[cid.Cid]int
	// getHook, if set, may replace the bytes Get returns (a lying server)
	// or act on a Get (kill the server mid-transfer).
	getHook func(c cid.Cid, data []byte) []byte
}

func newMemStore() *memStore {
	return &memStore{blocks: make(map[cid.Cid][]byte), puts: make(map[cid.Cid]int)}
}

func (m *memStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blocks[c]
	return ok, nil
}

func (m *memStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	m.mu.Lock()
	b, ok := m.blocks[c]
	hook := m.getHook
	m.mu.Unlock()
	if !ok {
		return nil, errMemNotFound
	}
	if err := verify(c, b); err != nil {
		return nil, err
	}
	if hook != nil {
		b = hook(c, b)
	}
	return b, nil
}

func (m *memStore) Put(_ context.Context, c cid.Cid, data []byte) error {
	if err := verify(c, data); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocks[c] = append([]byte(nil), data...)
	m.puts[c]++
	return nil
}

func (m *memStore) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blocks)
}

func (m *memStore) putCounts() map[cid.Cid]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[cid.Cid]int, len(m.puts))
	for c, n := range m.puts {
		out[c] = n
	}
	return out
}

// testLinks is a LinksFunc for the test DAG: a dag-cbor node is a CBOR list
// of links.
func testLinks(c cid.Cid, data []byte) ([]cid.Cid, error) {
	if c.Prefix().Codec == cid.Raw {
		return nil, nil
	}
	var ls []protocol.CID
	if err := protocol.Unmarshal(data, &ls); err != nil {
		return nil, err
	}
	out := make([]cid.Cid, len(ls))
	for i, l := range ls {
		out[i] = l.Cid
	}
	return out, nil
}

// testDAG is a file split into raw chunks under a two-level tree of list
// nodes (so inner nodes arrive mid-fetch, not only the root).
type testDAG struct {
	root   cid.Cid
	chunks []cid.Cid // in file order
	blocks map[cid.Cid][]byte
	data   []byte
}

func makeDAG(t testing.TB, nChunks, chunkSize, fanout int) *testDAG {
	t.Helper()
	d := &testDAG{blocks: make(map[cid.Cid][]byte), data: make([]byte, nChunks*chunkSize)}
	if _, err := rand.Read(d.data); err != nil {
		t.Fatal(err)
	}
	var inner []cid.Cid
	for i := 0; i < nChunks; i += fanout {
		var ls []protocol.CID
		for j := i; j < min(i+fanout, nChunks); j++ {
			chunk := d.data[j*chunkSize : (j+1)*chunkSize]
			c := protocol.BlockCID(chunk)
			d.blocks[c] = chunk
			d.chunks = append(d.chunks, c)
			ls = append(ls, protocol.NewCID(c))
		}
		b := protocol.MustMarshal(ls)
		c := protocol.DagCBORCID(b)
		d.blocks[c] = b
		inner = append(inner, c)
	}
	var ls []protocol.CID
	for _, c := range inner {
		ls = append(ls, protocol.NewCID(c))
	}
	b := protocol.MustMarshal(ls)
	d.root = protocol.DagCBORCID(b)
	d.blocks[d.root] = b
	return d
}

func (d *testDAG) load(t testing.TB, m *memStore) {
	t.Helper()
	for c, b := range d.blocks {
		if err := m.Put(context.Background(), c, b); err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	clear(m.puts)
	m.mu.Unlock()
}

// assemble reads the file back from a store in chunk order.
func (d *testDAG) assemble(t testing.TB, m *memStore) []byte {
	t.Helper()
	var out []byte
	for _, c := range d.chunks {
		b, err := m.Get(context.Background(), c)
		if err != nil {
			t.Fatalf("chunk %s: %v", c, err)
		}
		out = append(out, b...)
	}
	return out
}

type node struct {
	h  host.Host
	bs *memStore
	ex *Exchange
}

// newNodes starts n connected mocknet peers, each with an exchange.
func newNodes(t *testing.T, n int, opts ...Option) []*node {
	return newNodesThen(t, n, nil, opts...)
}

// newNodesThen is newNodes with a hook run before the peers connect (to
// start services that learn of peers as they connect).
func newNodesThen(t *testing.T, n int, beforeConnect func([]*node), opts ...Option) []*node {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	var out []*node
	for range n {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		bs := newMemStore()
		ex, err := New(NewHost(h, testNet), bs, testLinks, append([]Option{WithLogger(quietLog)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &node{h: h, bs: bs, ex: ex})
	}
	if beforeConnect != nil {
		beforeConnect(out)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ids(ns ...*node) []peer.ID {
	var out []peer.ID
	for _, n := range ns {
		out = append(out, n.h.ID())
	}
	return out
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func checkOncePerBlock(t *testing.T, m *memStore, d *testDAG) {
	t.Helper()
	puts := m.putCounts()
	for c := range d.blocks {
		if puts[c] > 1 {
			t.Errorf("block %s stored %d times; want at most once", c, puts[c])
		}
	}
	if got, want := m.len(), len(d.blocks); got != want {
		t.Errorf("store holds %d blocks; want %d", got, want)
	}
}

func fmtPeers(m map[peer.ID]int64) string { return fmt.Sprint(m) }
