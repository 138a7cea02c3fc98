// Package compute is a provider node's job runner: a bounded queue of job
// segments, run by the executors the node offers (compute/exec/wasm,
// compute/exec/process) with as many at once as there are free GPUs (and
// CPU slots for GPU-less work), the GPUs of each run allocated to it and
// pinned, and every step reported as an Event ending in a Receipt (runtime,
// exit status, output files and, through an OutputStore hook, the outputs'
// CID).
//
// Subpackages: gpu (inventory, telemetry, allocation), exec (executors and
// their conformance suite), bench (the hardware challenge).
//
// # Usage
//
// The node builds the executors and a gpu.Monitor, passes them to New, runs
// Service.Run in a goroutine and Submits a Job per leased segment. It
// forwards events (WithEvents; the callback must not block) to the API's
// event stream, serves Hardware() for `gpunode gpus` and Runtimes() for
// `gpunode runtimes`, and implements OutputStore over the block store.
package compute
