// Command wasmworker is a stand-alone wasm worker process for
// wasm.WithWorkerCommand: the executor starts it, hands it modules to run
// over stdin and stdout, and kills it to stop a run. Tests use it so that
// workers, which compile modules, run without the race detector.
package main

import (
	"fmt"
	"os"

	"github.com/gpunode/gpunode/compute/exec/wasm"
)

func main() {
	wasm.RunWorkerIfRequested()
	fmt.Fprintln(os.Stderr, "wasmworker: started by the wasm executor only")
	os.Exit(2)
}
