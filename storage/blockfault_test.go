package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
)

// blockWorkload imports two files sharing chunks, pins, unpins and collects.
func blockWorkload(ctx context.Context, b *Blockstore) error {
	data := randBytes(11, 4*100)
	opts := ImportOptions{ChunkSize: 100, Fanout: 2}
	r1, err := ImportReader(ctx, b, "one", bytes.NewReader(data), opts)
	if err != nil {
		return err
	}
	if _, err := ImportReader(ctx, b, "two", bytes.NewReader(data[:100]), opts); err != nil {
		return err
	}
	if err := b.Unpin(ctx, r1); err != nil {
		return err
	}
	if _, err := b.GC(ctx); err != nil {
		return err
	}
	_, err = Stat(ctx, b, r1) // r1 was collected
	switch {
	case err == nil:
		return errors.New("workload: collected root still readable")
	case errors.Is(err, ErrNotFound):
		return nil
	}
	return err
}

// TestBlockstoreFaultInjection fails each database operation of the block
// workload in turn. The failure must surface, and afterwards the store must
// be consistent: every reference count equals the number of indexed blocks
// linking to the CID, every indexed block reads back verified, and once all
// pins are released GC leaves no block, file or count behind.
func TestBlockstoreFaultInjection(t *testing.T) {
	blockFaultLoop(t, blockWorkload)
}

// blockFaultLoop runs workload on a fresh store once per database
// operation, failing that operation, until a run completes without a
// fault. Each run's failure must surface, and the store must pass
// checkBlockstore afterwards.
func blockFaultLoop(t *testing.T, workload func(context.Context, *Blockstore) error) {
	ctx := context.Background()
	for i := 0; ; i++ {
		if i > 2000 {
			t.Fatal("workload never completed")
		}
		fk := &faultKV{failAt: i}
		db, err := Open("", WithInMemory(), WithLogger(quietLogger()),
			func(c *config) error { c.wrapKV = func(inner kv) kv { fk.inner = inner; return fk }; return nil })
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		b, err := NewBlockstore(db, dir, WithoutFsync(), WithBlockLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		werr := workload(ctx, b)
		fk.mu.Lock()
		fired := fk.fired
		fk.failAt = -1 // the checks below run without faults
		fk.mu.Unlock()
		if fired && !errors.Is(werr, errInjected) {
			t.Fatalf("fault %d: workload returned %v; want the injected fault", i, werr)
		}
		if !fired && werr != nil {
			t.Fatalf("fault %d: workload failed without a fault: %v", i, werr)
		}
		checkBlockstore(t, b, dir, i)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if !fired {
			t.Logf("%d fault positions checked", i)
			return
		}
	}
}

// indexedAny returns some indexed key, or a key that is never indexed.
func indexedAny(t *testing.T, b *Blockstore) []byte {
	key := []byte("none")
	if err := b.index.Iterate(nil, func(k, _ []byte) error { key = k; return nil }); err != nil {
		t.Fatal(err)
	}
	return key
}

func checkBlockstore(t *testing.T, b *Blockstore, dir string, fault int) {
	t.Helper()
	ctx := context.Background()
	want := map[cid.Cid]int64{}
	var indexed []cid.Cid
	err := b.index.Iterate(nil, func(k, v []byte) error {
		c, err := cid.Cast(k)
		if err != nil {
			return err
		}
		indexed = append(indexed, c)
		e, err := decodeIndexEntry(v)
		if err != nil {
			return err
		}
		for _, l := range e.links {
			want[l]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("fault %d: %v", fault, err)
	}
	got := map[cid.Cid]int64{}
	if err := b.refs.Iterate(nil, func(k, _ []byte) error {
		c, err := cid.Cast(k)
		if err != nil {
			return err
		}
		got[c], err = b.refsOf(c)
		return err
	}); err != nil {
		t.Fatalf("fault %d: %v", fault, err)
	}
	if len(got) != len(want) {
		t.Fatalf("fault %d: %d reference counts; index implies %d", fault, len(got), len(want))
	}
	for c, n := range want {
		if got[c] != n {
			t.Fatalf("fault %d: refcount of %s = %d; index implies %d", fault, c, got[c], n)
		}
	}
	for _, c := range indexed {
		if _, err := b.Get(ctx, c); err != nil {
			t.Fatalf("fault %d: indexed block %s: %v", fault, c, err)
		}
	}
	pins, err := b.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pins {
		if err := b.Unpin(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.GC(ctx); err != nil {
		t.Fatalf("fault %d: GC: %v", fault, err)
	}
	if n := countRefs(t, b); n != 0 {
		t.Fatalf("fault %d: %d reference counts after collecting everything", fault, n)
	}
	if ok, err := b.index.Has(indexedAny(t, b)); err != nil || ok {
		t.Fatalf("fault %d: index not empty after collecting everything", fault)
	}
	if n := countFiles(t, filepath.Join(dir, "blocks")); n != 0 {
		ents, _ := os.ReadDir(filepath.Join(dir, "blocks"))
		t.Fatalf("fault %d: %d files after collecting everything (%d dirs)", fault, n, len(ents))
	}
}
