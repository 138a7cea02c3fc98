package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testdata/full.txt is `go test -bench . ./test/bench/` output in the
// shape testing prints it: the BenchmarkAward line was captured on the
// development machine; the others carry the README's figures, with log
// lines between BenchmarkConsensus's name and its figures as a benchmark
// that logs produces. testdata/failed.txt has a failed benchmark, a run
// with -count 3 and a partial BenchmarkTransfer.

func parseFile(t *testing.T, name string) *Results {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParse(t *testing.T) {
	res := parseFile(t, "full.txt")
	for _, c := range []struct {
		bench, unit string
		want        float64
	}{
		{"BenchmarkAward", "ns/op", 2090829},
		{"BenchmarkAward", "ms/award", 2.091},
		{"BenchmarkAward", "winners", 235},
		{"BenchmarkConsensus", "block-ms", 152}, // figures on a later line
		{"BenchmarkConsensus", "tx/s", 612.4},
		{"BenchmarkConsensus", "commit-ms", 248},
		{"BenchmarkFetchProcess", "peak-RSS-MiB", 158.2},
		{"BenchmarkOrderBookMatch", "matches", 1734},
		{"BenchmarkTransfer", "MiB/s", 245.3},
		{"BenchmarkTransfer", "raw-MiB/s", 319.8},
		{"BenchmarkTransfer", "bitswap-MiB/s", 171.6},
		{"BenchmarkWasmTrain", "wasm/native", 2.3},
		{"BenchmarkWasmTrain", "compile-ms", 1843},
		{"BenchmarkWasmTrain", "cached-compile-ms", 212.4},
	} {
		if got, ok := res.Value(c.bench, c.unit); !ok || got != c.want {
			t.Errorf("%s %s = %v (found %v); want %v", c.bench, c.unit, got, ok, c.want)
		}
	}
	if len(res.Metrics) != 6 {
		t.Errorf("read %d benchmarks, want 6: %v", len(res.Metrics), res.Metrics)
	}
	if res.CPU != "Oxide Virtual Turin-like Processor" {
		t.Errorf("cpu %q", res.CPU)
	}
	if len(res.Failed) != 0 {
		t.Errorf("failed %v in a passing run", res.Failed)
	}
}

func TestParseFailedAndRepeated(t *testing.T) {
	res := parseFile(t, "failed.txt")
	if !res.Failed["BenchmarkConsensus"] || len(res.Failed) != 1 {
		t.Errorf("failed = %v; want BenchmarkConsensus", res.Failed)
	}
	if _, ok := res.Metrics["BenchmarkConsensus"]; ok {
		t.Errorf("a failed benchmark has figures: %v", res.Metrics["BenchmarkConsensus"])
	}
	if got, _ := res.Value("BenchmarkAward", "ms/award"); got != 3.091 {
		t.Errorf("ms/award over 3 runs = %v; want their median 3.091", got)
	}
}

func met(b bool) *bool { return &b }

func TestRows(t *testing.T) {
	rows := Rows(parseFile(t, "full.txt"))
	if len(rows) != len(rowFigures) {
		t.Fatalf("%d rows for %d figures", len(rows), len(rowFigures))
	}
	want := map[string]struct {
		ours string
		met  *bool
	}{
		"block-ms (median idle block interval)":   {"152 ms", met(true)},
		"tx/s (burst of signed transfers)":        {"612 tx/s", met(false)},
		"commit-ms (median at 1,000 tx/s)":        {"248 ms", nil},
		"award (10,000 offers, 1,000 bids)":       {"2.09 ms", met(true)},
		"order-book match (10,000 offers)":        {"0.81 ms (1734 matches)", nil},
		"wasm/native (C kernel training segment)": {"2.30", met(false)},
		"go-wasm/native (Go training segment)":    {"7.80", nil},
		"compile-ms cold vs cached-compile-ms":    {"cold 1843 ms", nil},
		"MiB/s vs raw stream (1 GiB, loopback)":   {"245 MiB/s (77% of raw)", met(false)},
		"MiB/s vs bitswap":                        {"245 MiB/s (1.4x bitswap)", met(false)},
		"fetch MiB/s (1 GiB between processes)":   {"232 MiB/s", nil},
		"fetch peak-RSS-MiB":                      {"158 MiB", met(true)},
	}
	for _, r := range rows {
		w, ok := want[r.Figure]
		if !ok {
			t.Errorf("unexpected row %q", r.Figure)
			continue
		}
		if r.Status != "ok" || r.Ours != w.ours || (r.Met == nil) != (w.met == nil) || (r.Met != nil && *r.Met != *w.met) {
			t.Errorf("row %q = %s, %q, met %v; want ok, %q, met %v", r.Figure, r.Status, r.Ours, ptr(r.Met), w.ours, ptr(w.met))
		}
	}
}

func ptr(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func TestRowsNotRunAndFailed(t *testing.T) {
	for _, r := range Rows(parseFile(t, "failed.txt")) {
		want := "not run"
		switch r.Benchmark {
		case "BenchmarkConsensus":
			want = "failed"
		case "BenchmarkAward", "BenchmarkTransfer":
			want = "ok"
		}
		if r.Status != want {
			t.Errorf("%s %q: status %q; want %q", r.Benchmark, r.Figure, r.Status, want)
		}
		if r.Status != "ok" && (r.Met != nil || r.Value != nil || r.Ours != r.Status) {
			t.Errorf("%s %q without figures: ours %q, value %v, met %v", r.Benchmark, r.Figure, r.Ours, r.Value, ptr(r.Met))
		}
		// MiB/s came without raw-MiB/s and bitswap-MiB/s: no judgement.
		if r.Benchmark == "BenchmarkTransfer" && (r.Met != nil || !strings.Contains(r.Comparison, "not reported")) {
			t.Errorf("%q without the comparison rate: met %v, comparison %q", r.Figure, ptr(r.Met), r.Comparison)
		}
	}
	if rows := Rows(&Results{}); rows[0].Status != "not run" {
		t.Errorf("empty input: %+v", rows[0])
	}
}

// TestMetricNamesFromSources holds the rows to the names the benchmarks
// pass to b.ReportMetric, so that renaming one there fails here.
func TestMetricNamesFromSources(t *testing.T) {
	files, err := filepath.Glob("../../test/bench/*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no benchmark sources: %v", err)
	}
	reported := map[string]bool{"ns/op": true} // testing's own
	benches := map[string]bool{}
	metricRE := regexp.MustCompile(`ReportMetric\([^\n]*,\s*"([^"]+)"\)`)
	benchRE := regexp.MustCompile(`(?m)^func (Benchmark\w+)\(b \*testing\.B\)`)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricRE.FindAllSubmatch(src, -1) {
			reported[string(m[1])] = true
		}
		for _, m := range benchRE.FindAllSubmatch(src, -1) {
			benches[string(m[1])] = true
		}
	}
	// BenchmarkTransfer passes its units through a helper.
	for _, u := range []string{"MiB/s", "raw-MiB/s", "bitswap-MiB/s"} {
		src, _ := os.ReadFile("../../test/bench/transfer_bench_test.go")
		if bytes.Contains(src, []byte(`"`+u+`")`)) {
			reported[u] = true
		}
	}
	for _, f := range rowFigures {
		if !benches[f.bench] {
			t.Errorf("row %q: no %s in test/bench", f.name, f.bench)
		}
		for _, u := range f.reads {
			if !reported[u] {
				t.Errorf("row %q reads %q, which no benchmark in test/bench reports", f.name, u)
			}
		}
	}
}

