package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/node"
)

func startTestDaemon(t *testing.T) (*node.Daemon, *api.Client) {
	t.Helper()
	home := node.Home(t.TempDir())
	if _, err := node.InitKey(home.KeyFile()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := node.StartDaemon(ctx, node.DaemonConfig{
		Home: home, P2P: testConfig(), APIListen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	c, err := api.ClientForDataDir(string(home))
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestDataAPIBadInput: malformed or impossible data requests get a clear
// 4xx error and change nothing.
func TestDataAPIBadInput(t *testing.T) {
	d, c := startTestDaemon(t)
	ctx := ctxT(t)
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	const okCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" // raw, sha2-256
	cases := []struct {
		name, method, path string
		body               any
		status             int
		msg                string
	}{
		{"relative add path", "POST", "/data/add", node.DataAddRequest{Path: "rel/f"}, 400, "absolute"},
		{"missing add path", "POST", "/data/add", node.DataAddRequest{Path: "/does/not/exist"}, 404, "no such file"},
		{"unknown add field", "POST", "/data/add", map[string]any{"path": file, "bogus": 1}, 400, "unknown field"},
		{"get without root", "POST", "/data/get", node.DataGetRequest{Output: file + ".out"}, 400, "root CID missing"},
		{"get bad root", "POST", "/data/get", node.DataGetRequest{Root: "Qm-nope", Output: file + ".out"}, 400, "bad root CID"},
		{"get relative output", "POST", "/data/get", node.DataGetRequest{Root: okCID, Output: "out"}, 400, "absolute"},
		{"get bad peer", "POST", "/data/get", node.DataGetRequest{Root: okCID, Output: file + ".out", Peers: []string{"nope"}}, 400, "bad peer ID"},
		{"get bad peer addr", "POST", "/data/get", node.DataGetRequest{Root: okCID, Output: file + ".out", Peers: []string{"/ip4/127.0.0.1/tcp/1"}}, 400, "bad peer address"},
		{"unknown transfer", "GET", "/data/transfers/999", nil, 404, "no transfer"},
		{"pin not held", "POST", "/data/pin", node.DataRootRequest{Root: okCID}, 404, "not held"},
		{"unpin not pinned", "POST", "/data/unpin", node.DataRootRequest{Root: okCID}, 404, "not pinned"},
		{"unpin bad root", "POST", "/data/unpin", node.DataRootRequest{Root: "zzz"}, 400, "bad root CID"},
	}
	for _, tc := range cases {
		err := c.Do(ctx, tc.method, tc.path, tc.body, nil)
		if !api.IsStatus(err, tc.status) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want status %d mentioning %q", tc.name, err, tc.status, tc.msg)
		}
	}
	// Without the token a mutating call is refused.
	anon, err := api.NewClient(c.BaseURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Do(ctx, "POST", "/data/add", node.DataAddRequest{Path: file}, nil); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("add without token: %v, want 401", err)
	}
	// Nothing changed: no roots, no pins, no transfers.
	var roots []node.DataRoot
	if err := c.Do(ctx, "GET", "/data", nil, &roots); err != nil || len(roots) != 0 {
		t.Errorf("ls after bad requests = %v, %v; want empty", roots, err)
	}
	if pins, err := d.Blocks().Pins(ctx); err != nil || len(pins) != 0 {
		t.Errorf("pins after bad requests = %v, %v; want none", pins, err)
	}
	var ts []node.DataTransfer
	if err := c.Do(ctx, "GET", "/data/transfers", nil, &ts); err != nil || len(ts) != 0 {
		t.Errorf("transfers after bad requests = %v, %v; want none", ts, err)
	}
}

func waitTransfer(t *testing.T, c *api.Client, id string) node.DataTransfer {
	t.Helper()
	ctx := ctxT(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var st node.DataTransfer
		if err := c.Do(ctx, "GET", "/data/transfers/"+id, nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.Finished() {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("transfer %s did not finish: %+v", id, st)
		case <-tick.C:
		}
	}
}

// TestDataAPILocal adds a directory, gets it back from the local store (no
// holders needed when everything is held), refuses to overwrite, and
// unpins and collects it; the hub sees the add and get events.
func TestDataAPILocal(t *testing.T) {
	d, c := startTestDaemon(t)
	ctx := ctxT(t)
	sub := d.Events().Subscribe(false, 0)
	defer sub.Close()

	dir := filepath.Join(t.TempDir(), "set")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 2_400_000) // several chunks, none alike
	_, _ = rand.NewChaCha8([32]byte{7}).Read(content)
	if err := os.WriteFile(filepath.Join(dir, "sub", "big"), content, 0o640); err != nil {
		t.Fatal(err)
	}
	var added node.DataAddResult
	if err := c.Do(ctx, "POST", "/data/add", node.DataAddRequest{Path: dir}, &added); err != nil {
		t.Fatal(err)
	}
	if added.Name != "set" || added.Size != uint64(len(content)) || added.Blocks < 5 {
		t.Errorf("add = %+v; want set, %d bytes, several blocks", added, len(content))
	}
	var roots []node.DataRoot
	if err := c.Do(ctx, "GET", "/data", nil, &roots); err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Root != added.Root || !roots[0].Pinned || roots[0].Type != "dir" || roots[0].Size != added.Size {
		t.Fatalf("ls = %+v, want the added dir pinned", roots)
	}

	out := filepath.Join(t.TempDir(), "out")
	var st node.DataTransfer
	if err := c.Do(ctx, "POST", "/data/get", node.DataGetRequest{Root: added.Root, Output: out}, &st); err != nil {
		t.Fatal(err)
	}
	st = waitTransfer(t, c, st.ID)
	if st.State != node.TransferDone || st.Blocks != 0 || st.SkippedBlocks != int64(added.Blocks) || st.TotalBytes != int64(added.Size) {
		t.Fatalf("local get = %+v; want done with all %d blocks skipped", st, added.Blocks)
	}
	got, err := os.ReadFile(filepath.Join(out, "sub", "big"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("exported file differs (err %v)", err)
	}

	// A second get to the same directory fails and leaves it alone.
	if err := c.Do(ctx, "POST", "/data/get", node.DataGetRequest{Root: added.Root, Output: out}, &st); err != nil {
		t.Fatal(err)
	}
	if st = waitTransfer(t, c, st.ID); st.State != node.TransferFailed || !strings.Contains(st.Error, "exists") {
		t.Errorf("get onto an existing directory = %+v, want failed: exists", st)
	}
	if got, err := os.ReadFile(filepath.Join(out, "sub", "big")); err != nil || !bytes.Equal(got, content) {
		t.Errorf("failed get changed the existing output (err %v)", err)
	}

	var gc node.DataGCResult
	if err := c.Do(ctx, "POST", "/data/gc", nil, &gc); err != nil || gc.Blocks != 0 {
		t.Errorf("gc with the root pinned = %+v, %v; want nothing removed", gc, err)
	}
	if err := c.Do(ctx, "POST", "/data/unpin", node.DataRootRequest{Root: added.Root}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "POST", "/data/gc", nil, &gc); err != nil || gc.Blocks != added.Blocks {
		t.Errorf("gc after unpin = %+v, %v; want all %d blocks removed", gc, err, added.Blocks)
	}
	if err := c.Do(ctx, "GET", "/data", nil, &roots); err != nil || len(roots) != 0 {
		t.Errorf("ls after gc = %+v, %v; want empty", roots, err)
	}

	seen := map[string]bool{}
	for !seen["data.add.done"] || !seen["data.get.done"] || !seen["data.get.failed"] || !seen["data.gc"] {
		select {
		case ev := <-sub.C():
			seen[ev.Type] = true
			if ev.Type == "data.get.done" {
				var done node.DataTransfer
				if err := json.Unmarshal(ev.Data, &done); err != nil || done.Root != added.Root {
					t.Errorf("data.get.done event %s: %v", ev.Data, err)
				}
			}
		case <-ctx.Done():
			t.Fatalf("events seen %v; want add, get done and failed, gc", seen)
		}
	}
}

// TestDataTransfersPruned: the service forgets the oldest finished
// transfers beyond its limit, so the list cannot grow without bound.
func TestDataTransfersPruned(t *testing.T) {
	_, c := startTestDaemon(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	var added node.DataAddResult
	if err := c.Do(ctx, "POST", "/data/add", node.DataAddRequest{Path: src}, &added); err != nil {
		t.Fatal(err)
	}
	get := func(i int) string {
		var st node.DataTransfer
		out := filepath.Join(dir, "out"+strconv.Itoa(i))
		if err := c.Do(ctx, "POST", "/data/get", node.DataGetRequest{Root: added.Root, Output: out}, &st); err != nil {
			t.Fatal(err)
		}
		return st.ID
	}
	const n = 300
	var last string
	for i := range n {
		last = get(i)
	}
	waitTransfer(t, c, last)
	var ts []node.DataTransfer
	if err := c.Do(ctx, "GET", "/data/transfers", nil, &ts); err != nil {
		t.Fatal(err)
	}
	for _, st := range ts {
		waitTransfer(t, c, st.ID)
	}
	get(n)
	if err := c.Do(ctx, "GET", "/data/transfers", nil, &ts); err != nil {
		t.Fatal(err)
	}
	if len(ts) > 257 || len(ts) < 200 {
		t.Errorf("%d transfers remembered after %d gets, want at most 257", len(ts), n+1)
	}
	if err := c.Do(ctx, "GET", "/data/transfers/1", nil, nil); !api.IsStatus(err, http.StatusNotFound) {
		t.Errorf("oldest transfer still there (%v), want it forgotten", err)
	}
	if ts[len(ts)-1].ID != strconv.Itoa(n+1) {
		t.Errorf("newest remembered transfer %s, want %d", ts[len(ts)-1].ID, n+1)
	}
}
