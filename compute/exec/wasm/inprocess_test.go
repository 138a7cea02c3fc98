//go:build !race

package wasm_test

import (
	"testing"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
)

// In-process mode compiles the test module inside the test binary; under
// the race detector that alone takes minutes, so this conformance run is
// left to non-race test runs (`go test ./compute/exec/wasm`).
func TestConformanceInProcess(t *testing.T) {
	mod := testModule(t)
	e := newExec(t, wasm.WithInProcess())
	if !e.InProcess() {
		t.Fatal("WithInProcess ignored")
	}
	exectest.Run(t, exectest.Harness{
		Exec: e,
		Spec: func(t *testing.T, args ...string) exec.Spec {
			return exec.Spec{Program: exec.Bytes(mod), Args: args}
		},
		MemoryLimit: 48 << 20,
	})
}