func TestRunWritesTableAndJSON(t *testing.T) {
	sample, err := os.ReadFile("testdata/full.txt")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	var out bytes.Buffer
	if err := run(bytes.NewReader(sample), &out, path); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out.Bytes(), sample) {
		t.Errorf("the input is not passed through unchanged:\n%s", out.String())
	}
	table := out.String()[len(sample):]
	for _, s := range []string{"FIGURE", "OURS", "COMPARISON", "TARGET", "MET", "CometBFT 1.21 s", "612 tx/s", "NO", "yes", "wrote " + path} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"target": "<= 250 ms"`)) {
		t.Errorf("bench.json escapes the targets:\n%s", b)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(rep.Rows) != len(rowFigures) || rep.Rows[0].Value == nil || *rep.Rows[0].Value != 152 || rep.Rows[0].Unit != "ms" {
		t.Errorf("bench.json rows = %+v", rep.Rows)
	}
	if rep.Metrics["BenchmarkTransfer"]["raw-cpu-s/GiB"] != 3.117 {
		t.Errorf("bench.json metrics lack raw-cpu-s/GiB: %v", rep.Metrics["BenchmarkTransfer"])
	}
}

// TestRunStreams checks that output is passed on as it comes, a benchmark
// name included before its figures and newline arrive, so that a long run
// shows what it is doing.
func TestRunStreams(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(inR, outW, "")
		outW.CloseWithError(err)
		done <- err
	}()
	partial := "BenchmarkConsensus-2        \t"
	go func() { _, _ = io.WriteString(inW, partial) }()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, len(partial))
		_, _ = io.ReadFull(outR, buf)
		got <- string(buf)
	}()
	select {
	case s := <-got:
		if s != partial {
			t.Fatalf("passed through %q; want %q", s, partial)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the partial line was not passed through before the rest arrived")
	}
	go func() {
		_, _ = io.WriteString(inW, "       1\t  150.0 block-ms\n")
		inW.Close()
	}()
	rest, err := io.ReadAll(outR)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), "150 ms") {
		t.Errorf("table after streaming lacks the figure:\n%s", rest)
	}
}
