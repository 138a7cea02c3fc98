// Package bench holds gpunode's system benchmarks: real libp2p hosts on
// loopback, real badger stores, real signatures. Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/
//
// They report their results with b.ReportMetric; nothing here asserts a
// timing.
package bench
