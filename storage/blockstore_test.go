package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// newTestBlockstore returns a block store over an in-memory database and a
// temporary directory, and that directory.
func newTestBlockstore(t testing.TB, opts ...BlockstoreOption) (*Blockstore, string) {
	t.Helper()
	return newTestBlockstoreOn(t, "mem", opts...)
}

// newTestBlockstoreOn is newTestBlockstore over a database of the given kind
// ("mem" or "disk").
func newTestBlockstoreOn(t testing.TB, kind string, opts ...BlockstoreOption) (*Blockstore, string) {
	t.Helper()
	db := openTestDB(t, kind)
	dir := t.TempDir()
	b, err := NewBlockstore(db, dir, append([]BlockstoreOption{WithBlockLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func rawBlock(s string) (cid.Cid, []byte) {
	return protocol.BlockCID([]byte(s)), []byte(s)
}

// cborBlock encodes a dag-cbor block linking to links.
func cborBlock(t testing.TB, links ...cid.Cid) (cid.Cid, []byte) {
	t.Helper()
	ls := make([]protocol.CID, len(links))
	for i, l := range links {
		ls[i] = protocol.NewCID(l)
	}
	data, err := protocol.Marshal(map[string]any{"links": ls})
	if err != nil {
		t.Fatal(err)
	}
	return protocol.DagCBORCID(data), data
}

func mustPutBlock(t testing.TB, b *Blockstore, c cid.Cid, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), c, data); err != nil {
		t.Fatalf("Put(%s): %v", c, err)
	}
}

func has(t testing.TB, b *Blockstore, c cid.Cid) bool {
	t.Helper()
	ok, err := b.Has(context.Background(), c)
	if err != nil {
		t.Fatalf("Has(%s): %v", c, err)
	}
	return ok
}

// countRefs returns how many reference-count entries the store holds.
func countRefs(t testing.TB, b *Blockstore) int {
	t.Helper()
	n := 0
	if err := b.refs.Iterate(nil, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func testBlockstorePutGet(t *testing.T, kind string) {
	ctx := context.Background()
	b, dir := newTestBlockstoreOn(t, kind)
	rc, rdata := rawBlock("hello block")
	mc, mdata := cborBlock(t, rc)
	for _, blk := range []struct {
		c    cid.Cid
		data []byte
	}{{rc, rdata}, {mc, mdata}} {
		if has(t, b, blk.c) {
			t.Fatalf("Has(%s) before Put = true", blk.c)
		}
		mustPutBlock(t, b, blk.c, blk.data)
		mustPutBlock(t, b, blk.c, blk.data) // idempotent
		got, err := b.Get(ctx, blk.c)
		if err != nil || !bytes.Equal(got, blk.data) {
			t.Fatalf("Get(%s) = %q, %v; want %q", blk.c, got, err, blk.data)
		}
		if n, err := b.Size(ctx, blk.c); err != nil || n != len(blk.data) {
			t.Fatalf("Size(%s) = %d, %v; want %d", blk.c, n, err, len(blk.data))
		}
		if !has(t, b, blk.c) {
			t.Fatalf("Has(%s) after Put = false", blk.c)
		}
	}
	h := rc.Hash()
	want := filepath.Join(dir, "blocks", fmt.Sprintf("%02x", h[len(h)-32]), rc.String())
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, rdata) {
		t.Fatalf("block file %s = %q, %v", want, got, err)
	}
	// The manifest's child is referenced once despite the repeated Put.
	if n, _ := b.refsOf(rc); n != 1 {
		t.Fatalf("refcount of linked chunk = %d; want 1", n)
	}
	if _, err := b.Get(ctx, protocol.BlockCID([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(absent) err = %v; want ErrNotFound", err)
	}
	if _, err := b.Size(ctx, protocol.BlockCID([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Size(absent) err = %v; want ErrNotFound", err)
	}
}

func (b *Blockstore) refsOf(c cid.Cid) (int64, error) {
	var n int64
	err := b.db.View(func(tx *Txn) error {
		var err error
		n, err = getRef(tx, b.refs, c)
		return err
	})
	return n, err
}

func TestBlockstoreRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	rc, rdata := rawBlock("data")
	sha512, _ := mh.Sum(rdata, mh.SHA2_512, -1)
	v0, _ := mh.Sum(rdata, mh.SHA2_256, -1)
	badCBOR := []byte{0x82, 0x01} // array of 2 with one item
	big := make([]byte, MaxBlockSize+1)
	// A dag-cbor block linking to a CIDv0, by hand: tag 42 over the bytes
	// 0x00 + CID.
	inner := append([]byte{0}, cid.NewCidV0(v0).Bytes()...)
	linkToV0Data := append([]byte{0xd8, 42, 0x58, byte(len(inner))}, inner...)
	linkToV0 := protocol.DagCBORCID(linkToV0Data)
	many := make([]cid.Cid, MaxLinks+1)
	for i := range many {
		many[i] = rc
	}
	tooMany, tooManyData := cborBlock(t, many...)
	cases := []struct {
		name string
		c    cid.Cid
		data []byte
		want error
	}{
		{"wrong data", rc, []byte("DATA"), ErrCIDMismatch},
		{"undefined CID", cid.Undef, rdata, ErrUnsupportedCID},
		{"CIDv0", cid.NewCidV0(v0), rdata, ErrUnsupportedCID},
		{"sha2-512", cid.NewCidV1(cid.Raw, sha512), rdata, ErrUnsupportedCID},
		{"dag-pb codec", cid.NewCidV1(cid.DagProtobuf, v0), rdata, ErrUnsupportedCID},
		{"too large", protocol.BlockCID(big), big, ErrBlockTooLarge},
		{"malformed dag-cbor", protocol.DagCBORCID(badCBOR), badCBOR, ErrMalformedBlock},
		{"link to unsupported CID", linkToV0, linkToV0Data, ErrMalformedBlock},
		{"more than MaxLinks links", tooMany, tooManyData, ErrMalformedBlock},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, dir := newTestBlockstore(t)
			err := b.Put(ctx, tc.c, tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put err = %v; want %v", err, tc.want)
			}
			if tc.c.Defined() {
				if ok, _ := b.Has(ctx, tc.c); ok {
					t.Fatal("rejected block is indexed")
				}
			}
			if n := countFiles(t, filepath.Join(dir, "blocks")); n != 0 {
				t.Fatalf("rejected Put left %d files", n)
			}
		})
	}
}

func countFiles(t testing.TB, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBlockstoreConformance runs the block store's core cases over both
// kinds of database.
func TestBlockstoreConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, kind string)
	}{
		{"put get has size", testBlockstorePutGet},
		{"corruption", testBlockstoreCorruption},
		{"pin and gc", testPinAndGC},
	}
	for _, kind := range []string{"mem", "disk"} {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) { tc.run(t, kind) })
		}
	}
}

