package wasm_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
)

// cacheDir is shared by the tests' executors so the test module compiles
// once per test binary, not once per test.
var cacheDir string

func TestMain(m *testing.M) {
	wasm.RunWorkerIfRequested()
	d, err := os.MkdirTemp("", "wasm-test-cache-")
	if err != nil {
		panic(err)
	}
	cacheDir = d
	code := m.Run()
	exectest.Cleanup()
	os.RemoveAll(d)
	os.Exit(code)
}

func testModule(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(exectest.Build(t, exectest.TestProgram, "wasip1", "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// workerBin is the stand-alone worker, built without the race detector so
// that compiling the test module in workers stays fast under -race.
func workerBin(t *testing.T) string {
	return exectest.Build(t, "github.com/gpunode/gpunode/compute/exec/wasm/wasmworker", runtime.GOOS, runtime.GOARCH)
}

func newExec(t *testing.T, opts ...wasm.Option) *wasm.Executor {
	t.Helper()
	e, err := wasm.New(append([]wasm.Option{wasm.WithWorkDir(t.TempDir()), wasm.WithCacheDir(cacheDir), wasm.WithWorkerCommand(workerBin(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func TestConformance(t *testing.T) {
	mod := testModule(t)
	e := newExec(t)
	if e.InProcess() {
		t.Fatal("executor with a worker command runs in-process")
	}
	exectest.Run(t, exectest.Harness{
		Exec: e,
		Spec: func(t *testing.T, args ...string) exec.Spec {
			return exec.Spec{Program: exec.Bytes(mod), Args: args}
		},
		MemoryLimit: 48 << 20,
	})
}

// The default worker is this binary re-executed (TestMain calls
// RunWorkerIfRequested). The minimal module keeps compilation cheap here
// even under the race detector.
func TestSelfWorker(t *testing.T) {
	e, err := wasm.New(wasm.WithWorkDir(t.TempDir()), wasm.WithCacheDir(cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if e.InProcess() {
		t.Fatal("RunWorkerIfRequested was called, yet the executor runs in-process")
	}
	res, _, err := run(t, e, minimalModule, 0)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

func run(t *testing.T, e *wasm.Executor, mod []byte, seed uint64, args ...string) (*exec.Result, string, error) {
	t.Helper()
	out := t.TempDir()
	res, err := e.Run(context.Background(), exec.Spec{
		Program: exec.Bytes(mod), Args: args, OutputDir: out, Seed: seed,
		Limits: exec.Limits{WallTime: time.Minute},
	})
	return res, out, err
}

// A module that reads the clock, the random source, crypto/rand and
// iterates a map produces the same bytes on every run with the same seed,
// also on a second executor (a second node), and different bytes with
// another seed.
func TestDeterministic(t *testing.T) {
	mod := testModule(t)
	e1, e2 := newExec(t), newExec(t)
	read := func(e *wasm.Executor, seed uint64) []byte {
		res, out, err := run(t, e, mod, seed, "nondet")
		if err != nil {
			t.Fatalf("Run: %v (stderr %q)", err, res.Stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "nondet.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, res.Stdout) {
			t.Fatal("stdout and output file differ")
		}
		return b
	}
	a, b, c := read(e1, 7), read(e1, 7), read(e2, 7)
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Fatalf("runs differ:\n%s\n---\n%s\n---\n%s", a, b, c)
	}
	if d := read(e1, 8); bytes.Equal(a, d) {
		t.Fatal("a different seed gave the same random values")
	}
	if !strings.Contains(string(a), "now 17356896") { // 2025-01-01 plus a few µs
		t.Errorf("clock does not start at the fixed epoch:\n%s", a)
	}
}

func TestHostileHostFile(t *testing.T) {
	e := newExec(t)
	res, _, err := run(t, e, testModule(t), 1, "hostfile")
	if !errors.Is(err, exec.ErrExit) || res.ExitCode != 4 {
		t.Fatalf("Run = %v, exit %d, stdout %q; want exit 4 (no host file readable)", err, res.ExitCode, res.Stdout)
	}
	if !strings.Contains(string(res.Stderr), "open host file") {
		t.Fatalf("stderr %q lacks the failed open", res.Stderr)
	}
}

func TestHostileSocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	e := newExec(t)
	res, _, err := run(t, e, testModule(t), 1, "socket", l.Addr().String())
	if !errors.Is(err, exec.ErrExit) || res.ExitCode != 5 {
		t.Fatalf("Run = %v, exit %d, stdout %q; want exit 5 (no network)", err, res.ExitCode, res.Stdout)
	}
	select {
	case <-accepted:
		t.Fatal("the module connected to a host socket")
	default:
	}
}

func TestHostileSymlink(t *testing.T) {
	e := newExec(t)
	res, out, err := run(t, e, testModule(t), 1, "symlink")
	if !errors.Is(err, exec.ErrExit) || res.ExitCode != 6 {
		t.Fatalf("Run = %v, exit %d, stdout %q; want exit 6 (no links)", err, res.ExitCode, res.Stdout)
	}
	if _, err := os.Lstat(filepath.Join(out, "link")); !os.IsNotExist(err) {
		t.Fatalf("a link was created in the output dir (lstat: %v)", err)
	}
}

// After hostile runs the executor still runs honest work.
func TestKeepsRunningAfterHostile(t *testing.T) {
	mod := testModule(t)
	e := newExec(t)
	for _, args := range [][]string{{"spin"}, {"membomb"}, {"bigstdout"}} {
		_, err := e.Run(context.Background(), exec.Spec{
			Program: exec.Bytes(mod), Args: args, OutputDir: t.TempDir(),
			Limits: exec.Limits{WallTime: 300 * time.Millisecond, MemoryBytes: 32 << 20, OutputBytes: 1 << 20},
		})
		if err == nil {
			t.Fatalf("%v succeeded", args)
		}
	}
	if res, _, err := run(t, e, mod, 1, "echo", "ok"); err != nil || !strings.Contains(string(res.Stdout), "args: ok") {
		t.Fatalf("honest run after hostile ones: %v", err)
	}
}

func TestBadModule(t *testing.T) {
	e := newExec(t)
	_, err := e.Run(context.Background(), exec.Spec{Program: exec.Bytes([]byte("\x00asm garbage")), OutputDir: t.TempDir()})
	if !errors.Is(err, exec.ErrBadProgram) {
		t.Fatalf("error = %v; want ErrBadProgram", err)
	}
	_, err = e.Run(context.Background(), exec.Spec{OutputDir: t.TempDir()})
	if !errors.Is(err, exec.ErrInvalidSpec) {
		t.Fatalf("no program: error = %v; want ErrInvalidSpec", err)
	}
}

// A second executor sharing the cache directory loads the compiled module
// from disk instead of compiling it again.
func TestCompilationCache(t *testing.T) {
	mod := minimalModule
	dir := t.TempDir()
	cold, err := newExec(t, wasm.WithCacheDir(dir)).Compile(context.Background(), mod)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache dir empty after compile (err %v)", err)
	}
	warm, err := newExec(t, wasm.WithCacheDir(dir)).Compile(context.Background(), mod)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compile cold %s, cached %s", cold, warm)
}

// minimalModule is the smallest wasip1 command: a _start that returns.
var minimalModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: func() -> ()
	0x03, 0x02, 0x01, 0x00, // function section: one func of type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export "_start"
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
}

func TestMinimalModuleRuns(t *testing.T) {
	res, _, err := run(t, newExec(t), minimalModule, 0)
	if err != nil || res.ExitCode != 0 || len(res.Outputs) != 0 {
		t.Fatalf("Run = %+v, %v; want success with no outputs", res, err)
	}
}

func TestWarm(t *testing.T) {
	e := newExec(t)
	if err := e.Warm(context.Background(), minimalModule); err != nil {
		t.Fatalf("Warm(minimal module) = %v", err)
	}
	if err := e.Warm(context.Background(), []byte("not wasm")); !errors.Is(err, exec.ErrBadProgram) {
		t.Fatalf("Warm(garbage) = %v; want ErrBadProgram", err)
	}
	// The worker that warmed stays usable for runs.
	if res, _, err := run(t, e, minimalModule, 0); err != nil || res.ExitCode != 0 {
		t.Fatalf("run after Warm = %+v, %v", res, err)
	}
}

// WorkerCPUTime counts the CPU time of runs in workers (on Linux), and
// neither the time of runs that were killed nor of in-process runs.
func TestWorkerCPUTime(t *testing.T) {
	mod := testModule(t)
	e := newExec(t)
	if got := e.WorkerCPUTime(); got != 0 {
		t.Fatalf("WorkerCPUTime before any run = %v", got)
	}
	if _, _, err := run(t, e, mod, 1, "echo", "ok"); err != nil {
		t.Fatal(err)
	}
	after := e.WorkerCPUTime()
	if (after > 0) != (runtime.GOOS == "linux") || after < 0 {
		t.Fatalf("WorkerCPUTime after a run on %s = %v", runtime.GOOS, after)
	}
	_, err := e.Run(context.Background(), exec.Spec{Program: exec.Bytes(mod), Args: []string{"spin"}, OutputDir: t.TempDir(),
		Limits: exec.Limits{WallTime: 200 * time.Millisecond}})
	if !errors.Is(err, exec.ErrTimeout) {
		t.Fatalf("spin: %v; want ErrTimeout", err)
	}
	if got := e.WorkerCPUTime(); got != after {
		t.Fatalf("WorkerCPUTime went from %v to %v over a killed run", after, got)
	}
}
