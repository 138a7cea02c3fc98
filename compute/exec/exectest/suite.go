// Package exectest is the conformance suite for compute/exec executors: the
// same subtests run against every Executor, driving one test program
// (exectest/testprog) built for the executor's platform.
package exectest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
)

// Harness adapts one executor to the suite.
type Harness struct {
	// Exec is the executor under test.
	Exec exec.Executor
	// Spec returns a spec that runs the test program with args; the suite
	// fills in inputs, output directory and limits.
	Spec func(t *testing.T, args ...string) exec.Spec
	// MemoryLimit is the limit the memory subtest sets: small enough that the
	// test program's memory bomb reaches it quickly, large enough for the
	// program to start.
	MemoryLimit uint64
}

// Run runs every conformance subtest against h.
func Run(t *testing.T, h Harness) {
	t.Run("OutputsCaptured", func(t *testing.T) { testOutputs(t, h) })
	t.Run("ArgsAndEnv", func(t *testing.T) { testArgsEnv(t, h) })
	t.Run("InputsReadOnly", func(t *testing.T) { testInputsReadOnly(t, h) })
	t.Run("ExitStatus", func(t *testing.T) { testExit(t, h) })
	t.Run("WallTimeLimit", func(t *testing.T) { testWallTime(t, h) })
	t.Run("CancelPrompt", func(t *testing.T) { testCancel(t, h) })
	t.Run("MemoryLimit", func(t *testing.T) { testMemory(t, h) })
	t.Run("OutputFileLimit", func(t *testing.T) { testOutputLimit(t, h, "bigfile") })
	t.Run("StdoutLimit", func(t *testing.T) { testOutputLimit(t, h, "bigstdout") })
	t.Run("InvalidSpec", func(t *testing.T) { testInvalid(t, h) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, h) })
}

func spec(t *testing.T, h Harness, args ...string) exec.Spec {
	s := h.Spec(t, args...)
	s.OutputDir = t.TempDir()
	if s.Limits.WallTime == 0 {
		s.Limits.WallTime = time.Minute
	}
	return s
}

func testOutputs(t *testing.T, h Harness) {
	s := spec(t, h, "copy", "data/in.bin", "sub/out.bin")
	payload := bytes.Repeat([]byte("gpunode"), 1000)
	s.Inputs = map[string]exec.Source{"data/in.bin": exec.Bytes(payload)}
	res, err := h.Exec.Run(context.Background(), s)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d", res.ExitCode)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Name != "sub/out.bin" || res.Outputs[0].Size != int64(len(payload)) {
		t.Fatalf("outputs = %+v; want one file sub/out.bin of %d bytes", res.Outputs, len(payload))
	}
	got, err := os.ReadFile(filepath.Join(s.OutputDir, "sub", "out.bin"))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("output content differs from input (err %v)", err)
	}
	if !strings.Contains(string(res.Stdout), "copied 7000") {
		t.Fatalf("stdout = %q; want it to mention the copy", res.Stdout)
	}
}

func testArgsEnv(t *testing.T, h Harness) {
	s := spec(t, h, "echo", "a b", "c")
	s.Env = map[string]string{"TEST_Z": "last", "TEST_A": "first=1"}
	res, err := h.Exec.Run(context.Background(), s)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := string(res.Stdout)
	if !strings.Contains(out, "args: a b|c\n") {
		t.Errorf("stdout %q lacks the args", out)
	}
	if !strings.Contains(out, "TEST_A=first=1|TEST_Z=last\n") {
		t.Errorf("stdout %q lacks the env", out)
	}
}

func testInputsReadOnly(t *testing.T, h Harness) {
	s := spec(t, h, "writeinput", "in.txt")
	orig := []byte("original")
	s.Inputs = map[string]exec.Source{"in.txt": exec.Bytes(orig)}
	res, err := h.Exec.Run(context.Background(), s)
	if !errors.Is(err, exec.ErrExit) || res == nil || res.ExitCode != 3 {
		t.Fatalf("Run = %v, %+v; want ErrExit with status 3 (input not writable); stdout %q", err, res, stdoutOf(res))
	}
	if !bytes.Equal(orig, []byte("original")) {
		t.Fatal("caller's input changed")
	}
}

func testExit(t *testing.T, h Harness) {
	s := spec(t, h, "exit", "42")
	res, err := h.Exec.Run(context.Background(), s)
	if !errors.Is(err, exec.ErrExit) {
		t.Fatalf("Run error = %v; want ErrExit", err)
	}
	if res == nil || res.ExitCode != 42 || !strings.Contains(string(res.Stderr), "exiting with 42") {
		t.Fatalf("result = %+v; want exit 42 and stderr captured", res)
	}
}

