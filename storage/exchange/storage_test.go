package exchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gpunode/gpunode/storage"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// diskNode is a mocknet peer with the real block store on disk.
type diskNode struct {
	h   host.Host
	dir string
	db  *storage.DB
	bs  *storage.Blockstore
	ex  *Exchange
}

func (n *diskNode) open(t *testing.T) {
	t.Helper()
	db, err := storage.Open(filepath.Join(n.dir, "db"), storage.WithLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := storage.NewBlockstore(db, n.dir, storage.WithoutFsync(), storage.WithBlockLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := New(NewHost(n.h, testNet), bs, storage.Links, WithLogger(quietLog), WithStoreVerifies(func(err error) bool {
		return errors.Is(err, storage.ErrCIDMismatch)
	}), WithContentSize(manifestSize))
	if err != nil {
		t.Fatal(err)
	}
	n.db, n.bs, n.ex = db, bs, ex
}

// manifestSize is the content size the real manifest records.
func manifestSize(_ cid.Cid, data []byte) (int64, bool) {
	n, err := storage.DecodeNode(data)
	if err != nil {
		return 0, false
	}
	return int64(n.Size), true
}

// restart closes the exchange and the database and opens them again, as a
// killed and restarted process would.
func (n *diskNode) restart(t *testing.T) {
	t.Helper()
	_ = n.ex.Close()
	if err := n.db.Close(); err != nil {
		t.Fatal(err)
	}
	n.open(t)
}

func newDiskNodes(t *testing.T, count int) []*diskNode {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	var out []*diskNode
	for range count {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		n := &diskNode{h: h, dir: t.TempDir()}
		n.open(t)
		t.Cleanup(func() { _ = n.db.Close() })
		out = append(out, n)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return out
}

func diskIDs(ns ...*diskNode) []peer.ID {
	var out []peer.ID
	for _, n := range ns {
		out = append(out, n.h.ID())
	}
	return out
}

// importRandom adds the same random file to every node (the import is
// deterministic, so they get the same root) and returns it with the root.
func importRandom(t *testing.T, size int, ns ...*diskNode) ([]byte, cid.Cid) {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	var root cid.Cid
	for _, n := range ns {
		r, err := storage.ImportReader(context.Background(), n.bs, "data.bin", bytes.NewReader(data),
			storage.ImportOptions{ChunkSize: 64 << 10, Fanout: 8})
		if err != nil {
			t.Fatal(err)
		}
		if root.Defined() && !r.Equals(root) {
			t.Fatalf("import gave roots %s and %s", root, r)
		}
		root = r
	}
	return data, root
}

func exportSum(t *testing.T, n *diskNode, root cid.Cid) [32]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := storage.Export(context.Background(), n.bs, root, out, storage.ExportOptions{}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestDiskStoreResumeAfterRestart fetches into the real block store, stops
// the fetcher part-way (closing its database as a killed process would),
// restarts it and checks the second fetch transfers only what is missing.
func TestDiskStoreResumeAfterRestart(t *testing.T) {
	ns := newDiskNodes(t, 3)
	a, b, fetcher := ns[0], ns[1], ns[2]
	data, root := importRandom(t, 3<<20, a, b)

	ctx, cancel := context.WithCancel(testCtx(t))
	first, err := fetcher.ex.Fetch(ctx, root, diskIDs(a, b), WithProgress(func(p Progress) {
		if p.Blocks == 20 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Fetch: %v; want context.Canceled", err)
	}
	if first.TotalBytes != int64(len(data)) {
		t.Errorf("interrupted fetch knew total %d bytes; want %d", first.TotalBytes, len(data))
	}
	fetcher.restart(t)
	var last Progress
	second, err := fetcher.ex.Fetch(testCtx(t), root, diskIDs(a, b), WithProgress(func(p Progress) {
		if p.ContentBytes < last.ContentBytes || p.TotalBytes != int64(len(data)) {
			t.Errorf("progress %+v after %+v; want growing content bytes of %d", p, last, len(data))
		}
		last = p
	}))
	if err != nil {
		t.Fatalf("resumed Fetch: %v", err)
	}
	if second.ContentBytes != int64(len(data)) || second.TotalBytes != int64(len(data)) {
		t.Errorf("resumed fetch ended at %d of %d content bytes; want %d of %d", second.ContentBytes, second.TotalBytes, len(data), len(data))
	}
	total := second.KnownBlocks
	if second.SkippedBlocks != first.Blocks || second.Blocks != total-first.Blocks {
		t.Errorf("first fetch stored %d; resumed fetch got %d, skipped %d of %d; want %d and %d",
			first.Blocks, second.Blocks, second.SkippedBlocks, total, total-first.Blocks, first.Blocks)
	}
	if first.Blocks < 20 || first.Blocks >= total {
		t.Errorf("interrupted fetch stored %d of %d blocks", first.Blocks, total)
	}
	if got := exportSum(t, fetcher, root); got != sha256.Sum256(data) {
		t.Fatal("exported file differs from the original")
	}
}

// TestDiskStoreCorruptFileNotServed corrupts a chunk file on one server's
// disk: that server detects it on read and does not serve it, and the
// fetcher gets the chunk from the other server.
func TestDiskStoreCorruptFileNotServed(t *testing.T) {
	ns := newDiskNodes(t, 3)
	a, b, fetcher := ns[0], ns[1], ns[2]
	data, root := importRandom(t, 1<<20, a, b)

	corrupted := 0
	err := filepath.WalkDir(filepath.Join(a.dir, "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(filepath.Dir(p)) == "tmp" {
			return err
		}
		c, perr := cid.Decode(d.Name())
		if perr != nil || c.Prefix().Codec != cid.Raw {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[0] ^= 0xff
		corrupted++
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil || corrupted == 0 {
		t.Fatalf("corrupting chunk files: %v (%d corrupted)", err, corrupted)
	}
	st, err := fetcher.ex.Fetch(testCtx(t), root, diskIDs(a, b))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got := exportSum(t, fetcher, root); got != sha256.Sum256(data) {
		t.Fatal("exported file differs from the original")
	}
	if fetcher.ex.Penalty(a.h.ID()) != 0 {
		t.Error("a server that refused its own corrupt block was penalised")
	}
	if st.PerPeer[b.h.ID()] < int64(corrupted) {
		t.Errorf("honest server sent %d blocks; want at least the %d corrupted on the other", st.PerPeer[b.h.ID()], corrupted)
	}
}

// lyingStore serves corrupted chunks past the real store's verified read,
// and closes lied (once) when it first does.
type lyingStore struct {
	*storage.Blockstore
	once *sync.Once
	lied chan struct{}
}

func (l lyingStore) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	b, err := l.Blockstore.Get(ctx, c)
	if err == nil && c.Prefix().Codec == cid.Raw {
		b[len(b)/3] ^= 0x10
		l.once.Do(func() { close(l.lied) })
	}
	return b, err
}

// gatedStore serves chunks only once open is closed (inner nodes at
// once), so a test can make sure another server is asked for chunks.
type gatedStore struct {
	*storage.Blockstore
	open <-chan struct{}
}

func (g gatedStore) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if c.Prefix().Codec == cid.Raw {
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Blockstore.Get(ctx, c)
}

// TestDiskStoreLiarDetectedByPut: with the store doing the verification
// (WithStoreVerifies), a peer sending bad chunks is still caught, penalised
// and bypassed, and nothing bad is stored. The honest server holds its
// chunks back until the liar has served one, so the liar is asked for
// chunks whichever stream starts first.
func TestDiskStoreLiarDetectedByPut(t *testing.T) {
	ns := newDiskNodes(t, 3)
	liar, honest, fetcher := ns[0], ns[1], ns[2]
	// 64 chunks: more than the honest server's streams hold in flight
	// while it waits (streams x window with the defaults: 16), so the liar
	// is asked for some.
	data, root := importRandom(t, 4<<20, liar, honest)
	lied := make(chan struct{})
	replace := func(n *diskNode, bs Blockstore) {
		_ = n.ex.Close()
		ex, err := New(NewHost(n.h, testNet), bs, storage.Links, WithLogger(quietLog))
		if err != nil {
			t.Fatal(err)
		}
		n.ex = ex
	}
	replace(liar, lyingStore{liar.bs, new(sync.Once), lied})
	replace(honest, gatedStore{honest.bs, lied})
	st, err := fetcher.ex.Fetch(testCtx(t), root, diskIDs(liar, honest))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(st.BadPeers) != 1 || st.BadPeers[0] != liar.h.ID() || fetcher.ex.Penalty(liar.h.ID()) != 1 {
		t.Errorf("bad peers %v, liar penalty %d; want the liar once", st.BadPeers, fetcher.ex.Penalty(liar.h.ID()))
	}
	if got := exportSum(t, fetcher, root); got != sha256.Sum256(data) {
		t.Fatal("exported file differs from the original")
	}
}

// manyCounter counts the blocks a fetch stores through PutMany and through
// Put.
type manyCounter struct {
	*storage.Blockstore
	mu          sync.Mutex // guards the counts
	many, batch int        // blocks stored with PutMany, and the largest batch
	single      int        // blocks stored with Put
}

func (m *manyCounter) PutMany(ctx context.Context, blocks []storage.Block) error {
	err := m.Blockstore.PutMany(ctx, blocks)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.many += len(blocks)
		m.batch = max(m.batch, len(blocks))
	}
	return err
}

func (m *manyCounter) Put(ctx context.Context, c cid.Cid, data []byte) error {
	err := m.Blockstore.Put(ctx, c, data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.single++
	}
	return err
}

// TestDiskStoreFetchUsesPutMany fetches into the real store with
// WithStoreVerifies: the blocks go in batches through PutMany (one batched
// hash and one index transaction each), and the file comes out whole.
func TestDiskStoreFetchUsesPutMany(t *testing.T) {
	ns := newDiskNodes(t, 2)
	server, fetcher := ns[0], ns[1]
	data, root := importRandom(t, 3<<20, server)
	_ = fetcher.ex.Close()
	mc := &manyCounter{Blockstore: fetcher.bs}
	ex, err := New(NewHost(fetcher.h, testNet), mc, storage.Links, WithLogger(quietLog),
		WithStoreVerifies(func(err error) bool { return errors.Is(err, storage.ErrCIDMismatch) }))
	if err != nil {
		t.Fatal(err)
	}
	fetcher.ex = ex
	st, err := ex.Fetch(testCtx(t), root, diskIDs(server))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got := exportSum(t, fetcher, root); got != sha256.Sum256(data) {
		t.Fatal("exported file differs from the original")
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if int64(mc.many+mc.single) != st.Blocks || mc.single != 0 || mc.batch < 2 {
		t.Errorf("fetch of %d blocks stored %d with PutMany (largest batch %d) and %d with Put; want all with PutMany, in batches",
			st.Blocks, mc.many, mc.batch, mc.single)
	}
}
