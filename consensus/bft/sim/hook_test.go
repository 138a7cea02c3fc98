package sim

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft"
)

// countingApp wraps the built-in application and counts what it applies,
// like a ledger checking its supply invariant after every block.
type countingApp struct {
	Application
	applied *map[string][]bft.Hash
	id      string
	failAt  uint64
}

func (a *countingApp) Commit(h uint64, v bft.Value, cert bft.Certificate) error {
	if h == a.failAt {
		return errors.New("supply invariant broken")
	}
	if err := a.Application.Commit(h, v, cert); err != nil {
		return err
	}
	(*a.applied)[a.id] = append((*a.applied)[a.id], v.Hash)
	return nil
}

func TestApplicationHook(t *testing.T) {
	sc := Scenario{Name: "hook", Validators: 4, Heights: 4, Crashes: 2, CrashProb: 0.05, Loss: 0.05}
	for seed := range uint64(5) {
		applied := map[string][]bft.Hash{}
		var base AppFactory
		factory := func(n NodeInfo) Application {
			if base == nil {
				base = DefaultApp(n.Pool, false, seed)
			}
			applied[n.ID] = nil // a restarted node replays its chain
			return &countingApp{Application: base(n), applied: &applied, id: n.ID}
		}
		res, err := Run(sc, seed, factory)
		if err != nil {
			t.Fatal(err)
		}
		for id, chain := range applied {
			if len(chain) < sc.Heights {
				t.Errorf("seed %d: %s applied %d blocks; want at least %d", seed, id, len(chain), sc.Heights)
			}
			for i := range min(len(chain), len(res.Chain)) {
				if chain[i] != res.Chain[i] {
					t.Errorf("seed %d: %s applied %s at height %d; decided %s", seed, id, chain[i], i+1, res.Chain[i])
				}
			}
		}
	}
}

// TestFailureReportsSeedAndTrace: a broken invariant fails the run with the
// seed, the replay command and the delivered events.
func TestFailureReportsSeedAndTrace(t *testing.T) {
	sc := Scenario{Name: "broken", Validators: 4, Heights: 3}
	var base AppFactory
	factory := func(n NodeInfo) Application {
		if base == nil {
			base = DefaultApp(n.Pool, false, 42)
		}
		return &countingApp{Application: base(n), applied: &map[string][]bft.Hash{}, id: n.ID, failAt: 2}
	}
	_, err := Run(sc, 42, factory)
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("Run = %v; want *Error", err)
	}
	msg := err.Error()
	for _, want := range []string{"seed 42", "-seed 42", "supply invariant broken", "height 2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if len(se.Trace) < 10 || !strings.Contains(strings.Join(se.Trace, "\n"), "commit n") || !strings.Contains(se.Trace[0], fmt.Sprintf("seed %d", 42)) {
		t.Errorf("trace too thin: %d lines", len(se.Trace))
	}
}