func testWallTime(t *testing.T, h Harness) {
	s := spec(t, h, "spin")
	s.Limits.WallTime = 300 * time.Millisecond
	start := time.Now()
	res, err := h.Exec.Run(context.Background(), s)
	took := time.Since(start)
	if !errors.Is(err, exec.ErrTimeout) {
		t.Fatalf("Run error = %v; want ErrTimeout", err)
	}
	if res == nil || res.ExitCode == 0 {
		t.Fatalf("result = %+v; want a failed run", res)
	}
	if took > 10*time.Second {
		t.Fatalf("stopping took %s", took)
	}
}

func testCancel(t *testing.T, h Harness) {
	s := spec(t, h, "spin")
	ctx, cancel := context.WithCancel(context.Background())
	var canceledAt time.Time
	var mu sync.Mutex
	timer := time.AfterFunc(200*time.Millisecond, func() {
		mu.Lock()
		canceledAt = time.Now()
		mu.Unlock()
		cancel()
	})
	defer timer.Stop()
	_, err := h.Exec.Run(ctx, s)
	returned := time.Now()
	if !errors.Is(err, exec.ErrCanceled) {
		t.Fatalf("Run error = %v; want ErrCanceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if d := returned.Sub(canceledAt); d > 5*time.Second {
		t.Fatalf("Run returned %s after cancel; want prompt", d)
	}
}

func testMemory(t *testing.T, h Harness) {
	s := spec(t, h, "membomb")
	s.Limits.MemoryBytes = h.MemoryLimit
	s.Limits.WallTime = 30 * time.Second
	res, err := h.Exec.Run(context.Background(), s)
	if err == nil {
		t.Fatalf("memory bomb succeeded: %+v", res)
	}
	if errors.Is(err, exec.ErrTimeout) {
		t.Fatalf("memory bomb hit the time limit, not the memory limit: %v", err)
	}
	if !errors.Is(err, exec.ErrMemoryLimit) {
		t.Fatalf("Run error = %v; want ErrMemoryLimit (stderr %q)", err, tail(res))
	}
}

func testOutputLimit(t *testing.T, h Harness, behaviour string) {
	s := spec(t, h, behaviour)
	s.Limits.OutputBytes = 4 << 20
	res, err := h.Exec.Run(context.Background(), s)
	if !errors.Is(err, exec.ErrOutputLimit) {
		t.Fatalf("Run error = %v; want ErrOutputLimit", err)
	}
	if res != nil && int64(len(res.Stdout)) > s.Limits.OutputBytes {
		t.Fatalf("captured %d bytes of stdout, limit %d", len(res.Stdout), s.Limits.OutputBytes)
	}
}

func testInvalid(t *testing.T, h Harness) {
	for _, name := range []string{"../escape", "/abs", "a/../b", ""} {
		s := spec(t, h, "echo")
		s.Inputs = map[string]exec.Source{name: exec.Bytes(nil)}
		if _, err := h.Exec.Run(context.Background(), s); !errors.Is(err, exec.ErrInvalidSpec) {
			t.Errorf("input path %q: error = %v; want ErrInvalidSpec", name, err)
		}
	}
	s := spec(t, h, "echo")
	s.OutputDir = filepath.Join(t.TempDir(), "missing")
	if _, err := h.Exec.Run(context.Background(), s); !errors.Is(err, exec.ErrInvalidSpec) {
		t.Errorf("missing output dir: error = %v; want ErrInvalidSpec", err)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		s := spec(t, h, "copy", "x", "y")
		s.Inputs = map[string]exec.Source{"x": exec.Bytes([]byte{byte(i)})}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Exec.Run(context.Background(), s); err != nil {
				errs <- err
				return
			}
			b, err := os.ReadFile(filepath.Join(s.OutputDir, "y"))
			if err != nil || len(b) != 1 || b[0] != byte(i) {
				errs <- errors.New("concurrent run mixed up outputs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func stdoutOf(r *exec.Result) string {
	if r == nil {
		return ""
	}
	return string(r.Stdout)
}

func tail(r *exec.Result) string {
	if r == nil {
		return ""
	}
	s := string(r.Stderr)
	if len(s) > 400 {
		s = s[len(s)-400:]
	}
	return s
}
