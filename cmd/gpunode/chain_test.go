package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
)

type statusOnly struct{}

func (statusOnly) Status(context.Context) (api.Status, error) { return api.Status{}, nil }

// scriptedChain serves the chain's tx endpoints from a script: each GET of
// a tx answers the next entry (a status, or "" for a 404 not_found), the
// last entry repeating. It stands in for the consensus service so the
// CLI's waiting logic is tested on its own; the e2e tests run it against
// the real chain.
type scriptedChain struct {
	mu      sync.Mutex // guards got, posted, queried
	script  []string
	got     []consensus.SubmitTxRequest
	posted  int
	queried int
}

// counts returns how many txs were posted and tx queries answered.
func (s *scriptedChain) counts() (posted, queried int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posted, s.queried
}

func (s *scriptedChain) submit(_ *http.Request, in consensus.SubmitTxRequest) (consensus.SubmitTxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, in)
	s.posted++
	return consensus.SubmitTxResponse{ID: strings.Repeat("ab", 32), Nonce: 7}, nil
}

func (s *scriptedChain) tx(r *http.Request, _ struct{}) (consensus.TxInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.script[min(s.queried, len(s.script)-1)]
	s.queried++
	if st == "" {
		return consensus.TxInfo{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "tx is neither committed nor pending here")
	}
	out := consensus.TxInfo{ID: r.PathValue("id"), Status: st}
	if st != "pending" {
		out.Height = 42
	}
	if st == "failed" {
		out.Error = "ledger: insufficient funds"
	}
	return out, nil
}

// startAPI runs a real api.Server on a temporary home, with the chain's
// tx routes when sc is not nil.
func startAPI(t *testing.T, sc *scriptedChain) string {
	t.Helper()
	home := t.TempDir()
	srv, err := api.New(statusOnly{}, api.WithAddr("127.0.0.1:0"), api.WithDataDir(home))
	if err != nil {
		t.Fatal(err)
	}
	if sc != nil {
		for _, r := range []api.Route{
			{Method: http.MethodPost, Path: "/chain/txs", Handler: api.JSON(sc.submit)},
			{Method: http.MethodGet, Path: "/chain/txs/{id}", Handler: api.JSON(sc.tx)},
		} {
			if err := srv.Handle(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return home
}

func TestSubmitWaitsForInclusion(t *testing.T) {
	sc := &scriptedChain{script: []string{"pending", "", "pending", "committed"}}
	home := startAPI(t, sc)
	out, err := runCLI(t, "transfer", testPeerID(t, 9), "500", "--fee", "3", "--home", home, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got txOutcome
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Tx == nil || got.Tx.Status != "committed" || got.Tx.Height != 42 || got.Nonce != 7 {
		t.Fatalf("transfer --json = %s; want the committed tx at 42", out)
	}
	if _, q := sc.counts(); q != 4 {
		t.Errorf("polled %d times, want 4 (one 404 between pendings is not a drop)", q)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.got) != 1 || sc.got[0].Type != "transfer" || sc.got[0].To != testPeerID(t, 9) || sc.got[0].Amount != 500 || sc.got[0].Fee != 3 {
		t.Errorf("daemon received %+v, want a transfer of 500 with fee 3", sc.got)
	}
}

func TestSubmitOutcomes(t *testing.T) {
	for _, c := range []struct {
		name    string
		script  []string
		args    []string
		wantErr string // "" for success
		wantOut string
		polls   int
	}{
		{"failed receipt", []string{"failed"}, []string{"stake", "provider", "100"}, "", "FAILED: ledger: insufficient funds", 1},
		{"dropped", []string{"pending", "", ""}, []string{"unstake", "validator", "100"}, "dropped", "", 3},
		{"no wait", []string{"committed"}, []string{"transfer", testPeerID(t, 3), "1", "--no-wait"}, "", "not waiting", 0},
		{"timeout", []string{"pending"}, []string{"transfer", testPeerID(t, 3), "1", "--timeout", "300ms"}, "not committed within 300ms", "", -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc := &scriptedChain{script: c.script}
			home := startAPI(t, sc)
			out, err := runCLI(t, append(c.args, "--home", home)...)
			if c.name == "failed receipt" {
				// The outcome is printed, and the exit status says failure.
				if err == nil {
					t.Fatal("a failed tx exited successfully")
				}
			} else if c.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if !strings.Contains(out, c.wantOut) {
				t.Errorf("output %q lacks %q", out, c.wantOut)
			}
			if _, q := sc.counts(); c.polls >= 0 && q != c.polls {
				t.Errorf("polled %d times, want %d", q, c.polls)
			}
		})
	}
}

func TestChainCommandsRefuseBadInput(t *testing.T) {
	sc := &scriptedChain{script: []string{"committed"}}
	home := startAPI(t, sc)
	for _, args := range [][]string{
		{"transfer", "nobody", "10"},
		{"transfer", testPeerID(t, 1), "0"},
		{"transfer", testPeerID(t, 1), "-5"},
		{"transfer", testPeerID(t, 1), "1.5"},
		{"stake", "miner", "10"},
		{"unstake", "provider", "abc"},
		{"chain", "account", "nobody"},
	} {
		if _, err := runCLI(t, append(args, "--home", home)...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if p, _ := sc.counts(); p != 0 {
		t.Fatalf("refused commands sent %d txs", p)
	}
}

func TestChainCommandsWithoutChain(t *testing.T) {
	home := startAPI(t, nil)
	for _, args := range [][]string{{"chain", "status"}, {"chain", "account"}, {"transfer", testPeerID(t, 1), "1"}} {
		_, err := runCLI(t, append(args, "--home", home)...)
		if err == nil || !strings.Contains(err.Error(), "runs no chain") {
			t.Errorf("%v on a node without a chain: %v; want it to say the node runs no chain", args, err)
		}
	}
}
