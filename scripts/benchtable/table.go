package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Row is one line of the table and of bench.json.
type Row struct {
	Benchmark  string   `json:"benchmark"`
	Figure     string   `json:"figure"`
	Status     string   `json:"status"`          // "ok", "not run", "failed"
	Ours       string   `json:"ours"`            // as printed
	Value      *float64 `json:"value,omitempty"` // ours as a number, in Unit
	Unit       string   `json:"unit,omitempty"`
	Comparison string   `json:"comparison"`
	Target     string   `json:"target"`
	// Met is whether ours meets the target; null without a target or
	// without a figure.
	Met *bool `json:"met"`
}

// figure describes a row: what it reads from the results and how it
// judges it. eval returns ours as a number and as text, the comparison
// when it depends on the run, and whether the target is met (nil: no
// target); ok false when the figures are missing.
type figure struct {
	bench, name, unit, comparison, target string
	reads                                 []string // the units it reads, as the benchmark reports them
	eval                                  func(r *Results) (v float64, ours, comparison string, met *bool, ok bool)
}

// The metric names are those the benchmarks in test/bench pass to
// b.ReportMetric; the comparisons and targets are the README's.
var rowFigures = []figure{
	{
		bench: "BenchmarkConsensus", name: "block-ms (median idle block interval)", unit: "ms",
		reads:      []string{"block-ms"},
		comparison: "CometBFT 1.21 s median block interval", target: "<= 250 ms",
		eval: metric("BenchmarkConsensus", "block-ms", "%.0f ms", func(v float64) bool { return v <= 250 }),
	},
	{
		bench: "BenchmarkConsensus", name: "tx/s (burst of signed transfers)", unit: "tx/s",
		reads:      []string{"tx/s"},
		comparison: "CometBFT ~2,500 tx/s", target: ">= 5,000 tx/s",
		eval: metric("BenchmarkConsensus", "tx/s", "%.0f tx/s", func(v float64) bool { return v >= 5000 }),
	},
	{
		bench: "BenchmarkConsensus", name: "commit-ms (median at 1,000 tx/s)", unit: "ms",
		reads:      []string{"commit-ms"},
		comparison: "-", target: "-",
		eval: metric("BenchmarkConsensus", "commit-ms", "%.0f ms", nil),
	},
	{
		bench: "BenchmarkAward", name: "award (10,000 offers, 1,000 bids)", unit: "ms",
		reads:      []string{"ms/award", "ns/op"},
		comparison: "Akash caps an order at 20 bids", target: "< 10 ms",
		eval: func(r *Results) (float64, string, string, *bool, bool) {
			v, ok := r.Value("BenchmarkAward", "ms/award")
			if !ok {
				ns, nok := r.Value("BenchmarkAward", "ns/op")
				v, ok = ns/1e6, nok
			}
			return v, fmt.Sprintf("%.2f ms", v), "", judge(v < 10), ok
		},
	},
	{
		bench: "BenchmarkOrderBookMatch", name: "order-book match (10,000 offers)", unit: "ms",
		reads:      []string{"ns/op", "matches"},
		comparison: "-", target: "-",
		eval: func(r *Results) (float64, string, string, *bool, bool) {
			ns, ok := r.Value("BenchmarkOrderBookMatch", "ns/op")
			ours := fmt.Sprintf("%.2f ms", ns/1e6)
			if n, nok := r.Value("BenchmarkOrderBookMatch", "matches"); nok {
				ours += fmt.Sprintf(" (%.0f matches)", n)
			}
			return ns / 1e6, ours, "", nil, ok
		},
	},
	{
		bench: "BenchmarkWasmTrain", name: "wasm/native (C kernel training segment)", unit: "x",
		reads:      []string{"wasm/native"},
		comparison: "native = 1", target: "<= 1.5",
		eval: metric("BenchmarkWasmTrain", "wasm/native", "%.2f", func(v float64) bool { return v <= 1.5 }),
	},
	{
		bench: "BenchmarkWasmTrain", name: "go-wasm/native (Go training segment)", unit: "x",
		reads:      []string{"go-wasm/native"},
		comparison: "native = 1", target: "-",
		eval: metric("BenchmarkWasmTrain", "go-wasm/native", "%.2f", nil),
	},
	{
		bench: "BenchmarkWasmTrain", name: "compile-ms cold vs cached-compile-ms", unit: "ms",
		reads:      []string{"compile-ms", "cached-compile-ms"},
		comparison: "cached-compile-ms", target: "-",
		eval: func(r *Results) (float64, string, string, *bool, bool) {
			cold, ok := r.Value("BenchmarkWasmTrain", "compile-ms")
			cmp := "cached: not reported"
			if cached, cok := r.Value("BenchmarkWasmTrain", "cached-compile-ms"); cok {
				cmp = fmt.Sprintf("cached %.0f ms", cached)
			}
			return cold, fmt.Sprintf("cold %.0f ms", cold), cmp, nil, ok
		},
	},
	{
		bench: "BenchmarkTransfer", name: "MiB/s vs raw stream (1 GiB, loopback)", unit: "MiB/s",
		reads:      []string{"MiB/s", "raw-MiB/s"},
		comparison: "raw-MiB/s", target: ">= 80% of raw",
		eval: relative("raw-MiB/s", "raw", 0.8, "%.0f%% of raw", 100),
	},
	{
		bench: "BenchmarkTransfer", name: "MiB/s vs bitswap", unit: "MiB/s",
		reads:      []string{"MiB/s", "bitswap-MiB/s"},
		comparison: "bitswap-MiB/s", target: ">= 2x bitswap",
		eval: relative("bitswap-MiB/s", "bitswap", 2, "%.1fx bitswap", 1),
	},
	{
		bench: "BenchmarkFetchProcess", name: "fetch MiB/s (1 GiB between processes)", unit: "MiB/s",
		reads:      []string{"MiB/s"},
		comparison: "-", target: "-",
		eval: metric("BenchmarkFetchProcess", "MiB/s", "%.0f MiB/s", nil),
	},
	{
		bench: "BenchmarkFetchProcess", name: "fetch peak-RSS-MiB", unit: "MiB",
		reads:      []string{"peak-RSS-MiB"},
		comparison: "-", target: "< 300 MiB",
		eval: metric("BenchmarkFetchProcess", "peak-RSS-MiB", "%.0f MiB", func(v float64) bool { return v < 300 }),
	},
}

