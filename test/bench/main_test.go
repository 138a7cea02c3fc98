package bench

import (
	"os"
	"testing"

	"github.com/gpunode/gpunode/compute/exec/wasm"
)

// TestMain lets the wasm executor re-execute this test binary as its worker
// process. It is the package's only TestMain: add setup for other benchmarks
// here rather than a second one.
func TestMain(m *testing.M) {
	wasm.RunWorkerIfRequested()
	os.Exit(m.Run())
}