// testBlockstoreCorruption damages block files on disk in several ways: each
// must be detected on read, reported, never returned, and the block must
// read as missing so a fetcher fetches it again.
func testBlockstoreCorruption(t *testing.T, kind string) {
	ctx := context.Background()
	damage := map[string]func(path string) error{
		"flipped byte": func(p string) error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 0x40
			return os.WriteFile(p, data, 0o644)
		},
		"truncated": func(p string) error { return os.Truncate(p, 3) },
		"grown":     func(p string) error { return appendFile(p, []byte("extra")) },
		"deleted":   os.Remove,
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			var reported []cid.Cid
			b, _ := newTestBlockstoreOn(t, kind, WithCorruptionHandler(func(c cid.Cid, err error) {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("handler got %v; want ErrCorrupt", err)
				}
				reported = append(reported, c)
			}))
			chunk, data := rawBlock("a chunk of model weights")
			parent, pdata := cborBlock(t, chunk)
			mustPutBlock(t, b, chunk, data)
			mustPutBlock(t, b, parent, pdata)
			if err := fn(b.path(chunk)); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, chunk)
			if !errors.Is(err, ErrCorrupt) || got != nil {
				t.Fatalf("Get(corrupt) = %q, %v; want nil, ErrCorrupt", got, err)
			}
			if len(reported) != 1 || reported[0] != chunk {
				t.Fatalf("corruption reported for %v; want [%s]", reported, chunk)
			}
			if has(t, b, chunk) {
				t.Fatal("Has(corrupt block) = true; want false so it is fetched again")
			}
			if _, err := b.Get(ctx, chunk); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second Get err = %v; want ErrNotFound", err)
			}
			// Refetch: the good bytes are accepted and served again, and the
			// parent's reference was kept throughout.
			mustPutBlock(t, b, chunk, data)
			if got, err := b.Get(ctx, chunk); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get after refetch = %q, %v", got, err)
			}
			if n, _ := b.refsOf(chunk); n != 1 {
				t.Fatalf("refcount after refetch = %d; want 1", n)
			}
		})
	}
}

