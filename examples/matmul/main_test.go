package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/examples/matmul/mat"
)

func TestMain(m *testing.M) {
	code := m.Run()
	exectest.Cleanup()
	os.Exit(code)
}

// The wasm build computes the same challenge answer as the native kernel,
// and the answer passes Freivalds' check.
func TestWasmMatchesNative(t *testing.T) {
	mod, err := os.ReadFile(exectest.Build(t, "github.com/gpunode/gpunode/examples/matmul", "wasip1", "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	worker := exectest.Build(t, "github.com/gpunode/gpunode/compute/exec/wasm/wasmworker", runtime.GOOS, runtime.GOARCH)
	e, err := wasm.New(wasm.WithWorkDir(t.TempDir()), wasm.WithWorkerCommand(worker))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	out := t.TempDir()
	res, err := e.Run(context.Background(), exec.Spec{Program: exec.Bytes(mod), Args: []string{"-seed", "42", "-n", "96", "-out", "c.bin"},
		OutputDir: out, Limits: exec.Limits{WallTime: time.Minute}})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, res.Stderr)
	}
	got, err := os.ReadFile(filepath.Join(out, "c.bin"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, _ := mat.Generate(42, 96)
	want := mat.Multiply(a, b, 96)
	if !bytes.Equal(got, mat.Encode(want)) {
		t.Fatal("wasm and native products differ")
	}
	c, err := mat.Decode(got, 96)
	if err != nil || !mat.Freivalds(a, b, c, 96, 3, 20) {
		t.Fatalf("wasm product fails the check (err %v)", err)
	}
}
