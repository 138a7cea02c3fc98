package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
)

func reportMiBps(b *testing.B, bytesPerOp int) {
	b.ReportMetric(float64(bytesPerOp)*float64(b.N)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}

// BenchmarkBlockstorePut stores distinct 1 MiB blocks, with and without
// fsync, on an on-disk database.
func BenchmarkBlockstorePut(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			var opts []BlockstoreOption
			if !sync {
				opts = append(opts, WithoutFsync())
			}
			bs := benchBlockstore(b, opts...)
			data := randBytes(1, DefaultChunkSize)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				data[0], data[1], data[2], data[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				if err := bs.Put(ctx, protocol.BlockCID(data), data); err != nil {
					b.Fatal(err)
				}
			}
			reportMiBps(b, len(data))
		})
	}
}

// BenchmarkBlockstoreGet reads and verifies 1 MiB blocks.
func BenchmarkBlockstoreGet(b *testing.B) {
	bs := benchBlockstore(b, WithoutFsync())
	ctx := context.Background()
	var cids []cid.Cid
	for i := range 64 {
		data := randBytes(uint64(i), DefaultChunkSize)
		c := protocol.BlockCID(data)
		if err := bs.Put(ctx, c, data); err != nil {
			b.Fatal(err)
		}
		cids = append(cids, c)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := bs.Get(ctx, cids[i%len(cids)]); err != nil {
			b.Fatal(err)
		}
	}
	reportMiBps(b, DefaultChunkSize)
}

// BenchmarkImportExport imports then exports a 64 MiB stream.
func BenchmarkImportExport(b *testing.B) {
	const size = 64 << 20
	bs := benchBlockstore(b, WithoutFsync())
	ctx := context.Background()
	src := randBytes(2, size)
	out := filepath.Join(b.TempDir(), "out")
	for i := 0; b.Loop(); i++ {
		src[0] = byte(i)
		root, err := ImportReader(ctx, bs, "f", io.NopCloser(bytes.NewReader(src)), ImportOptions{NoPin: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := Export(ctx, bs, root, out, ExportOptions{Overwrite: true}); err != nil {
			b.Fatal(err)
		}
	}
	reportMiBps(b, size)
}

func benchBlockstore(b *testing.B, opts ...BlockstoreOption) *Blockstore {
	db := openTestDB(b, "disk")
	bs, err := NewBlockstore(db, b.TempDir(), append([]BlockstoreOption{WithBlockLogger(quietLogger())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return bs
}

// BenchmarkBlockstorePutMany stores batches of 16 distinct 1 MiB blocks
// without fsync, with a Put per block and with one PutMany per batch (one
// batched hash, one index transaction).
func BenchmarkBlockstorePutMany(b *testing.B) {
	const batch = 16
	for _, way := range []string{"put-loop", "putmany"} {
		b.Run(way, func(b *testing.B) {
			bs := benchBlockstore(b, WithoutFsync())
			ctx := context.Background()
			blocks := make([]Block, batch)
			for j := range blocks {
				blocks[j].Data = randBytes(uint64(j), DefaultChunkSize)
			}
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer() // new CIDs: hashing them is not the store's cost
				for j := range blocks {
					d := blocks[j].Data
					d[0], d[1], d[2], d[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
					blocks[j].CID = protocol.BlockCID(d)
				}
				b.StartTimer()
				if way == "putmany" {
					if err := bs.PutMany(ctx, blocks); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, bl := range blocks {
						if err := bs.Put(ctx, bl.CID, bl.Data); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			reportMiBps(b, batch*DefaultChunkSize)
		})
	}
}
