// Package bench holds gpunode's benchmarks: each runs a workload the way the
// node does and reports the figures that matter with b.ReportMetric. Run
// them with `go test -run x -bench . ./test/bench` (or `make bench`).
package bench