func judge(b bool) *bool { return &b }

// metric is a row of one reported figure, printed with format and judged
// by meets (nil: no target).
func metric(bench, unit, format string, meets func(float64) bool) func(*Results) (float64, string, string, *bool, bool) {
	return func(r *Results) (float64, string, string, *bool, bool) {
		v, ok := r.Value(bench, unit)
		var met *bool
		if meets != nil {
			met = judge(meets(v))
		}
		return v, fmt.Sprintf(format, v), "", met, ok
	}
}

// relative is a BenchmarkTransfer row of MiB/s against another way's rate
// (unit): met when MiB/s >= factor x it. ratioFormat shows the ratio
// times scale.
func relative(unit, what string, factor float64, ratioFormat string, scale float64) func(*Results) (float64, string, string, *bool, bool) {
	return func(r *Results) (float64, string, string, *bool, bool) {
		v, ok := r.Value("BenchmarkTransfer", "MiB/s")
		other, ook := r.Value("BenchmarkTransfer", unit)
		if !ook || other <= 0 {
			return v, fmt.Sprintf("%.0f MiB/s", v), what + ": not reported", nil, ok
		}
		ours := fmt.Sprintf("%.0f MiB/s (%s)", v, fmt.Sprintf(ratioFormat, scale*v/other))
		return v, ours, fmt.Sprintf("%s %.0f MiB/s", what, other), judge(v >= factor*other), ok
	}
}

// Rows evaluates every figure against r.
func Rows(r *Results) []Row {
	var rows []Row
	for _, f := range rowFigures {
		row := Row{Benchmark: f.bench, Figure: f.name, Comparison: f.comparison, Target: f.target}
		v, ours, cmp, met, ok := f.eval(r)
		switch {
		case ok:
			row.Status, row.Ours, row.Value, row.Unit, row.Met = "ok", ours, &v, f.unit, met
			if cmp != "" {
				row.Comparison = cmp
			}
		case r.Failed[f.bench]:
			row.Status, row.Ours = "failed", "failed"
		default:
			row.Status, row.Ours = "not run", "not run"
		}
		if row.Comparison == "" {
			row.Comparison = "-"
		}
		rows = append(rows, row)
	}
	return rows
}

// PrintTable writes rows as an aligned table.
func PrintTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tFIGURE\tOURS\tCOMPARISON\tTARGET\tMET")
	last := ""
	for _, r := range rows {
		bench := strings.TrimPrefix(r.Benchmark, "Benchmark")
		if bench == last {
			bench = ""
		} else {
			last = bench
		}
		met := "-"
		switch {
		case r.Met == nil:
		case *r.Met:
			met = "yes"
		default:
			met = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", bench, r.Figure, r.Ours, r.Comparison, r.Target, met)
	}
	return tw.Flush()
}
