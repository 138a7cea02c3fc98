// Package exec defines how a provider runs leased work: one Executor
// interface, the job Spec it accepts and the Result it returns, and the
// helpers every executor shares (materialising inputs, collecting outputs,
// bounded capture of stdout and stderr).
//
// Two executors implement it: compute/exec/wasm (wazero, deterministic, the
// default for verifiable work) and compute/exec/process (a provider
// allowlisted runtime such as a CUDA program, in its own process group).
// compute/exec/exectest is the conformance suite both pass.
//
// # Usage
//
// The caller owns the directories: it creates an empty Spec.OutputDir, hands
// inputs as Sources (bytes, a host file, or anything that opens a stream, for
// example a block-store reader), and after Run reads the files listed in
// Result.Outputs from Spec.OutputDir. The executor never imports the block
// store; adding outputs to it is the caller's job.
//
// Inside the program, inputs are read-only files under the directory named by
// the environment variable GPUNODE_INPUT_DIR and outputs are written under
// GPUNODE_OUTPUT_DIR (under wasm these are /in and /out).
//
// Errors are sentinels tested with errors.Is. A program that ran but failed
// returns a non-nil *Result together with the error, so the caller can show
// its exit code and stderr.
package exec
