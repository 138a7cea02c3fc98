// Package process is the executor for provider-allowlisted native runtimes
// (a CUDA program, a PyTorch entry point): each run gets its own work
// directory with the inputs materialised read-only, its GPUs pinned through
// CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES, resource limits, and its
// own process group, which is killed as a whole on timeout, cancellation, a
// limit, or when the main process exits (so nothing it started lingers).
//
// Unlike wasm, a process run is not deterministic and not sandboxed beyond
// what the provider's allowlist and the optional unprivileged credential give.
package process
