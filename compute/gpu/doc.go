// Package gpu is a provider's view of its hardware: GPU inventory and
// telemetry through NVML, CPU and memory from the OS, polled on an interval
// and re-detected so GPUs that appear or vanish change what the node offers,
// and the allocation of GPUs to leases.
//
// # Usage
//
// Build a Monitor over a Detector (NewSystemDetector for the real machine;
// tests pass NewNVMLDetector over go-nvml's mock), call Run in a goroutine,
// and read Inventory whenever an offer or the API needs it. On a machine
// without the NVIDIA driver, or in a binary built without cgo, the detector
// reports ErrUnavailable; the Monitor logs that once and reports CPU and
// memory only. Allocator hands GPU indices to leases.
//
// The NVML code is behind the cgo build constraint (go-nvml does not compile
// without cgo); CGO_ENABLED=0 builds get a detector that always says NVML is
// unavailable.
package gpu
