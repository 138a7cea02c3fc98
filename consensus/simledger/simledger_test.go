package simledger

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft/sim"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market/settle"
)

var (
	seedFlag     = flag.Int64("seed", -1, "replay this one seed (with -simledger.scenario) and print its trace")
	seedsFlag    = flag.Int("sim.seeds", 1000, "number of seeds across all scenarios (GPUNODE_E2E=1: 100,000)")
	scenarioFlag = flag.String("simledger.scenario", "", "run only the scenario with this name")
	firstFlag    = flag.Uint64("sim.first", 0, "first seed of the range")
)

// seedCount is -sim.seeds, or 100,000 under GPUNODE_E2E=1 (make e2e).
func seedCount() int {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "sim.seeds" })
	if !explicit && os.Getenv("GPUNODE_E2E") == "1" {
		return 100_000
	}
	return *seedsFlag
}

type totals struct {
	seeds, heights, txs, failed, slashes, reported, setChanges, memberChanges int
}

func TestSimLedger(t *testing.T) {
	count := seedCount()
	ran := 0
	for _, w := range Scenarios() {
		sc := w.Scenario
		if *scenarioFlag != "" && sc.Name != *scenarioFlag {
			continue
		}
		seeds := max(1, count*w.PerMille/1000)
		ran++
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			var tot totals
			market := map[ledger.EventKind]int{}
			for i := range seeds {
				seed := *firstFlag + uint64(i)
				if *seedFlag >= 0 {
					if i > 0 {
						break
					}
					seed = uint64(*seedFlag)
				}
				rep, _, err := run(sc, seed, withMarket(market))
				if err != nil {
					reportFailure(t, err)
					return
				}
				if *seedFlag >= 0 && testing.Verbose() {
					t.Logf("trace:\n%s", strings.Join(rep.Sim.Trace(), "\n"))
				}
				if rep.Heights < sc.Heights {
					t.Fatalf("seed %d: %d heights, want %d", seed, rep.Heights, sc.Heights)
				}
				tot.seeds++
				tot.heights += rep.Heights
				tot.txs += rep.Txs
				tot.failed += rep.FailedTxs
				tot.slashes += rep.Slashes
				tot.reported += rep.Reported
				tot.setChanges += rep.SetChanges
				tot.memberChanges += rep.MemberChanges
			}
			t.Logf("%s: %+v market events %v", sc.Name, tot, market)
			// The runs exercised what the scenario is for.
			if tot.txs == 0 || tot.failed == 0 && tot.seeds >= 20 {
				t.Errorf("%s: %d txs, %d failed: the workload did not run", sc.Name, tot.txs, tot.failed)
			}
			if sc.Byzantine > 0 && tot.seeds >= 10 && tot.slashes == 0 {
				t.Errorf("%s: no equivocation was slashed in %d seeds", sc.Name, tot.seeds)
			}
			if sc.GenesisValidators > 0 && tot.seeds >= 10 && tot.memberChanges == 0 {
				t.Errorf("%s: no validator joined or left in %d seeds", sc.Name, tot.seeds)
			}
			if tot.seeds >= 10 && (market[settle.EventJobOpened] == 0 || market[settle.EventLease] == 0 || market[settle.EventResult] == 0) {
				t.Errorf("%s: the market workload did not run: %v", sc.Name, market)
			}
		})
	}
	if ran == 0 {
		t.Fatalf("no scenario named %q", *scenarioFlag)
	}
}

// withMarket is a prep for run that adds the market to the ledger and its
// txs to the workload, counting committed market events in count (if not
// nil).
func withMarket(count map[ledger.EventKind]int) func(*world) {
	return func(w *world) { w.ext = marketExtension(count) }
}

// reportFailure prints the seed, the replay command and the trace (the
// tail inline, all of it in a file).
func reportFailure(t *testing.T, err error) {
	t.Helper()
	var se *sim.Error
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("simledger-%s-seed-%d.trace", se.Scenario, se.Seed))
	werr := os.WriteFile(path, []byte(strings.Join(se.Trace, "\n")+"\n"), 0o644)
	tail := se.Trace[max(0, len(se.Trace)-60):]
	t.Fatalf("%v\nfull trace (%d events) in %s (write error: %v); last events:\n%s", se, len(se.Trace), path, werr, strings.Join(tail, "\n"))
}

// TestDivergenceFails: a node whose state hash differs from the others'
// fails the run with the seed and this package's replay command.
func TestDivergenceFails(t *testing.T) {
	sc := Scenarios()[1].Scenario // honest-4
	_, _, err := run(sc, 3, func(w *world) { w.hashes[2] = [32]byte{1} })
	var se *sim.Error
	if !errors.As(err, &se) {
		t.Fatalf("run = %v; want *sim.Error", err)
	}
	for _, want := range []string{"state hash", "height 2", "seed 3", "go test ./consensus/simledger -run TestSimLedger -simledger.scenario honest-4 -seed 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestDeterministic: a seed replays to the same trace and ledger results.
func TestDeterministic(t *testing.T) {
	for _, w := range Scenarios() {
		a, _, errA := run(w.Scenario, 5, withMarket(nil))
		b, _, errB := run(w.Scenario, 5, withMarket(nil))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", w.Scenario.Name, errA, errB)
		}
		if !slices.Equal(a.Sim.Trace(), b.Sim.Trace()) || a.Txs != b.Txs || a.Slashes != b.Slashes || !slices.Equal(a.Sim.Chain, b.Sim.Chain) {
			t.Fatalf("%s: seed 5 does not replay identically", w.Scenario.Name)
		}
	}
}
