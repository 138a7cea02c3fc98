package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
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

// settleApp is unsettled until it has committed height `until`, and
// records the evidence it is given.
type settleApp struct {
	Application
	until, height uint64
	evidence      *int
}

func (a *settleApp) Commit(h uint64, v bft.Value, cert bft.Certificate) error {
	a.height = h
	return a.Application.Commit(h, v, cert)
}
func (a *settleApp) Settled() bool               { return a.height >= a.until }
func (a *settleApp) ReportEvidence(bft.Evidence) { *a.evidence++ }

// TestOptionsAndHooks: given identities name the nodes, Settler extends the
// run, EvidenceSink sees the machines' evidence, WithReplay sets the
// replay command of a failure.
func TestOptionsAndHooks(t *testing.T) {
	sc := Scenario{Name: "hooks", Validators: 4, Heights: 2, Byzantine: 1, Behaviour: Equivocate, Settle: 4}
	ids := func(seed uint64, n int) ([]string, []ed25519.PrivateKey) {
		var names []string
		var keys []ed25519.PrivateKey
		for i := range n {
			names = append(names, fmt.Sprintf("peer-%d", i))
			seed := sha256.Sum256(fmt.Appendf(nil, "k%d", i))
			keys = append(keys, ed25519.NewKeyFromSeed(seed[:]))
		}
		return names, keys
	}
	var seen []string
	evidence := 0
	var base AppFactory
	factory := func(n NodeInfo) Application {
		if base == nil {
			base = DefaultApp(n.Pool, false, 1)
		}
		seen = append(seen, n.ID)
		if n.Verify == nil {
			t.Error("NodeInfo.Verify is nil")
		}
		return &settleApp{Application: base(n), until: 5, evidence: &evidence}
	}
	res, err := Run(sc, 1, factory, WithIdentities(ids))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) < 5 {
		t.Errorf("chain of %d heights; the Settler wanted 5", len(res.Chain))
	}
	if !slices.Contains(seen, "peer-3") || slices.Contains(seen, "n0") {
		t.Errorf("factory saw IDs %v", seen)
	}
	if evidence == 0 {
		t.Error("no evidence reached the EvidenceSink")
	}
	_, err = Run(Scenario{Name: "broken", Validators: 4, Heights: 3}, 9, func(n NodeInfo) Application {
		return &countingApp{Application: DefaultApp(n.Pool, false, 9)(n), applied: &map[string][]bft.Hash{}, failAt: 2}
	}, WithReplay("replay %s with %d"))
	if err == nil || !strings.Contains(err.Error(), "replay broken with 9") {
		t.Errorf("error %v lacks the replay command", err)
	}
}
