package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
)

// chainStatus asks the daemon on home for its chain status; ok is false
// while it is not answering (e.g. just killed).
func chainStatus(t *testing.T, home string) (consensus.ChainStatus, bool) {
	var st consensus.ChainStatus
	cl, err := api.ClientForDataDir(home)
	if err != nil {
		return st, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return st, cl.Do(ctx, http.MethodGet, "/chain/status", nil, &st) == nil
}

func chainBlock(t *testing.T, home string, h uint64) consensus.BlockInfo {
	t.Helper()
	var bi consensus.BlockInfo
	cl, err := api.ClientForDataDir(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(context.Background(), http.MethodGet, "/chain/blocks/"+itoa(h), nil, &bi); err != nil {
		t.Fatalf("%s block %d: %v", home, h, err)
	}
	return bi
}

func itoa(h uint64) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + h%10)}, b...)
		h /= 10
		if h == 0 {
			return string(b)
		}
	}
}

func waitChainHeight(t *testing.T, homes []string, h uint64, within time.Duration) {
	t.Helper()
	waitFor(t, within, "chain height "+itoa(h), func() bool {
		for _, home := range homes {
			st, ok := chainStatus(t, home)
			if !ok || st.Height < h {
				return false
			}
		}
		return true
	})
}

// TestChainKillNineAndCatchUp is acceptance 5 at process level: four
// validator processes commit transfers while one of them is killed with
// SIGKILL at random moments and restarted, five times; all end with the
// same blocks and state hash; a fifth node started late catches up by
// block sync (1,000 heights late with GPUNODE_E2E=1, 30 otherwise).
func TestChainKillNineAndCatchUp(t *testing.T) {
	late := uint64(30)
	if os.Getenv("GPUNODE_E2E") != "" {
		late = 1000
	}
	dir := t.TempDir()
	var homes, ids []string
	for i := range 5 {
		home, id := initHome(t, dir, "n"+itoa(uint64(i)))
		homes, ids = append(homes, home), append(ids, id)
	}
	g := ledger.NewGenesis("e2e")
	for i, id := range ids {
		if err := g.AddAccount(id, 1_000_000_000); err != nil {
			t.Fatal(err)
		}
		if i < 4 {
			if err := g.AddValidator(id, 10_000_000); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, home := range homes {
		if err := g.Save(home + "/genesis.json"); err != nil {
			t.Fatal(err)
		}
	}
	run := func(i int, boot string) *daemon {
		args := []string{"--role", "validator", "--disable-quic", "--log-level", "info"}
		if boot != "" {
			args = append(args, "--bootstrap", boot)
		}
		return startDaemon(t, homes[i], args...)
	}
	d0 := run(0, "")
	boot := tcpAddr(t, d0)
	ds := []*daemon{d0}
	for i := 1; i < 4; i++ {
		ds = append(ds, run(i, boot))
	}
	vals := homes[:4]
	waitChainHeight(t, vals, 2, 2*time.Minute)

	rng := rand.New(rand.NewPCG(5, 5))
	cl0, err := api.ClientForDataDir(homes[0])
	if err != nil {
		t.Fatal(err)
	}
	var txIDs []string
	for kill := range 5 {
		// Transfers keep flowing from node 0 while a victim dies.
		for range 3 {
			var sub consensus.SubmitTxResponse
			if err := cl0.Do(context.Background(), http.MethodPost, "/chain/txs",
				consensus.SubmitTxRequest{Type: "transfer", To: ids[4], Amount: 1}, &sub); err != nil {
				t.Fatalf("submit: %v", err)
			}
			txIDs = append(txIDs, sub.ID)
		}
		victim := 1 + rng.IntN(3) // node 0 is everyone's bootstrap peer
		<-time.After(time.Duration(rng.IntN(700)) * time.Millisecond)
		_ = ds[victim].cmd.Process.Kill() // SIGKILL: no shutdown path runs
		<-ds[victim].done
		ds[victim].done <- nil
		ds[victim] = run(victim, boot)
		st, _ := chainStatus(t, homes[0])
		waitChainHeight(t, vals, st.Height+2, 2*time.Minute)
		t.Logf("kill %d: node %d restarted; chain at %d", kill+1, victim, st.Height)
	}
	// The chain goes on to `late`, then the fifth node joins.
	waitChainHeight(t, vals, late, time.Duration(late)*time.Second+time.Minute)
	began := time.Now()
	run(4, boot)
	st, _ := chainStatus(t, homes[0])
	waitChainHeight(t, homes, st.Height, 5*time.Minute)
	t.Logf("fifth node caught up %d heights in %v", st.Height, time.Since(began))

	top := st.Height
	want := chainBlock(t, homes[0], top)
	for _, home := range homes[1:] {
		if got := chainBlock(t, home, top); got.Hash != want.Hash || got.Header.StateHash != want.Header.StateHash {
			t.Fatalf("%s differs at height %d: %s vs %s", home, top, got.Hash, want.Hash)
		}
	}
	for _, home := range homes {
		if st, ok := chainStatus(t, home); !ok || st.Invariant != "ok" {
			t.Fatalf("%s: supply invariant after the kill loop: %q (status ok=%v)", home, st.Invariant, ok)
		}
	}
	for _, id := range txIDs {
		var ti consensus.TxInfo
		if err := cl0.Do(context.Background(), http.MethodGet, "/chain/txs/"+id, nil, &ti); err != nil || ti.Status != "committed" {
			t.Fatalf("tx %s: %+v %v", id, ti, err)
		}
	}
	var acct consensus.AccountInfo
	cl4, err := api.ClientForDataDir(homes[4])
	if err != nil {
		t.Fatal(err)
	}
	if err := cl4.Do(context.Background(), http.MethodGet, "/chain/accounts/"+ids[4], nil, &acct); err != nil {
		t.Fatal(err)
	}
	if acct.Balance != 1_000_000_000+uint64(len(txIDs)) {
		t.Fatalf("recipient balance %d on the late node, want %d", acct.Balance, 1_000_000_000+len(txIDs))
	}
}
