package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
)

// randReader yields n deterministic pseudo-random bytes.
func randReader(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func randBytes(seed uint64, n int) []byte {
	b, _ := io.ReadAll(randReader(seed, int64(n)))
	return b
}

// reachable counts the blocks of the DAG under root by walking Links.
func reachable(t testing.TB, b *Blockstore, root cid.Cid) int {
	t.Helper()
	n := 0
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		data, err := b.Get(context.Background(), c)
		if err != nil {
			t.Fatalf("walk %s: %v", c, err)
		}
		n++
		links, err := Links(c, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			walk(l)
		}
	}
	walk(root)
	return n
}

// TestImportExportFile round-trips files around chunk and fanout boundaries,
// with fanouts small enough to build chunk trees several levels deep.
func TestImportExportFile(t *testing.T) {
	ctx := context.Background()
	const chunk = 16
	cases := []struct {
		size   int
		fanout int
	}{
		{0, 4}, {1, 4}, {chunk - 1, 4}, {chunk, 4}, {chunk + 1, 4},
		{4 * chunk, 4}, {4*chunk + 1, 4}, {16 * chunk, 4}, {17*chunk + 3, 4},
		{100*chunk + 7, 3}, {64 * chunk, 2}, {65 * chunk, 2}, {1000, DefaultFanout},
	}
	b, dir := newTestBlockstore(t, WithoutFsync())
	for _, tc := range cases {
		t.Run(fmt.Sprintf("size=%d/fanout=%d", tc.size, tc.fanout), func(t *testing.T) {
			data := randBytes(uint64(tc.size), tc.size)
			var last int64
			root, err := ImportReader(ctx, b, "weights.bin", bytes.NewReader(data), ImportOptions{
				ChunkSize: chunk, Fanout: tc.fanout, Mode: 0o640,
				Progress: func(n int64) {
					if n <= last {
						t.Errorf("progress went from %d to %d", last, n)
					}
					last = n
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if last != int64(tc.size) {
				t.Fatalf("last progress = %d; want %d", last, tc.size)
			}
			out := filepath.Join(dir, fmt.Sprintf("out-%d-%d", tc.size, tc.fanout))
			if err := Export(ctx, b, root, out, ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("exported %d bytes (%v); want the %d imported", len(got), err, len(data))
			}
			if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o640 {
				t.Fatalf("exported mode %v; want 0640", fi.Mode().Perm())
			}
			info, err := Stat(ctx, b, root)
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != NodeFile || info.Name != "weights.bin" || info.Size != uint64(tc.size) {
				t.Fatalf("Stat = %+v; want file weights.bin of %d bytes", info, tc.size)
			}
			if want := reachable(t, b, root); info.Blocks != want {
				t.Fatalf("Stat.Blocks = %d; walking the DAG finds %d", info.Blocks, want)
			}
			if ok, _ := b.IsPinned(ctx, root); !ok {
				t.Fatal("import did not pin its root")
			}
			for _, c := range nodesOf(t, b, root) {
				if sz, _ := b.Size(ctx, c); sz > MaxBlockSize {
					t.Fatalf("manifest node of %d bytes", sz)
				}
			}
		})
	}
}

// nodesOf lists the manifest nodes under root.
func nodesOf(t testing.TB, b *Blockstore, root cid.Cid) []cid.Cid {
	t.Helper()
	out := []cid.Cid{root}
	for i := 0; i < len(out); i++ {
		data, err := b.Get(context.Background(), out[i])
		if err != nil {
			t.Fatal(err)
		}
		links, _ := Links(out[i], data)
		for _, l := range links {
			if l.Type() == cid.DagCBOR {
				out = append(out, l)
			}
		}
	}
	return out
}

func TestImportIsDeterministicAndShares(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t, WithoutFsync())
	data := randBytes(1, 10_000)
	opts := ImportOptions{ChunkSize: 1000, NoPin: true}
	r1, err := ImportReader(ctx, b, "a", bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ImportReader(ctx, b, "a", bytes.NewReader(data), opts)
	if err != nil || r1 != r2 {
		t.Fatalf("same content imported twice: %s then %s (%v)", r1, r2, err)
	}
	// The same content under another name: a new root, the same chunks.
	r3, err := ImportReader(ctx, b, "b", bytes.NewReader(data), ImportOptions{ChunkSize: 1000})
	if err != nil || r3 == r1 {
		t.Fatalf("renamed import: %s, %v", r3, err)
	}
	// GC takes the unpinned root a, keeps the chunks that pinned b uses.
	st, err := b.GC(ctx)
	if err != nil || st.Blocks != 1 {
		t.Fatalf("GC = %+v, %v; want only the unpinned manifest removed", st, err)
	}
	if err := Export(ctx, b, r3, filepath.Join(t.TempDir(), "b"), ExportOptions{}); err != nil {
		t.Fatalf("export after GC: %v", err)
	}
}

// writeTree creates a small directory tree with varied modes.
func writeTree(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	entries := []struct {
		path string
		mode fs.FileMode
		size int
		dir  bool
	}{
		{"data", 0o750, 0, true},
		{"data/train.bin", 0o644, 5000, false},
		{"data/empty", 0o600, 0, false},
		{"data/sub", 0o700, 0, true},
		{"data/sub/run.sh", 0o755, 300, false},
		{"empty-dir", 0o755, 0, true},
		{"README", 0o444, 42, false},
		{"zz same as train", 0o644, 5000, false},
	}
	want := map[string]fs.FileMode{}
	for i, e := range entries {
		p := filepath.Join(root, e.path)
		if e.dir {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			want[e.path] = e.mode | fs.ModeDir
			continue
		}
		seed := uint64(i)
		if e.path == "zz same as train" {
			seed = 1
		}
		if err := os.WriteFile(p, randBytes(seed, e.size), 0o644); err != nil {
			t.Fatal(err)
		}
		want[e.path] = e.mode
	}
	// Apply modes deepest first so read-only directories do not block.
	for i := len(entries) - 1; i >= 0; i-- {
		if err := os.Chmod(filepath.Join(root, entries[i].path), entries[i].mode); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// treeDigest maps each path under root to its mode and content hash.
func treeDigest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if !d.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		out[filepath.ToSlash(rel)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportExportDirectory(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t, WithoutFsync())
	src := filepath.Join(t.TempDir(), "dataset")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	modes := writeTree(t, src)
	root, err := Import(ctx, b, src, ImportOptions{ChunkSize: 1024, Fanout: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "restored")
	if err := Export(ctx, b, root, out, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	want, got := treeDigest(t, src), treeDigest(t, out)
	if len(want) != len(got) {
		t.Fatalf("exported tree has %d entries; want %d\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: exported %q; want %q", p, got[p], w)
		}
	}
	info, err := Stat(ctx, b, root)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != NodeDir || info.Name != "dataset" || info.Size != 5000+300+42+5000 {
		t.Fatalf("Stat = %s %q %d bytes", info.Type, info.Name, info.Size)
	}
	var paths []string
	for _, f := range info.Files {
		if f.Path != "" && modes[f.Path] != f.Mode {
			t.Errorf("Stat %s mode %v; want %v", f.Path, f.Mode, modes[f.Path])
		}
		paths = append(paths, f.Path)
	}
	wantPaths := []string{"", "README", "data", "data/empty", "data/sub", "data/sub/run.sh", "data/train.bin", "empty-dir", "zz same as train"}
	if !slices.Equal(paths, wantPaths) {
		t.Fatalf("Stat paths = %q; want %q", paths, wantPaths)
	}
	if want := reachable(t, b, root); info.Blocks != want {
		t.Fatalf("Stat.Blocks = %d; walking the DAG finds %d", info.Blocks, want)
	}
	// A directory target that exists is refused and left alone.
	if err := Export(ctx, b, root, out, ExportOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("export over an existing directory: %v; want ErrExists", err)
	}
}

func TestImportRejectsSpecialFiles(t *testing.T) {
	b, _ := newTestBlockstore(t, WithoutFsync())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(context.Background(), b, dir, ImportOptions{}); !errors.Is(err, ErrUnsupportedFile) {
		t.Fatalf("Import of a tree with a symlink: %v; want ErrUnsupportedFile", err)
	}
	if pins, _ := b.Pins(context.Background()); len(pins) != 0 {
		t.Fatalf("failed import pinned %v", pins)
	}
}

func TestImportOptionsValidated(t *testing.T) {
	b, _ := newTestBlockstore(t)
	for _, o := range []ImportOptions{
		{ChunkSize: -1}, {ChunkSize: MaxBlockSize + 1}, {Fanout: 1}, {Fanout: MaxLinks + 1}, {Mode: fs.ModeDir | 0o755},
	} {
		if _, err := ImportReader(context.Background(), b, "x", bytes.NewReader(nil), o); err == nil {
			t.Errorf("ImportReader with %+v succeeded", o)
		}
	}
	if _, err := ImportReader(context.Background(), b, "../evil", bytes.NewReader(nil), ImportOptions{}); !errors.Is(err, ErrBadManifest) {
		t.Errorf("ImportReader with name ../evil: %v; want ErrBadManifest", err)
	}
}

// TestExportFailsCleanly removes or damages a chunk: the export fails with a
// clear error and leaves nothing at the target.
func TestExportFailsCleanly(t *testing.T) {
	ctx := context.Background()
	for _, damage := range []string{"missing", "corrupt"} {
		t.Run(damage, func(t *testing.T) {
			b, dir := newTestBlockstore(t, WithoutFsync())
			data := randBytes(7, 5000)
			root, err := ImportReader(ctx, b, "f", bytes.NewReader(data), ImportOptions{ChunkSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			third := protocol.BlockCID(data[2000:3000])
			want := ErrNotFound
			if damage == "missing" {
				if err := b.db.Update(func(tx *Txn) error { return b.unindex(tx, third) }); err != nil {
					t.Fatal(err)
				}
			} else {
				want = ErrCorrupt
				if err := os.WriteFile(b.path(third), randBytes(9, 1000), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(dir, "out")
			if err := Export(ctx, b, root, out, ExportOptions{}); !errors.Is(err, want) {
				t.Fatalf("Export err = %v; want %v", err, want)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != "blocks" {
					t.Errorf("failed export left %s", e.Name())
				}
			}
		})
	}
}

func TestExportOverwrite(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t, WithoutFsync())
	root, err := ImportReader(ctx, b, "f", bytes.NewReader([]byte("new")), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Export(ctx, b, root, out, ExportOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("Export over a file: %v; want ErrExists", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "old" {
		t.Fatalf("refused export changed the file to %q", got)
	}
	if err := Export(ctx, b, root, out, ExportOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != "new" {
		t.Fatalf("overwritten file holds %q", got)
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestStreamingMemory imports and exports 64 MiB with 1 MiB chunks and a
// small fanout (so the chunk tree has several levels) while sampling the
// live heap: it must stay far below the file size.
func TestStreamingMemory(t *testing.T) {
	const size = 64 << 20
	const limit = 12 << 20
	ctx := context.Background()
	b, dir := newTestBlockstore(t, WithoutFsync()) // memory is the point here, not fsync
	base := liveHeap()
	var peak uint64
	sample := func(n int64) {
		if n%(8<<20) == 0 {
			peak = max(peak, liveHeap())
		}
	}
	h := sha256.New()
	root, err := ImportReader(ctx, b, "big", io.TeeReader(randReader(3, size), h), ImportOptions{Fanout: 4, Progress: sample})
	if err != nil {
		t.Fatal(err)
	}
	if grow := int64(peak) - int64(base); grow > limit {
		t.Fatalf("import of %d MiB: live heap grew by %d MiB; want under %d MiB", size>>20, grow>>20, limit>>20)
	} else {
		t.Logf("import: live heap %+.1f MiB", float64(grow)/(1<<20))
	}
	wantSum := h.Sum(nil)

	base, peak = liveHeap(), 0
	out := filepath.Join(dir, "big")
	if err := Export(ctx, b, root, out, ExportOptions{Progress: sample}); err != nil {
		t.Fatal(err)
	}
	if grow := int64(peak) - int64(base); grow > limit {
		t.Fatalf("export of %d MiB: live heap grew by %d MiB; want under %d MiB", size>>20, grow>>20, limit>>20)
	} else {
		t.Logf("export: live heap %+.1f MiB", float64(grow)/(1<<20))
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.Reset()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), wantSum) {
		t.Fatal("exported file differs from the imported stream")
	}
}

// TestExportDirFailsCleanly loses a chunk that a file deep in a directory
// tree needs: the export fails and removes the partial tree it created.
func TestExportDirFailsCleanly(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBlockstore(t, WithoutFsync())
	src := filepath.Join(t.TempDir(), "dataset")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src)
	root, err := Import(ctx, b, src, ImportOptions{ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	train := randBytes(1, 5000) // data/train.bin
	lost := protocol.BlockCID(train[4096:])
	if err := b.db.Update(func(tx *Txn) error { return b.unindex(tx, lost) }); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "restored")
	if err := Export(ctx, b, root, out, ExportOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Export err = %v; want ErrNotFound", err)
	}
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed export left %s (%v)", out, err)
	}
}
