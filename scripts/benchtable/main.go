// Command benchtable reads `go test -bench` output on stdin, passes it to
// stdout as it comes (so a long run shows its progress), and at the end
// prints one table of the figures that matter next to what they must beat,
// and writes the same rows as JSON. `make bench` pipes the benchmarks in
// ./test/bench through it:
//
//	go test -run '^$' -bench . ./test/bench/ 2>&1 | go run ./scripts/benchtable -json bench.json
//
// A figure missing from the input shows as "not run" ("failed" when its
// benchmark failed). The exit status is not about targets: make's
// pipefail makes a failing benchmark fail the run.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
)

// Report is what -json writes.
type Report struct {
	CPU  string `json:"cpu,omitempty"`
	Rows []Row  `json:"rows"`
	// Metrics are all the figures read, per benchmark and unit (the median
	// over -count runs).
	Metrics map[string]map[string]float64 `json:"metrics"`
}

func main() {
	jsonPath := flag.String("json", "", "also write the rows as JSON to this file")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, *jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, jsonPath string) error {
	res, err := Parse(io.TeeReader(in, out))
	if err != nil {
		return fmt.Errorf("read the benchmark output: %w", err)
	}
	rep := report(res)
	fmt.Fprintln(out)
	if err := PrintTable(out, rep.Rows); err != nil {
		return err
	}
	if jsonPath == "" {
		return nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // targets read "<= 250 ms"
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nwrote %s\n", jsonPath)
	return nil
}

func report(res *Results) Report {
	rep := Report{CPU: res.CPU, Rows: Rows(res), Metrics: map[string]map[string]float64{}}
	for bench, units := range res.Metrics {
		rep.Metrics[bench] = map[string]float64{}
		for unit := range units {
			rep.Metrics[bench][unit], _ = res.Value(bench, unit)
		}
	}
	return rep
}
