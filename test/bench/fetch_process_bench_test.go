package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/storage"
	"github.com/gpunode/gpunode/storage/exchange"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// serveEnv, when set in the environment (to a size in bytes), makes
// BenchmarkFetchProcess act as the serving process.
const serveEnv = "GPUNODE_BENCH_FETCH_SERVE"

// BenchmarkFetchProcess is acceptance 1 of the data issue: a random file
// (default 1 GiB, see -transfer.size) is added to the real block store of
// one process and fetched by another (this one) over loopback TCP libp2p
// into its own block store, then exported and compared by sha256. It
// reports the fetch rate and this process's peak RSS (VmHWM).
//
//	go test -run XXX -bench FetchProcess -benchtime 1x ./test/bench
func BenchmarkFetchProcess(b *testing.B) {
	if s := os.Getenv(serveEnv); s != "" {
		serveProcess(b, s)
		return
	}
	size := benchSize(b)
	var total time.Duration
	for range b.N {
		total += fetchFromProcess(b, size)
	}
	b.ReportMetric(float64(size)*float64(b.N)/(1<<20)/total.Seconds(), "MiB/s")
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

func openStore(b *testing.B, dir string) (*storage.DB, *storage.Blockstore) {
	db, err := storage.Open(filepath.Join(dir, "db"))
	if err != nil {
		b.Fatal(err)
	}
	bs, err := storage.NewBlockstore(db, dir, storage.WithoutFsync())
	if err != nil {
		b.Fatal(err)
	}
	return db, bs
}

// serveProcess imports size random bytes (streamed, never all in memory),
// prints "SERVE <addr> <root> <sha256>" and serves until stdin closes.
func serveProcess(b *testing.B, sizeStr string) {
	size, err := strconv.Atoi(sizeStr)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	db, bs := openStore(b, dir)
	defer db.Close()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ex, err := exchange.New(exchange.NewHost(h, "bench"), bs, storage.Links)
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close()
	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), int64(size)), sum)
	root, err := storage.ImportReader(context.Background(), bs, "data.bin", src, storage.ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	addr := h.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + h.ID().String()))
	fmt.Printf("SERVE %s %s %s\n", addr, root, hex.EncodeToString(sum.Sum(nil)))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func fetchFromProcess(b *testing.B, size int) time.Duration {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkFetchProcess$", "-test.benchtime=1x")
	cmd.Env = append(os.Environ(), serveEnv+"="+strconv.Itoa(size))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	var addr, rootStr, wantSum string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "SERVE" {
			addr, rootStr, wantSum = f[1], f[2], f[3]
			break
		}
	}
	if addr == "" {
		b.Fatalf("serving process gave no address: %v", sc.Err())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		b.Fatal(err)
	}
	root, err := cid.Decode(rootStr)
	if err != nil {
		b.Fatal(err)
	}

	dir := b.TempDir()
	db, bs := openStore(b, dir)
	defer db.Close()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ex, err := exchange.New(exchange.NewHost(h, "bench"), bs, storage.Links,
		exchange.WithStoreVerifies(func(err error) bool { return errors.Is(err, storage.ErrCIDMismatch) }))
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close()
	ctx := context.Background()
	if err := h.Connect(ctx, *ai); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	st, err := ex.Fetch(ctx, root, []peer.ID{ai.ID})
	el := time.Since(start)
	if err != nil {
		b.Fatalf("Fetch: %v", err)
	}
	b.Logf("fetched %d blocks, %d MiB in %v", st.Blocks, st.Bytes>>20, el)

	out := filepath.Join(dir, "out.bin")
	if err := storage.Export(ctx, bs, root, out, storage.ExportOptions{}); err != nil {
		b.Fatalf("Export: %v", err)
	}
	f, err := os.Open(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		b.Fatal(err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != wantSum {
		b.Fatalf("exported sha256 %s; want %s", got, wantSum)
	}
	return el
}

// peakRSS is this process's peak resident set size in bytes (VmHWM).
func peakRSS(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
