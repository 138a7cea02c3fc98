// Package bench holds benchmarks that run over real loopback networking.
package bench

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/protocol"
	"github.com/gpunode/gpunode/storage/exchange"
	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

var transferSize = flag.String("transfer.size", "", "bytes moved by BenchmarkTransfer (e.g. 64MiB, 1GiB; default 1GiB or $GPUNODE_TRANSFER_SIZE)")

var transferOnly = flag.String("transfer.only", "", "run only these ways of BenchmarkTransfer, comma-separated: exchange, raw, bitswap (for profiling)")

var (
	transferStreams = flag.Int("transfer.streams", 0, "exchange streams per peer (0: the exchange's default)")
	transferWindow  = flag.Int("transfer.window", 0, "exchange blocks in flight per stream (0: the exchange's default)")
)

const chunkSize = 1 << 20

func parseSize(s string) (int, error) {
	mult := 1
	for suf, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func benchSize(b *testing.B) int {
	s := *transferSize
	if s == "" {
		s = os.Getenv("GPUNODE_TRANSFER_SIZE")
	}
	if s == "" {
		return 1 << 30
	}
	n, err := parseSize(s)
	if err != nil {
		b.Fatal(err)
	}
	return (n + chunkSize - 1) / chunkSize * chunkSize
}

// dataset is a random file cut into 1 MiB raw blocks under one dag-cbor
// node listing them.
type dataset struct {
	root   cid.Cid
	chunks []cid.Cid
	blocks map[cid.Cid][]byte
	size   int
}

func newDataset(size int) *dataset {
	d := &dataset{blocks: make(map[cid.Cid][]byte), size: size}
	buf := make([]byte, size)
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	var links []protocol.CID
	for off := 0; off < size; off += chunkSize {
		chunk := buf[off:min(off+chunkSize, size)]
		c := protocol.BlockCID(chunk)
		d.blocks[c] = chunk
		d.chunks = append(d.chunks, c)
		links = append(links, protocol.NewCID(c))
	}
	m := protocol.MustMarshal(links)
	d.root = protocol.DagCBORCID(m)
	d.blocks[d.root] = m
	return d
}

func links(c cid.Cid, data []byte) ([]cid.Cid, error) {
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

// memStore is an in-memory block store, like the in-memory blockstore the
// bitswap run serves from: no hashing on read.
type memStore struct {
	mu     sync.RWMutex // guards blocks
	blocks map[cid.Cid][]byte
}

func (m *memStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.blocks[c]
	return ok, nil
}

func (m *memStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.blocks[c]
	if !ok {
		return nil, fmt.Errorf("not found: %s", c)
	}
	return b, nil
}

func (m *memStore) Put(_ context.Context, c cid.Cid, data []byte) error {
	return fmt.Errorf("read-only store")
}

// sinkStore is the fetching side's store: like the raw run, which reads
// into one reused buffer, it keeps no bytes, only which blocks arrived and
// their sizes. The exchange has verified every block against its CID
// before Put, so the set of CIDs received proves the content identical.
type sinkStore struct {
	mu   sync.Mutex // guards size
	size map[cid.Cid]int
	meta map[cid.Cid][]byte // inner (non-raw) nodes are kept: the fetcher reads their links
}

func (m *sinkStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.size[c]
	return ok, nil
}

func (m *sinkStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.meta[c]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("bytes not kept: %s", c)
}

func (m *sinkStore) Put(_ context.Context, c cid.Cid, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.size[c] = len(data)
	if c.Prefix().Codec != cid.Raw {
		m.meta[c] = append([]byte(nil), data...)
	}
	return nil
}

// usage is what one transfer took: wall time, CPU time of the process
// (user+system) and the time its Ps sat idle.
type usage struct {
	wall, cpu time.Duration
	idle      float64 // seconds
}

// meter measures a transfer: call it just before the transfer starts and
// the returned function just after it ends.
func meter() func() usage {
	runtime.GC() // publishes the runtime's idle-time count; outside the timing
	i0 := idleCPU()
	start, c0 := time.Now(), cpuTime()
	return func() usage {
		u := usage{wall: time.Since(start), cpu: cpuTime() - c0}
		runtime.GC()
		u.idle = idleCPU() - i0
		return u
	}
}

// idleCPU is the time the process's Ps have sat idle so far, as of the
// last GC (the runtime updates the figure only then).
func idleCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostPair starts two libp2p hosts with default settings listening on
// loopback TCP only, and connects them.
func hostPair(b *testing.B) (server, client host.Host) {
	b.Helper()
	mk := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	server, client = mk(), mk()
	if err := client.Connect(context.Background(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		b.Fatal(err)
	}
	return server, client
}

func closeAll(hs ...host.Host) {
	for _, h := range hs {
		_ = h.Close()
	}
}

// BenchmarkTransfer moves the same dataset (1 GiB by default, 1 MiB blocks)
// over real loopback TCP libp2p, default host settings, three ways, and
// reports each rate: our exchange (MiB/s), one raw libp2p stream
// (raw-MiB/s, the upper bound: no requests, no hashing) and boxo bitswap
// with default settings (bitswap-MiB/s). Serving stores are in memory for
// both protocols. Each way also reports its CPU seconds per GiB, both ends
// together, a figure that stays put when the machine is shared, and the
// seconds per GiB the process's Ps sat idle (idle-s/GiB): a way whose rate
// falls short at the same CPU per GiB lost the time to stalls.
//
// The exchange hashes every received byte (sha2-256, as the CIDs say), which
// the raw stream does not: on a machine whose cores are all busy the
// exchange's rate is bounded by raw x raw-cpu / (raw-cpu + hash cost).
//
//	go test -run XXX -bench 'Transfer$' -benchtime 1x ./test/bench [-args -transfer.size=256MiB]
func BenchmarkTransfer(b *testing.B) {
	size := benchSize(b)
	d := newDataset(size)
	b.Logf("dataset: %d MiB in %d blocks", size>>20, len(d.chunks))
	var tExchange, tRaw, tBitswap time.Duration
	cpu := map[string]time.Duration{}
	idle := map[string]float64{}
	b.ResetTimer()
	run := func(way string, f func(*testing.B, *dataset) usage, total *time.Duration) {
		if *transferOnly == "" || slices.Contains(strings.Split(*transferOnly, ","), way) {
			u := f(b, d)
			*total += u.wall
			cpu[way] += u.cpu
			idle[way] += u.idle
			runtime.GC()
		}
	}
	for range b.N {
		run("raw", runRaw, &tRaw)
		run("exchange", runExchange, &tExchange)
		run("bitswap", runBitswap, &tBitswap)
	}
	b.StopTimer()
	mib := float64(size) * float64(b.N) / (1 << 20)
	report := func(t time.Duration, unit string) {
		if t > 0 {
			b.ReportMetric(mib/t.Seconds(), unit)
		}
	}
	report(tExchange, "MiB/s")
	report(tRaw, "raw-MiB/s")
	report(tBitswap, "bitswap-MiB/s")
	// CPU seconds per GiB moved (both ends): what the rate
	// costs, and a figure that holds when the machine is shared.
	for way, unit := range map[string]string{"exchange": "cpu-s/GiB", "raw": "raw-cpu-s/GiB", "bitswap": "bitswap-cpu-s/GiB"} {
		if c := cpu[way]; c > 0 {
			b.ReportMetric(c.Seconds()/(mib/1024), unit)
		}
	}
	// Seconds per GiB that the process's Ps (GOMAXPROCS of them) sat
	// idle with nothing to run: time lost to stalls (hand-offs, flow
	// control, round trips) rather than spent on CPU work.
	for way, unit := range map[string]string{"exchange": "idle-s/GiB", "raw": "raw-idle-s/GiB", "bitswap": "bitswap-idle-s/GiB"} {
		if _, ok := cpu[way]; ok {
			b.ReportMetric(idle[way]/(mib/1024), unit)
		}
	}
	b.ReportMetric(0, "ns/op")
}

// runRaw sends the chunks down one libp2p stream: the upper bound.
func runRaw(b *testing.B, d *dataset) usage {
	server, client := hostPair(b)
	defer closeAll(server, client)
	const proto = "/bench/raw/1.0.0"
	server.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		for _, c := range d.chunks {
			if _, err := s.Write(d.blocks[c]); err != nil {
				_ = s.Reset()
				return
			}
		}
	})
	done := meter()
	s, err := client.NewStream(context.Background(), server.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunkSize)
	total := 0
	for {
		n, err := s.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	u := done()
	if total != d.size {
		b.Fatalf("raw stream moved %d bytes; want %d", total, d.size)
	}
	return u
}

func runExchange(b *testing.B, d *dataset) usage {
	server, client := hostPair(b)
	defer closeAll(server, client)
	src := &memStore{blocks: d.blocks}
	dst := &sinkStore{size: make(map[cid.Cid]int), meta: make(map[cid.Cid][]byte)}
	sx, err := exchange.New(exchange.NewHost(server, "bench"), src, links)
	if err != nil {
		b.Fatal(err)
	}
	defer sx.Close()
	var opts []exchange.Option
	if *transferStreams > 0 {
		opts = append(opts, exchange.WithStreamsPerPeer(*transferStreams))
	}
	if *transferWindow > 0 {
		opts = append(opts, exchange.WithWindow(*transferWindow))
	}
	cx, err := exchange.New(exchange.NewHost(client, "bench"), dst, links, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cx.Close()
	done := meter()
	st, err := cx.Fetch(context.Background(), d.root, []peer.ID{server.ID()})
	u := done()
	if err != nil {
		b.Fatal(err)
	}
	if st.Blocks != int64(len(d.blocks)) {
		b.Fatalf("exchange fetched %d blocks; want %d", st.Blocks, len(d.blocks))
	}
	for c, want := range d.blocks {
		if got, ok := dst.size[c]; !ok || got != len(want) {
			b.Fatalf("block %s: received %d bytes (present %v); want %d", c, got, ok, len(want))
		}
	}
	return u
}

func runBitswap(b *testing.B, d *dataset) usage {
	server, client := hostPair(b)
	defer closeAll(server, client)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newStore := func() blockstore.Blockstore {
		return blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	}
	src, dst := newStore(), newStore()
	for c, data := range d.blocks {
		blk, err := blocks.NewBlockWithCid(data, c)
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Put(ctx, blk); err != nil {
			b.Fatal(err)
		}
	}
	sbs := bitswap.New(ctx, bsnet.NewFromIpfsHost(server), nil, src)
	defer sbs.Close()
	cbs := bitswap.New(ctx, bsnet.NewFromIpfsHost(client), nil, dst)
	defer cbs.Close()

	done := meter()
	rootBlk, err := cbs.GetBlock(ctx, d.root)
	if err != nil {
		b.Fatal(err)
	}
	children, err := links(d.root, rootBlk.RawData())
	if err != nil {
		b.Fatal(err)
	}
	ch, err := cbs.GetBlocks(ctx, children)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for blk := range ch {
		n++
		if n == len(children) {
			break
		}
		_ = blk
	}
	u := done()
	if n != len(children) {
		b.Fatalf("bitswap fetched %d blocks; want %d", n, len(children))
	}
	return u
}