func appendFile(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestCorruptManifestReleasesReferences drops a corrupt dag-cbor block and
// checks that its children's references went with it, so they can still be
// collected; refetching restores them.
func TestCorruptManifestReleasesReferences(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t)
	chunk, data := rawBlock("leaf")
	parent, pdata := cborBlock(t, chunk, chunk) // the same chunk twice
	mustPutBlock(t, b, chunk, data)
	mustPutBlock(t, b, parent, pdata)
	if n, _ := b.refsOf(chunk); n != 2 {
		t.Fatalf("refcount = %d; want 2", n)
	}
	if err := os.WriteFile(b.path(parent), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, parent); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get err = %v; want ErrCorrupt", err)
	}
	if n, _ := b.refsOf(chunk); n != 0 {
		t.Fatalf("refcount after dropping the parent = %d; want 0", n)
	}
	mustPutBlock(t, b, parent, pdata)
	if n, _ := b.refsOf(chunk); n != 2 {
		t.Fatalf("refcount after refetching the parent = %d; want 2", n)
	}
}

func testPinAndGC(t *testing.T, kind string) {
	ctx := context.Background()
	b, dir := newTestBlockstoreOn(t, kind)
	shared, sdata := rawBlock("shared chunk")
	onlyA, adata := rawBlock("only in A")
	onlyB, bdata := rawBlock("only in B")
	for _, blk := range [][2]any{{shared, sdata}, {onlyA, adata}, {onlyB, bdata}} {
		mustPutBlock(t, b, blk[0].(cid.Cid), blk[1].([]byte))
	}
	midA, midAData := cborBlock(t, shared, onlyA)
	rootA, rootAData := cborBlock(t, midA)
	rootB, rootBData := cborBlock(t, shared, onlyB)
	mustPutBlock(t, b, midA, midAData)
	mustPutBlock(t, b, rootA, rootAData)
	mustPutBlock(t, b, rootB, rootBData)
	loose, ldata := rawBlock("nobody links me")
	mustPutBlock(t, b, loose, ldata)
	// An orphan file (as a crash between write and index would leave) and a
	// stale temporary file.
	orphan, odata := rawBlock("orphan")
	if err := os.MkdirAll(filepath.Dir(b.path(orphan)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.path(orphan), odata, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocks", "tmp", "put-stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Restart the block store, as after the crash that left them.
	b, err := NewBlockstore(b.db, dir, WithBlockLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}

	if err := b.Pin(ctx, rootA); err != nil {
		t.Fatal(err)
	}
	if err := b.Pin(ctx, rootB); err != nil {
		t.Fatal(err)
	}
	if err := b.Pin(ctx, rootB); err != nil {
		t.Fatalf("second Pin: %v", err)
	}
	pins, err := b.Pins(ctx)
	if err != nil || len(pins) != 2 {
		t.Fatalf("Pins = %v, %v; want 2 roots", pins, err)
	}
	st, err := b.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 1 || st.Bytes != int64(len(ldata)) || st.Orphans != 2 {
		t.Fatalf("first GC = %+v; want 1 block of %d bytes, 2 orphans", st, len(ldata))
	}
	for _, c := range []cid.Cid{shared, onlyA, onlyB, midA, rootA, rootB} {
		if !has(t, b, c) {
			t.Fatalf("GC removed %s, which a pinned root reaches", c)
		}
	}
	if has(t, b, loose) {
		t.Fatal("GC kept an unpinned, unreferenced block")
	}

	if err := b.Unpin(ctx, rootB); err != nil {
		t.Fatal(err)
	}
	if err := b.Unpin(ctx, rootB); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("second Unpin err = %v; want ErrNotPinned", err)
	}
	st, err = b.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 2 {
		t.Fatalf("GC after unpinning B removed %d blocks; want 2 (rootB, onlyB)", st.Blocks)
	}
	if has(t, b, rootB) || has(t, b, onlyB) || !has(t, b, shared) {
		t.Fatal("GC after unpinning B: want rootB and onlyB gone, the shared chunk kept")
	}

	if err := b.Unpin(ctx, rootA); err != nil {
		t.Fatal(err)
	}
	if st, err = b.GC(ctx); err != nil || st.Blocks != 4 {
		t.Fatalf("GC after unpinning all = %+v, %v; want 4 blocks", st, err)
	}
	if n := countFiles(t, filepath.Join(dir, "blocks")); n != 0 {
		t.Fatalf("%d files left after collecting everything", n)
	}
	if n := countRefs(t, b); n != 0 {
		t.Fatalf("%d reference counts left after collecting everything", n)
	}
}

// TestPinBeforeFetch pins a root that is not held yet, as a fetcher does,
// then stores the DAG top-down (the order an exchange receives it): GC in
// between must keep what has arrived.
func TestPinBeforeFetch(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t)
	leaf, ldata := rawBlock("leaf")
	root, rdata := cborBlock(t, leaf)
	if err := b.Pin(ctx, root); err != nil {
		t.Fatal(err)
	}
	mustPutBlock(t, b, root, rdata)
	if _, err := b.GC(ctx); err != nil {
		t.Fatal(err)
	}
	mustPutBlock(t, b, leaf, ldata)
	if st, err := b.GC(ctx); err != nil || st.Blocks != 0 {
		t.Fatalf("GC = %+v, %v; want nothing removed", st, err)
	}
	if !has(t, b, root) || !has(t, b, leaf) {
		t.Fatal("pinned DAG lost blocks")
	}
}

