package node

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
)

func chainTestDaemon(t *testing.T, withGenesis bool) (*Daemon, *bytes.Buffer) {
	t.Helper()
	home := Home(t.TempDir())
	key, err := InitKey(home.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if withGenesis {
		id, _ := PeerIDFromKey(key)
		g := ledger.NewGenesis("chaind")
		if err := g.AddAccount(id.String(), 1_000_000_000); err != nil {
			t.Fatal(err)
		}
		if err := g.AddValidator(id.String(), 10_000_000); err != nil {
			t.Fatal(err)
		}
		if err := g.Save(home.GenesisFile()); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := StartDaemon(context.Background(), DaemonConfig{
		Home:      home,
		P2P:       Config{Network: "chaind", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableQUIC: true},
		APIListen: "127.0.0.1:0",
		Logger:    log,
	})
	if err != nil {
		t.Fatalf("StartDaemon: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, &logs
}

func TestDaemonChainService(t *testing.T) {
	d, _ := chainTestDaemon(t, true)
	if d.Chain() == nil {
		t.Fatal("no chain service with a genesis file")
	}
	cl, err := api.ClientForDataDir(string(d.cfg.Home))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var sub consensus.SubmitTxResponse
	if err := cl.Do(ctx, http.MethodPost, "/chain/txs", consensus.SubmitTxRequest{Type: "stake", Role: ledger.RoleProvider, Amount: 500_000}, &sub); err != nil {
		t.Fatal(err)
	}
	for {
		var ti consensus.TxInfo
		if err := cl.Do(ctx, http.MethodGet, "/chain/txs/"+sub.ID, nil, &ti); err != nil {
			t.Fatal(err)
		}
		if ti.Status == "committed" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stake not committed: %+v", ti)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var st consensus.ChainStatus
	if err := cl.Do(ctx, http.MethodGet, "/chain/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.ChainID != "chaind" || !st.Validator || st.Height == 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestDaemonWithoutGenesis(t *testing.T) {
	d, logs := chainTestDaemon(t, false)
	if d.Chain() != nil {
		t.Fatal("chain service without a genesis file")
	}
	if !bytes.Contains(logs.Bytes(), []byte("running without the chain service")) {
		t.Fatalf("log does not say the chain is off:\n%s", logs.String())
	}
	cl, err := api.ClientForDataDir(string(d.cfg.Home))
	if err != nil {
		t.Fatal(err)
	}
	err = cl.Do(context.Background(), http.MethodGet, "/chain/status", nil, nil)
	if !api.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("chain status without a chain: %v, want 404", err)
	}
}

// TestDaemonChainRunsMarketTxs checks that the daemon's chain has the
// market's transactions installed: a renter's open_job commits and the job
// with its escrow is in the ledger state.
func TestDaemonChainRunsMarketTxs(t *testing.T) {
	d, _ := chainTestDaemon(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := market.JobSpec{Runtime: "echo", Require: market.Requirements{Executor: "wasm"},
		Segments: 4, MaxPrice: 10, Deadline: 60, Verify: "replicate:1"}
	id, err := spec.ID()
	if err != nil {
		t.Fatal(err)
	}
	hash, _, err := d.Chain().SubmitOwn(ctx, settle.TxOpenJob, 0, settle.OpenJob{Spec: spec, Deposit: 40})
	if err != nil {
		t.Fatalf("submit open_job: %v", err)
	}
	for {
		// The tx index is written before the new state is published.
		if h, err := d.Chain().TxHeight(hash); err == nil && h > 0 && d.Chain().Height() >= h {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("open_job not committed within 60s")
		case <-time.After(50 * time.Millisecond):
		}
	}
	job, ok, err := settle.JobOf(d.Chain().State(), id)
	if err != nil || !ok {
		t.Fatalf("job %s after open_job: ok=%v err=%v", id, ok, err)
	}
	if job.Deposit != 40 || job.Renter != d.PeerID().String() {
		t.Fatalf("job = %+v; want deposit 40 from %s", job, d.PeerID())
	}
	if err := ledger.CheckInvariant(d.Chain().State()); err != nil {
		t.Fatalf("supply invariant after open_job: %v", err)
	}
}
