package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
)

// dagBlocks returns n raw leaves (the first repeated) and a dag-cbor node
// linking them, in storing order, with the node last.
func dagBlocks(t testing.TB, seed uint64, n, size int) []Block {
	t.Helper()
	var out []Block
	var links []cid.Cid
	for i := range n {
		data := randBytes(seed+uint64(i), size)
		c := protocol.BlockCID(data)
		out = append(out, Block{CID: c, Data: data})
		links = append(links, c)
	}
	links = append(links, links[0]) // a repeated link counts twice
	c, data := cborBlock(t, links...)
	return append(out, Block{CID: c, Data: data})
}

// dumpStore lists the index and reference counts, to compare two stores.
func dumpStore(t *testing.T, b *Blockstore) string {
	t.Helper()
	var sb strings.Builder
	for _, ks := range []*Keyspace{b.index, b.refs} {
		if err := ks.Iterate(nil, func(k, v []byte) error {
			fmt.Fprintf(&sb, "%s %x=%x\n", ks.Name(), k, v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return sb.String()
}

// TestPutManyMatchesPut stores the same blocks with PutMany and with a Put
// loop (the reference) and expects the same index, reference counts and
// readable blocks, on both kinds of database. The batch repeats a block and
// holds one already stored.
func TestPutManyMatchesPut(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"mem", "disk"} {
		blocks := dagBlocks(t, 1, 20, 4<<10)
		held := blocks[3]
		batch := append(append([]Block{}, blocks...), blocks[0])

		ref, _ := newTestBlockstoreOn(t, kind, WithoutFsync())
		for _, bl := range batch {
			mustPutBlock(t, ref, bl.CID, bl.Data)
		}
		b, dir := newTestBlockstoreOn(t, kind)
		mustPutBlock(t, b, held.CID, held.Data)
		if err := b.PutMany(ctx, batch); err != nil {
			t.Fatalf("%s: PutMany: %v", kind, err)
		}
		if got, want := dumpStore(t, b), dumpStore(t, ref); got != want {
			t.Errorf("%s: PutMany left\n%s\nPut loop left\n%s", kind, got, want)
		}
		for _, bl := range blocks {
			if got, err := b.Get(ctx, bl.CID); err != nil || !bytes.Equal(got, bl.Data) {
				t.Fatalf("%s: Get(%s) after PutMany: %v", kind, bl.CID, err)
			}
		}
		if n := countFiles(t, filepath.Join(dir, "blocks")); n != len(blocks) {
			t.Errorf("%s: %d block files; want %d", kind, n, len(blocks))
		}
		if err := b.PutMany(ctx, batch); err != nil { // all held: a no-op
			t.Fatalf("%s: second PutMany: %v", kind, err)
		}
		if err := b.PutMany(ctx, nil); err != nil {
			t.Fatalf("%s: PutMany(nil): %v", kind, err)
		}
	}
}

// TestPutManyBadBlockChangesNothing puts batches with one bad block in
// different places: a block that does not match its CID, a dag-cbor node
// that does not parse, an oversized block. Each fails naming the bad CID and
// leaves no index entry, reference count or file behind.
func TestPutManyBadBlockChangesNothing(t *testing.T) {
	ctx := context.Background()
	good := dagBlocks(t, 7, 17, 1<<10)
	junk := []byte("not cbor")
	junkCID := protocol.DagCBORCID(junk)
	big := make([]byte, MaxBlockSize+1)
	cases := []struct {
		name string
		at   int
		bad  Block
		want error
	}{
		{"mismatch first", 0, Block{good[0].CID, append([]byte{1}, good[0].Data[1:]...)}, ErrCIDMismatch},
		{"mismatch in a full lane batch", 9, Block{good[9].CID, good[10].Data}, ErrCIDMismatch},
		{"mismatch node", len(good) - 1, Block{good[len(good)-1].CID, good[len(good)-1].Data[:10]}, ErrCIDMismatch},
		{"bad links", 5, Block{junkCID, junk}, nil},
		{"too large", 3, Block{protocol.BlockCID(big), big}, ErrBlockTooLarge},
	}
	for _, tc := range cases {
		b, dir := newTestBlockstore(t)
		batch := append([]Block{}, good...)
		batch[tc.at] = tc.bad
		err := b.PutMany(ctx, batch)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.bad.CID.String()) {
			t.Errorf("%s: PutMany = %v; want an error naming %s (%v)", tc.name, err, tc.bad.CID, tc.want)
		}
		for _, bl := range batch {
			if has(t, b, bl.CID) {
				t.Errorf("%s: %s stored from a failed batch", tc.name, bl.CID)
			}
		}
		if n := countRefs(t, b); n != 0 {
			t.Errorf("%s: %d reference counts after a failed batch", tc.name, n)
		}
		if n := countFiles(t, filepath.Join(dir, "blocks")); n != 0 {
			t.Errorf("%s: %d files after a failed batch", tc.name, n)
		}
	}
}

// putManyWorkload stores two DAGs sharing leaves with PutMany (blocks, then
// other, linking some of the same leaves), pins the first and collects the
// second.
func putManyWorkload(ctx context.Context, b *Blockstore, blocks []Block, other Block) error {
	if err := b.PutMany(ctx, blocks[:len(blocks)/2]); err != nil {
		return err
	}
	if err := b.PutMany(ctx, blocks); err != nil {
		return err
	}
	root := blocks[len(blocks)-1].CID
	if err := b.Pin(ctx, root); err != nil {
		return err
	}
	if err := b.PutMany(ctx, []Block{other}); err != nil {
		return err
	}
	if _, err := b.GC(ctx); err != nil {
		return err
	}
	if ok, err := b.Has(ctx, other.CID); err != nil {
		return err
	} else if ok {
		return errors.New("workload: unpinned node still held after GC")
	}
	return nil
}

// TestPutManyFaultInjection fails each database operation of a PutMany
// workload in turn, as TestBlockstoreFaultInjection does for Put: the
// failure surfaces, the store stays consistent (reference counts match the
// index, every indexed block reads back verified) and files written for a
// batch whose commit failed are swept by GC.
func TestPutManyFaultInjection(t *testing.T) {
	blocks := dagBlocks(t, 3, 18, 100)
	oc, odata := cborBlock(t, blocks[0].CID, blocks[1].CID)
	other := Block{oc, odata}
	blockFaultLoop(t, func(ctx context.Context, b *Blockstore) error {
		return putManyWorkload(ctx, b, blocks, other)
	})
}
