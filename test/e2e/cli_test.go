// Package e2e builds the gpunode binary and drives it as a user would: init,
// run several daemons on loopback, and talk to them through the CLI.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gpunode-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gpunode")
	build := exec.Command("go", "build", "-o", binary, "github.com/gpunode/gpunode/cmd/gpunode")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building gpunode:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gpunode runs the binary to completion and returns its stdout.
func gpunode(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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

// cleanEnv keeps GPUNODE_* settings of the developer's shell out of tests.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GPUNODE_") {
			env = append(env, kv)
		}
	}
	return env
}

func mustGpunode(t *testing.T, args ...string) string {
	t.Helper()
	out, err := gpunode(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitAndID(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	mustGpunode(t, "init", "--home", home, "--network", "e2e")
	id1 := strings.TrimSpace(mustGpunode(t, "id", "--home", home))
	id2 := strings.TrimSpace(mustGpunode(t, "id", "--home", home))
	if id1 == "" || id1 != id2 {
		t.Fatalf("gpunode id twice = %q, %q; want the same non-empty peer ID", id1, id2)
	}
	if !strings.HasPrefix(id1, "12D3KooW") {
		t.Errorf("peer ID %q is not an Ed25519 peer ID", id1)
	}
	st, err := os.Stat(filepath.Join(home, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(home, "node.key"))
	if _, err := gpunode(t, "init", "--home", home, "--network", "e2e"); err == nil {
		t.Fatal("second gpunode init on the same home succeeded; want it to refuse")
	}
	keyAfter, _ := os.ReadFile(filepath.Join(home, "node.key"))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("second gpunode init changed the key file")
	}
	if id3 := strings.TrimSpace(mustGpunode(t, "id", "--home", home)); id3 != id1 {
		t.Fatalf("peer ID after refused init = %q, want %q", id3, id1)
	}
}

// daemon is a running `gpunode run`.
type daemon struct {
	home  string
	cmd   *exec.Cmd
	addrs []string // listen multiaddrs printed at start
	api   string
	done  chan error
	logs  *logBuffer
}

func startDaemon(t *testing.T, home string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"run", "--home", home, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--api-listen", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{home: home, cmd: cmd, done: make(chan error, 1), logs: &logBuffer{}}
	cmd.Stderr = d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("logs of %s:\n%s", home, d.logs.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				d.addrs = append(d.addrs, a)
			}
			if a, ok := strings.CutPrefix(line, "api on "); ok && !signalled {
				d.api = a
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		d.done <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-d.done:
		d.done <- err
		t.Fatalf("gpunode run exited before it was ready: %v\n%s", err, d.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("gpunode run did not print its API address within 60s\n%s", d.logs.String())
	}
	return d
}

// logBuffer collects a daemon's stderr; the process writes while the test
// may read.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Fatalf("gpunode run after SIGTERM: %v\n%s", err, d.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("gpunode run did not stop within 30s of SIGTERM")
	}
}

type statusJSON struct {
	PeerID       string   `json:"peer_id"`
	Network      string   `json:"network"`
	Roles        []string `json:"roles"`
	Peers        int      `json:"peers"`
	RoutingTable []string `json:"routing_table_peers"`
}

func status(t *testing.T, home string) statusJSON {
	t.Helper()
	out := mustGpunode(t, "status", "--home", home, "--json")
	var s statusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestTwoDaemonsFindEachOther is acceptance 5 of the foundation issue: two
// `gpunode run` processes on loopback, the second bootstrapped from the
// first, connect and see each other in the DHT routing table. It also checks
// `gpunode status` and the API's token rule (acceptance 6).
func TestTwoDaemonsFindEachOther(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	mustGpunode(t, "init", "--home", homeA, "--network", "e2e")
	mustGpunode(t, "init", "--home", homeB, "--network", "e2e")
	idA := strings.TrimSpace(mustGpunode(t, "id", "--home", homeA))
	idB := strings.TrimSpace(mustGpunode(t, "id", "--home", homeB))

	a := startDaemon(t, homeA, "--role", "validator,renter")
	if len(a.addrs) == 0 {
		t.Fatal("gpunode run printed no listen address")
	}
	var boot string
	for _, addr := range a.addrs {
		if strings.Contains(addr, "/tcp/") && strings.HasSuffix(addr, "/p2p/"+idA) {
			boot = addr
		}
	}
	if boot == "" {
		t.Fatalf("no TCP listen address with /p2p/%s among %v", idA, a.addrs)
	}
	if !strings.HasPrefix(a.api, "http://127.0.0.1:") {
		t.Errorf("API address = %q, want loopback by default", a.api)
	}
	b := startDaemon(t, homeB, "--role", "provider", "--bootstrap", boot)

	waitFor(t, 60*time.Second, "each node in the other's DHT routing table", func() bool {
		sa, sb := status(t, homeA), status(t, homeB)
		return contains(sa.RoutingTable, idB) && contains(sb.RoutingTable, idA)
	})

	sa := status(t, homeA)
	if sa.PeerID != idA || sa.Network != "e2e" || sa.Peers < 1 {
		t.Errorf("status of A = %+v; want peer %s on e2e with at least one peer", sa, idA)
	}
	if !contains(sa.Roles, "validator") || !contains(sa.Roles, "renter") {
		t.Errorf("status of A roles = %v, want validator and renter", sa.Roles)
	}
	human := mustGpunode(t, "status", "--home", homeB)
	for _, want := range []string{idB, "e2e", "provider"} {
		if !strings.Contains(human, want) {
			t.Errorf("gpunode status output lacks %q:\n%s", want, human)
		}
	}

	// A mutating call without the token is refused and changes nothing.
	resp, err := http.Post(strings.TrimSuffix(a.api, "/api/v1")+"/api/v1/shutdown", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /api/v1/shutdown without token: status %d, want 401", resp.StatusCode)
	}
	if s := status(t, homeA); s.PeerID != idA {
		t.Fatalf("node A changed after an unauthorised call: %+v", s)
	}

	b.stop(t)
	a.stop(t)
}
