package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The data tests are the acceptance of the data issue, run through the CLI
// against real `gpunode run` processes on loopback.

// dataSize is the size of the large transfer: 1 GiB under `make e2e`
// (GPUNODE_E2E=1), 64 MiB otherwise. The code path is the same.
func dataSize() int64 {
	if os.Getenv("GPUNODE_E2E") == "1" {
		return 1 << 30
	}
	return 64 << 20
}

// maxFetcherRSS is the bound on the fetching daemon's peak resident memory.
const maxFetcherRSS = 300 << 20

// chunk is the daemon's chunk size (storage.DefaultChunkSize).
const chunk = 1 << 20

// gpunodeWithin runs the binary like gpunode but with its own time limit,
// for commands that move a lot of data.
func gpunodeWithin(t *testing.T, within time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = cleanEnv()
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("gpunode %s: %w\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// randomFile writes size pseudo-random bytes (seeded, so reproducible) to
// path and returns their sha256.
func randomFile(t *testing.T, path string, size int64, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s [32]byte
	s[0] = byte(seed)
	r := rand.NewChaCha8(s)
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, r, size); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// peakRSS is VmHWM of process pid, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// transfer mirrors node.DataTransfer (the test reads the CLI's and the API's
// JSON as a user would).
type transfer struct {
	ID            string `json:"id"`
	Root          string `json:"root"`
	State         string `json:"state"`
	Error         string `json:"error"`
	TotalBytes    int64  `json:"total_bytes"`
	ContentBytes  int64  `json:"content_bytes"`
	Blocks        int64  `json:"blocks"`
	Bytes         int64  `json:"bytes"`
	SkippedBlocks int64  `json:"skipped_blocks"`
	KnownBlocks   int64  `json:"known_blocks"`
	Peers         []struct {
		Peer   string `json:"peer"`
		Blocks int64  `json:"blocks"`
		Bytes  int64  `json:"bytes"`
	} `json:"peers"`
	FailedPeers map[string]string `json:"failed_peers"`
	Seconds     float64           `json:"seconds"`
	FetchSecs   float64           `json:"fetch_seconds"`
	ExportSecs  float64           `json:"export_seconds"`
}

func (tr transfer) from(p string) (blocks, bytes int64) {
	for _, c := range tr.Peers {
		if c.Peer == p {
			return c.Blocks, c.Bytes
		}
	}
	return 0, 0
}

func (tr transfer) finished() bool { return tr.State == "done" || tr.State == "failed" }

// transferStatus polls GET /api/v1/data/transfers/{id} on d.
func transferStatus(t *testing.T, d *daemon, id string) transfer {
	t.Helper()
	resp, err := http.Get(d.api + "/data/transfers/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr transfer
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET transfer %s: %d %s", id, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// startGet starts `gpunode data get --detach` on home and returns the
// transfer ID.
func startGet(t *testing.T, home, root, out string, peers ...string) string {
	t.Helper()
	args := []string{"data", "get", root, "-o", out, "--home", home, "--detach", "--json"}
	for _, p := range peers {
		args = append(args, "--peer", p)
	}
	var tr transfer
	if err := json.Unmarshal([]byte(mustGpunode(t, args...)), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.ID == "" {
		t.Fatal("data get --detach printed no transfer ID")
	}
	return tr.ID
}

// waitTransfer polls a transfer until cond holds, failing if it ends first
// (unless cond accepts the end).
func waitTransfer(t *testing.T, d *daemon, id string, within time.Duration, what string, cond func(transfer) bool) transfer {
	t.Helper()
	var tr transfer
	waitFor(t, within, what, func() bool {
		tr = transferStatus(t, d, id)
		if cond(tr) {
			return true
		}
		if tr.finished() {
			t.Fatalf("transfer %s ended (%s %s) before %s: %+v", id, tr.State, tr.Error, what, tr)
		}
		return false
	})
	return tr
}

// tcpAddr is d's TCP listen multiaddr with its /p2p part.
func tcpAddr(t *testing.T, d *daemon) string {
	t.Helper()
	for _, a := range d.addrs {
		if strings.Contains(a, "/tcp/") && strings.Contains(a, "/p2p/") {
			return a
		}
	}
	t.Fatalf("no TCP listen address among %v", d.addrs)
	return ""
}

func initHome(t *testing.T, dir, name string) (home, id string) {
	t.Helper()
	home = filepath.Join(dir, name)
	mustGpunode(t, "init", "--home", home, "--network", "e2e")
	return home, strings.TrimSpace(mustGpunode(t, "id", "--home", home))
}

func addFile(t *testing.T, home, path string) string {
	t.Helper()
	out, err := gpunodeWithin(t, 10*time.Minute, "data", "add", path, "--home", home)
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(out)
	if !strings.HasPrefix(root, "bafy") {
		t.Fatalf("data add printed %q, want a CIDv1", out)
	}
	return root
}

// TestDataAddGetOverDHT is acceptance 1: a random file (1 GiB under
// GPUNODE_E2E=1) added on one process and fetched by another over loopback,
// the holder found on the DHT, arrives byte-identical, with the fetching
// process's peak RSS under 300 MiB. It also runs ls, pin, unpin and gc.
func TestDataAddGetOverDHT(t *testing.T) {
	dir := t.TempDir()
	homeA, idA := initHome(t, dir, "a")
	homeB, idB := initHome(t, dir, "b")
	a := startDaemon(t, homeA)
	b := startDaemon(t, homeB, "--bootstrap", tcpAddr(t, a))
	waitFor(t, 60*time.Second, "each node in the other's DHT routing table", func() bool {
		return contains(status(t, homeA).RoutingTable, idB) && contains(status(t, homeB).RoutingTable, idA)
	})

	size := dataSize()
	src := filepath.Join(dir, "src.bin")
	sum := randomFile(t, src, size, 1)
	start := time.Now()
	root := addFile(t, homeA, src)
	t.Logf("added %d MiB in %v", size>>20, time.Since(start))

	// The announcement goes out in the background: get retries the DHT
	// search until it finds the holder.
	out := filepath.Join(dir, "out.bin")
	start = time.Now()
	got, err := gpunodeWithin(t, 10*time.Minute, "data", "get", root, "-o", out, "--home", homeB, "--json")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var tr transfer
	if err := json.Unmarshal([]byte(got), &tr); err != nil {
		t.Fatalf("data get --json: %v\n%s", err, got)
	}
	if tr.State != "done" || tr.TotalBytes != size || tr.ContentBytes != size {
		t.Fatalf("transfer %+v, want done with %d content bytes", tr, size)
	}
	if s := fileSHA256(t, out); s != sum {
		t.Fatalf("fetched file sha256 %s, want %s", s, sum)
	}
	if blocks, bytes := tr.from(idA); bytes < size || blocks != tr.Blocks {
		t.Errorf("from the holder: %d blocks, %d bytes; want all %d blocks and at least %d bytes", blocks, bytes, tr.Blocks, size)
	}
	rss := peakRSS(t, b.cmd.Process.Pid)
	t.Logf("fetched %d MiB: get command %v, transfer %.2fs of which block fetch %.2fs (%.0f MiB/s) and export %.2fs; fetcher peak RSS %d MiB",
		size>>20, took.Round(time.Millisecond), tr.Seconds, tr.FetchSecs, float64(size)/(1<<20)/tr.FetchSecs, tr.ExportSecs, rss>>20)
	if rss >= maxFetcherRSS {
		t.Errorf("fetcher peak RSS %d MiB, want under %d MiB", rss>>20, maxFetcherRSS>>20)
	}

	// ls shows the root pinned with its size; unpin + gc remove it.
	var roots []struct {
		Root   string `json:"root"`
		Size   int64  `json:"size"`
		Pinned bool   `json:"pinned"`
	}
	if err := json.Unmarshal([]byte(mustGpunode(t, "data", "ls", "--home", homeB, "--json")), &roots); err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Root != root || roots[0].Size != size || !roots[0].Pinned {
		t.Fatalf("data ls = %+v, want %s pinned with %d bytes", roots, root, size)
	}
	if _, err := gpunode(t, "data", "unpin", "not-a-cid", "--home", homeB); err == nil {
		t.Error("unpin of a malformed CID succeeded")
	}
	mustGpunode(t, "data", "unpin", root, "--home", homeB)
	var gc struct {
		Blocks int   `json:"blocks"`
		Bytes  int64 `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(mustGpunode(t, "data", "gc", "--home", homeB, "--json")), &gc); err != nil {
		t.Fatal(err)
	}
	if gc.Blocks != int(tr.Blocks) || gc.Bytes != tr.Bytes {
		t.Errorf("gc removed %d blocks, %d bytes; want the %d blocks, %d bytes fetched", gc.Blocks, gc.Bytes, tr.Blocks, tr.Bytes)
	}
	if ls := strings.TrimSpace(mustGpunode(t, "data", "ls", "--home", homeB, "--json")); ls != "[]" {
		t.Errorf("data ls after unpin and gc = %s, want []", ls)
	}
	// The holder still has it and it is still pinned there.
	if ls := mustGpunode(t, "data", "ls", "--home", homeA); !strings.Contains(ls, root) {
		t.Errorf("data ls on the holder lacks %s:\n%s", root, ls)
	}
	b.stop(t)
	a.stop(t)
}

// TestDataProviderKilledMidTransfer is acceptance 2: two providers hold the
// data; one of them is killed (SIGKILL) while blocks are moving; the fetch
// completes from the other without starting over: the bytes from the two
// add up to the transfer's bytes, which is the file once (not the file plus
// what was already fetched).
func TestDataProviderKilledMidTransfer(t *testing.T) {
	dir := t.TempDir()
	homeA, idA := initHome(t, dir, "a")
	homeB, idB := initHome(t, dir, "b")
	homeC, _ := initHome(t, dir, "c")
	// The serving rate is capped so the transfer lasts long enough to kill
	// a provider in the middle of it.
	const serveRate = 8 << 20
	a := startDaemon(t, homeA, "--data-serve-rate", strconv.Itoa(serveRate))
	b := startDaemon(t, homeB, "--data-serve-rate", strconv.Itoa(serveRate))
	c := startDaemon(t, homeC)

	const size = 64 << 20
	src := filepath.Join(dir, "src.bin")
	sum := randomFile(t, src, size, 2)
	root := addFile(t, homeA, src)
	if r := addFile(t, homeB, src); r != root {
		t.Fatalf("the same file added on two nodes got roots %s and %s", root, r)
	}

	out := filepath.Join(dir, "out.bin")
	id := startGet(t, homeC, root, out, tcpAddr(t, a), tcpAddr(t, b))
	before := waitTransfer(t, c, id, 60*time.Second, "both providers serving", func(tr transfer) bool {
		_, fromA := tr.from(idA)
		_, fromB := tr.from(idB)
		return fromA >= 4*chunk && fromB >= 4*chunk
	})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tr := waitTransfer(t, c, id, 2*time.Minute, "the transfer to end", transfer.finished)
	if tr.State != "done" {
		t.Fatalf("transfer %+v, want done", tr)
	}
	if s := fileSHA256(t, out); s != sum {
		t.Fatalf("fetched file sha256 %s, want %s", s, sum)
	}
	blocksA, bytesA := tr.from(idA)
	blocksB, bytesB := tr.from(idB)
	_, killedAt := before.from(idA)
	t.Logf("killed provider A after it served %d MiB; final: A %d blocks %d MiB, B %d blocks %d MiB, total %d blocks %d bytes; failed peers %v",
		killedAt>>20, blocksA, bytesA>>20, blocksB, bytesB>>20, tr.Blocks, tr.Bytes, tr.FailedPeers)
	if bytesA < killedAt || bytesB == 0 {
		t.Errorf("A served %d bytes (at least %d before the kill), B %d; want both to have served", bytesA, killedAt, bytesB)
	}
	if blocksA+blocksB != tr.Blocks || bytesA+bytesB != tr.Bytes {
		t.Errorf("per-peer counts %d+%d blocks, %d+%d bytes do not add up to %d blocks, %d bytes", blocksA, blocksB, bytesA, bytesB, tr.Blocks, tr.Bytes)
	}
	// Started over would mean the file's bytes plus what A had sent.
	if tr.Bytes < size || tr.Bytes > size+chunk {
		t.Errorf("transfer moved %d bytes for a %d-byte file; want the file once (plus its manifest)", tr.Bytes, size)
	}
	if _, ok := tr.FailedPeers[idA]; !ok {
		t.Errorf("failed peers %v, want the killed provider %s", tr.FailedPeers, idA)
	}
	c.stop(t)
	b.stop(t)
}

// TestDataFetchResumesAfterKill is acceptance 4: the fetching process is
// killed (SIGKILL) mid-transfer and restarted; the second get transfers
// only the blocks still missing.
func TestDataFetchResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	homeA, idA := initHome(t, dir, "a")
	homeB, _ := initHome(t, dir, "b")
	a := startDaemon(t, homeA, "--data-serve-rate", strconv.Itoa(16<<20))
	b := startDaemon(t, homeB)

	const size = 64 << 20
	src := filepath.Join(dir, "src.bin")
	sum := randomFile(t, src, size, 3)
	root := addFile(t, homeA, src)
	out := filepath.Join(dir, "out.bin")
	id := startGet(t, homeB, root, out, tcpAddr(t, a))
	before := waitTransfer(t, b, id, 60*time.Second, "a quarter of the file fetched", func(tr transfer) bool {
		return tr.Bytes >= size/4
	})
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.done
	b.done <- nil // for the cleanup's wait

	b2 := startDaemon(t, homeB)
	id2 := startGet(t, homeB, root, out, tcpAddr(t, a))
	tr := waitTransfer(t, b2, id2, 2*time.Minute, "the restarted transfer to end", transfer.finished)
	if tr.State != "done" {
		t.Fatalf("restarted transfer %+v, want done", tr)
	}
	if s := fileSHA256(t, out); s != sum {
		t.Fatalf("fetched file sha256 %s, want %s", s, sum)
	}
	t.Logf("killed the fetcher after %d blocks (%d MiB); the restarted get skipped %d blocks and fetched %d blocks (%d MiB) of %d",
		before.Blocks, before.Bytes>>20, tr.SkippedBlocks, tr.Blocks, tr.Bytes>>20, tr.KnownBlocks)
	if tr.SkippedBlocks < before.Blocks {
		t.Errorf("restarted get skipped %d blocks, want at least the %d stored before the kill", tr.SkippedBlocks, before.Blocks)
	}
	if tr.ContentBytes != size || tr.TotalBytes != size {
		t.Errorf("restarted get: content %d of %d bytes, want %d of %d (held before the kill counts)", tr.ContentBytes, tr.TotalBytes, size, size)
	}
	if tr.Blocks+tr.SkippedBlocks != tr.KnownBlocks {
		t.Errorf("fetched %d + skipped %d != %d blocks in the DAG", tr.Blocks, tr.SkippedBlocks, tr.KnownBlocks)
	}
	if max := size - before.Bytes + chunk; tr.Bytes > max {
		t.Errorf("restarted get moved %d bytes, want at most the %d missing", tr.Bytes, max)
	}
	if blocks, _ := tr.from(idA); blocks != tr.Blocks {
		t.Errorf("from A %d blocks, want all %d", blocks, tr.Blocks)
	}
	b2.stop(t)
	a.stop(t)
}
