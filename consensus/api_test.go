package consensus

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus/ledger"
)

type statusBackend struct{}

func (statusBackend) Status(context.Context) (api.Status, error) { return api.Status{}, nil }

// soloService is a single validator without a network: it commits alone.
func soloService(t *testing.T, events Publisher) (*Service, *ledger.Keyring) {
	t.Helper()
	d := newDriver(t)
	g := d.keys.TestGenesis(testChain, 1, 1_000_000_000, 1_000_000)
	s, err := New(Config{Genesis: g, Key: d.keys.Key(d.keys.IDs[0]), KV: newMemKV(), Timeouts: fastTimeouts,
		CommitWait: 20 * time.Millisecond, Logger: testLogger(), Events: events})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, d.keys
}

type recordEvents struct {
	ch chan string
}

func (r recordEvents) Publish(typ string, _ any) {
	select {
	case r.ch <- typ:
	default:
	}
}

func TestAPI(t *testing.T) {
	ev := recordEvents{ch: make(chan string, 1024)}
	s, keys := soloService(t, ev)
	srv, err := api.New(statusBackend{}, api.WithToken("0123456789abcdef0123456789abcdef"), api.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterAPI(srv, s); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	cl, err := api.NewClient(hs.URL, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The node signs a transfer and a stake with its own key.
	var sub SubmitTxResponse
	if err := cl.Do(ctx, http.MethodPost, "/chain/txs", SubmitTxRequest{Type: "transfer", To: keys.IDs[1], Amount: 7}, &sub); err != nil {
		t.Fatal(err)
	}
	if sub.Nonce != 0 || sub.Sender != keys.IDs[0] {
		t.Fatalf("submit answer %+v", sub)
	}
	var sub2 SubmitTxResponse
	if err := cl.Do(ctx, http.MethodPost, "/chain/txs", SubmitTxRequest{Type: "stake", Role: ledger.RoleProvider, Amount: 50}, &sub2); err != nil {
		t.Fatal(err)
	}
	if sub2.Nonce != 1 {
		t.Fatalf("second own tx got nonce %d, want 1", sub2.Nonce)
	}
	// A tx signed elsewhere.
	tx, _ := ledger.NewTx(ledger.TxTransfer, 0, 1, ledger.Transfer{To: keys.IDs[0], Amount: 3})
	raw, _ := ledger.SignTx(keys.Key(keys.IDs[2]), testChain, time.Now(), tx)
	var sub3 SubmitTxResponse
	if err := cl.Do(ctx, http.MethodPost, "/chain/txs", SubmitTxRequest{Tx: raw}, &sub3); err != nil {
		t.Fatal(err)
	}
	if sub3.Sender != keys.IDs[2] {
		t.Fatalf("signed tx sender %q", sub3.Sender)
	}
	for _, id := range []string{sub.ID, sub2.ID, sub3.ID} {
		for {
			var ti TxInfo
			if err := cl.Do(ctx, http.MethodGet, "/chain/txs/"+id, nil, &ti); err != nil {
				t.Fatal(err)
			}
			if ti.Status == "committed" {
				break
			}
			if ti.Status != "pending" {
				t.Fatalf("tx %s: %+v", id, ti)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("tx %s not committed", id)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	var acct AccountInfo
	if err := cl.Do(ctx, http.MethodGet, "/chain/accounts/"+keys.IDs[0], nil, &acct); err != nil {
		t.Fatal(err)
	}
	if acct.Nonce != 2 || acct.Bond.Provider != 50 {
		t.Fatalf("account %+v", acct)
	}
	var st ChainStatus
	if err := cl.Do(ctx, http.MethodGet, "/chain/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Validator || st.Height == 0 || st.ChainID != testChain {
		t.Fatalf("status %+v", st)
	}
	var bi BlockInfo
	if err := cl.Do(ctx, http.MethodGet, "/chain/blocks/1", nil, &bi); err != nil {
		t.Fatal(err)
	}
	if bi.Height != 1 || len(bi.Committers) != 1 || bi.Committers[0] != keys.IDs[0] {
		t.Fatalf("block %+v", bi)
	}
	var vi ValidatorsInfo
	if err := cl.Do(ctx, http.MethodGet, "/chain/validators", nil, &vi); err != nil {
		t.Fatal(err)
	}
	if len(vi.Validators) != 1 || vi.Validators[0].ID != keys.IDs[0] {
		t.Fatalf("validators %+v", vi)
	}
	// Bad input: clear errors, nothing changes.
	for _, c := range []struct {
		method, path string
		in           any
		status       int
	}{
		{http.MethodPost, "/chain/txs", SubmitTxRequest{Type: "mint", Amount: 1}, 400},
		{http.MethodPost, "/chain/txs", SubmitTxRequest{Type: "transfer", To: keys.IDs[1]}, 400},
		{http.MethodPost, "/chain/txs", SubmitTxRequest{Tx: []byte("garbage")}, 400},
		{http.MethodPost, "/chain/txs", SubmitTxRequest{Tx: raw}, 400}, // replay of a committed tx: nonce used
		{http.MethodGet, "/chain/txs/00", nil, 400},
		{http.MethodGet, "/chain/txs/" + "aa" + sub.ID[2:], nil, 404},
		{http.MethodGet, "/chain/blocks/0", nil, 400},
		{http.MethodGet, "/chain/blocks/99999", nil, 404},
	} {
		err := cl.Do(ctx, c.method, c.path, c.in, nil)
		if c.status == 200 {
			if err != nil {
				t.Errorf("%s %s: %v", c.method, c.path, err)
			}
			continue
		}
		if !api.IsStatus(err, c.status) {
			t.Errorf("%s %s: %v, want status %d", c.method, c.path, err, c.status)
		}
	}
	// The event hub saw blocks and txs.
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case typ := <-ev.ch:
			seen[typ] = true
		case <-ctx.Done():
			t.Fatalf("events seen: %v", seen)
		}
	}
}

// TestCommitWaitSkippedForFullMempool: with a CommitWait far longer than
// the test, a mempool holding full blocks still commits them back to back;
// only the commit that leaves it short of a block waits.
func TestCommitWaitSkippedForFullMempool(t *testing.T) {
	d := newDriver(t)
	g := d.keys.TestGenesis(testChain, 1, 1_000_000_000, 1_000_000)
	g.Params.MaxBlockTxs = 2
	s, err := New(Config{Genesis: g, Key: d.keys.Key(d.keys.IDs[0]), KV: newMemKV(), Timeouts: fastTimeouts,
		CommitWait: time.Hour, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if _, _, err := s.SubmitOwn(context.Background(), ledger.TxTransfer, 0, ledger.Transfer{To: d.keys.IDs[1], Amount: 1}); err != nil {
			t.Fatal(err)
		}
	}
	committed := make(chan *Committed, 16)
	s.OnCommit(func(c *Committed) { committed <- c })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// New proposed height 1 before the txs came: it is empty; the full
	// blocks of heights 2 to 4 follow without the wait.
	deadline := time.After(time.Minute)
	for h := uint64(1); h <= 4; h++ {
		want := 2
		if h == 1 {
			want = 0
		}
		select {
		case c := <-committed:
			if c.Height != h || len(c.Block.Txs) != want {
				t.Fatalf("commit %d: height %d with %d txs, want height %d with %d", h, c.Height, len(c.Block.Txs), h, want)
			}
		case <-deadline:
			t.Fatalf("height %d not committed: the full mempool waited out CommitWait", h)
		}
	}
}
