package sim

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	seedFlag     = flag.Int64("seed", -1, "replay this one seed (with -sim.scenario to pick the scenario) and print its trace")
	seedsFlag    = flag.Int("sim.seeds", 1000, "number of seeds to run across all scenarios")
	scenarioFlag = flag.String("sim.scenario", "", "run only the scenario with this name")
	traceFlag    = flag.Bool("sim.trace", false, "print the trace of every replayed seed")
	firstFlag    = flag.Uint64("sim.first", 0, "first seed of the range")
	e2eFlag      = flag.Bool("e2e", false, "long run: 100,000 seeds unless -sim.seeds is given (also GPUNODE_E2E=1)")
)

// seedCount is -sim.seeds, or 100,000 for make e2e.
func seedCount() int {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "sim.seeds" })
	if !explicit && (*e2eFlag || os.Getenv("GPUNODE_E2E") == "1") {
		return 100000
	}
	return *seedsFlag
}

func TestSim(t *testing.T) {
	var total int
	count := seedCount()
	for _, w := range Scenarios() {
		sc := w.Scenario
		if *scenarioFlag != "" && sc.Name != *scenarioFlag {
			continue
		}
		seeds := max(1, count*w.PerMille/1000)
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			var stats Stats
			for i := range seeds {
				seed := *firstFlag + uint64(i)
				if *seedFlag >= 0 {
					if i > 0 {
						break
					}
					seed = uint64(*seedFlag)
				}
				res, err := Run(sc, seed, nil)
				if err != nil {
					reportFailure(t, err)
					return
				}
				if *seedFlag >= 0 && (*traceFlag || testing.Verbose()) {
					t.Logf("trace:\n%s", strings.Join(res.Trace(), "\n"))
				}
				if len(res.Chain) < sc.Heights {
					t.Fatalf("seed %d: chain of %d heights, want %d", seed, len(res.Chain), sc.Heights)
				}
				stats.Events += res.Stats.Events
				stats.Commits += res.Stats.Commits
				stats.Evidence += res.Stats.Evidence
				stats.MaxRound = max(stats.MaxRound, res.Stats.MaxRound)
			}
			t.Logf("%s: %d seeds, %d events, %d commits, %d evidence, max round %d", sc.Name, seeds, stats.Events, stats.Commits, stats.Evidence, stats.MaxRound)
		})
		total += seeds
	}
	if total == 0 {
		t.Fatalf("no scenario named %q", *scenarioFlag)
	}
}

// reportFailure prints the seed, the replay command and the trace (the
// tail inline, all of it in a file).
func reportFailure(t *testing.T, err error) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("bft-sim-%s-seed-%d.trace", se.Scenario, se.Seed))
	werr := os.WriteFile(path, []byte(strings.Join(se.Trace, "\n")+"\n"), 0o644)
	tail := se.Trace[max(0, len(se.Trace)-60):]
	t.Fatalf("%v\nfull trace (%d events) in %s (write error: %v); last events:\n%s", se, len(se.Trace), path, werr, strings.Join(tail, "\n"))
}

// TestDeterministic: a seed replays to the same trace.
func TestDeterministic(t *testing.T) {
	for _, w := range Scenarios() {
		a, errA := Run(w.Scenario, 7, nil)
		b, errB := Run(w.Scenario, 7, nil)
		if (errA == nil) != (errB == nil) || !slices.Equal(a.Trace(), b.Trace()) {
			t.Fatalf("%s: seed 7 does not replay identically (%v, %v)", w.Scenario.Name, errA, errB)
		}
	}
}