// TestConcurrentPutsCountOnce stores the same linking block from many
// goroutines: its children must be referenced exactly once.
func TestConcurrentPutsCountOnce(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t)
	leaf, ldata := rawBlock("leaf")
	root, rdata := cborBlock(t, leaf)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Put(ctx, root, rdata); err != nil {
				t.Error(err)
			}
			if err := b.Put(ctx, leaf, ldata); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _ := b.refsOf(leaf); n != 1 {
		t.Fatalf("refcount = %d; want 1", n)
	}
	if st, err := b.GC(ctx); err != nil || st.Blocks != 2 {
		t.Fatalf("GC = %+v, %v; want both blocks removed", st, err)
	}
}

func TestBlockstoreCanceledContext(t *testing.T) {
	b, _ := newTestBlockstore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, data := rawBlock("x")
	if err := b.Put(ctx, c, data); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with canceled ctx = %v", err)
	}
	if has(t, b, c) {
		t.Fatal("canceled Put stored the block")
	}
}

// TestGCLock checks the lock between writers and GC: GC waits for holders,
// a holder may nest (take it again) while GC waits, and writers wait while
// GC runs.
func TestGCLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gcLock
		g.init()
		g.enter()
		gcDone := make(chan struct{})
		go func() { g.lock(); g.unlock(); close(gcDone) }()
		synctest.Wait()
		select {
		case <-gcDone:
			t.Fatal("GC ran while a writer held the lock")
		default:
		}
		g.enter() // nested hold while GC waits: must not deadlock
		g.leave()
		g.leave()
		<-gcDone

		g.lock()
		entered := make(chan struct{})
		go func() { g.enter(); g.leave(); close(entered) }()
		synctest.Wait()
		select {
		case <-entered:
			t.Fatal("a writer entered while GC ran")
		default:
		}
		g.unlock()
		<-entered
	})
}

