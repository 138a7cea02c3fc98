package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Results are the figures of one `go test -bench` run.
type Results struct {
	// Metrics holds every value reported per benchmark (GOMAXPROCS suffix
	// removed) and unit, one value per run (-count).
	Metrics map[string]map[string][]float64
	// Failed names the benchmarks that printed "--- FAIL".
	Failed map[string]bool
	// CPU is the "cpu:" line of the header, if any.
	CPU string
}

// Value is the median of the values bench reported for unit.
func (r *Results) Value(bench, unit string) (float64, bool) {
	vs := r.Metrics[bench][unit]
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// benchName is a benchmark's name without the -GOMAXPROCS suffix.
func benchName(s string) string { return procSuffix.ReplaceAllString(s, "") }

// Parse reads `go test -bench` output. A result line is
//
//	BenchmarkX-2   	       1	   2090829 ns/op	  2.091 ms/award
//
// but testing prints the name before the benchmark runs and the figures
// after it, so whatever the benchmark writes meanwhile (logs, child
// processes) lands in between: the figures can come on a later line of
// their own, which belongs to the last name printed.
func Parse(r io.Reader) (*Results, error) {
	res := &Results{Metrics: map[string]map[string][]float64{}, Failed: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	pending := "" // a name printed whose figures have not come yet
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "cpu: "):
			res.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
		case strings.Contains(line, "--- FAIL: Benchmark"):
			// After the name when the benchmark failed before its figures.
			_, after, _ := strings.Cut(line, "--- FAIL: ")
			res.Failed[benchName(strings.Fields(after)[0])] = true
			pending = ""
		case strings.HasPrefix(line, "Benchmark"):
			name, rest, _ := strings.Cut(line, "\t")
			name = benchName(strings.TrimSpace(name))
			if m, ok := figures(rest); ok {
				res.add(name, m)
				pending = ""
			} else {
				pending = name
			}
		case pending != "":
			if m, ok := figures(line); ok {
				res.add(pending, m)
				pending = ""
			}
		}
	}
	return res, sc.Err()
}

func (r *Results) add(bench string, m map[string]float64) {
	if r.Metrics[bench] == nil {
		r.Metrics[bench] = map[string][]float64{}
	}
	for unit, v := range m {
		r.Metrics[bench][unit] = append(r.Metrics[bench][unit], v)
	}
}

// figures parses "N  v1 unit1  v2 unit2 ...", the figures of a result
// line after the name.
func figures(s string) (map[string]float64, bool) {
	f := strings.Fields(s)
	if len(f) < 3 || len(f)%2 == 0 {
		return nil, false
	}
	if _, err := strconv.ParseUint(f[0], 10, 64); err != nil {
		return nil, false
	}
	m := map[string]float64{}
	for i := 1; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil, false
		}
		m[f[i+1]] = v
	}
	return m, true
}