// TestGCDuringImport runs GC over and over while a file is imported chunk
// by chunk: the import holds GC off until its root is pinned, so nothing it
// wrote is lost.
func TestGCDuringImport(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBlockstore(t, WithoutFsync())
	data := randBytes(5, 200*64)
	stop := make(chan struct{})
	gcs := make(chan int)
	go func() {
		n := 0
		defer func() { gcs <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.GC(ctx); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	// A reader that lets a GC run between chunks.
	root, err := ImportReader(ctx, b, "f", &yieldReader{r: bytes.NewReader(data)}, ImportOptions{ChunkSize: 64, Fanout: 4})
	close(stop)
	t.Logf("%d GCs completed around the import", <-gcs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GC(ctx); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := Export(ctx, b, root, out, ExportOptions{}); err != nil {
		t.Fatalf("export after concurrent GCs: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("exported data differs")
	}
}

type yieldReader struct{ r io.Reader }

func (y *yieldReader) Read(p []byte) (int, error) {
	runtime.Gosched()
	return y.r.Read(p)
}

// TestBlockstoreReopen stores blocks and a pin on disk, reopens database and
// block store, and finds them intact.
func TestBlockstoreReopen(t *testing.T) {
	ctx := context.Background()
	dbDir, blkDir := t.TempDir(), t.TempDir()
	open := func() (*DB, *Blockstore) {
		db, err := Open(dbDir, WithLowMemory(), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewBlockstore(db, blkDir)
		if err != nil {
			t.Fatal(err)
		}
		return db, b
	}
	db, b := open()
	leaf, ldata := rawBlock("persisted leaf")
	root, rdata := cborBlock(t, leaf)
	mustPutBlock(t, b, leaf, ldata)
	mustPutBlock(t, b, root, rdata)
	if err := b.Pin(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, b = open()
	defer db.Close()
	if got, err := b.Get(ctx, leaf); err != nil || !bytes.Equal(got, ldata) {
		t.Fatalf("Get after reopen = %q, %v", got, err)
	}
	if st, err := b.GC(ctx); err != nil || st.Blocks != 0 {
		t.Fatalf("GC after reopen = %+v, %v; want nothing removed (root pinned)", st, err)
	}
}

// TestLargestManifestFits stores a node with MaxLinks links, the largest
// index entry the store writes, in both database kinds with the low-memory
// settings.
func TestLargestManifestFits(t *testing.T) {
	ctx := context.Background()
	links := make([]Link, MaxLinks)
	for i := range links {
		c := protocol.BlockCID(fmt.Appendf(nil, "chunk %d", i))
		links[i] = Link{CID: protocol.NewCID(c), Size: MaxBlockSize}
	}
	data, c, err := EncodeNode(&Node{Type: NodeChunks, Size: MaxLinks * MaxBlockSize, Links: links})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"mem", "disk"} {
		db := openTestDB(t, kind)
		b, err := NewBlockstore(db, t.TempDir(), WithoutFsync(), WithBlockLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, c, data); err != nil {
			t.Fatalf("%s: Put of a %d-byte node with %d links: %v", kind, len(data), MaxLinks, err)
		}
		if st, err := b.GC(ctx); err != nil || st.Blocks != 1 {
			t.Fatalf("%s: GC = %+v, %v", kind, st, err)
		}
		if n := countRefs(t, b); n != 0 {
			t.Fatalf("%s: %d reference counts left", kind, n)
		}
	}
}
