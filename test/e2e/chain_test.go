package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type chainStatusJSON struct {
	ChainID   string `json:"chain_id"`
	PeerID    string `json:"peer_id"`
	Height    uint64 `json:"height"`
	Validator bool   `json:"validator"`
}

type accountJSON struct {
	ID      string `json:"id"`
	Balance uint64 `json:"balance"`
	Nonce   uint64 `json:"nonce"`
	Height  uint64 `json:"height"`
	Bond    struct {
		Provider uint64 `json:"provider"`
	} `json:"bond"`
	Unbonding []struct {
		Role   string `json:"role"`
		Amount uint64 `json:"amount"`
	} `json:"unbonding"`
}

type txJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Height uint64 `json:"height"`
	Sender string `json:"sender"`
	Fee    uint64 `json:"fee"`
	Error  string `json:"error"`
}

type submitJSON struct {
	ID    string  `json:"id"`
	Nonce uint64  `json:"nonce"`
	Tx    *txJSON `json:"tx"`
}

// gpunodeJSON runs a command with --json and decodes its output into v.
func gpunodeJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustGpunode(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("gpunode %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func account(t *testing.T, home, id string) accountJSON {
	t.Helper()
	var a accountJSON
	args := []string{"chain", "account", "--home", home}
	if id != "" {
		args = append(args, id)
	}
	gpunodeJSON(t, &a, args...)
	return a
}

// TestChainTransfer runs a two-validator chain from a genesis made with
// `gpunode genesis`, plus a funded follower, and moves tokens with
// `gpunode transfer`: the balances every node reports are exact (the
// follower earns no block rewards, so its balance moves only by its txs).
func TestChainTransfer(t *testing.T) {
	const (
		network  = "e2echain"
		funds    = 50_000_000
		amount   = 1_234_567
		fee      = 5
		minFee   = 1
		valStake = 10_000_000
	)
	dir := t.TempDir()
	homes := map[string]string{}
	ids := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d"} {
		homes[n] = filepath.Join(dir, n)
		mustGpunode(t, "init", "--home", homes[n], "--network", network)
		ids[n] = strings.TrimSpace(mustGpunode(t, "id", "--home", homes[n]))
	}
	// a and b validate, c follows with a funded account, d never runs and
	// only receives.
	g := filepath.Join(dir, "genesis.json")
	mustGpunode(t, "genesis", "new", "--chain-id", network, "-o", g)
	mustGpunode(t, "genesis", "add-account", ids["a"], "100000000", "--genesis", g)
	mustGpunode(t, "genesis", "add-account", ids["b"], "100000000", "--genesis", g)
	mustGpunode(t, "genesis", "add-account", ids["c"], "50000000", "--genesis", g)
	mustGpunode(t, "genesis", "add-validator", ids["a"], "10000000", "--genesis", g)
	mustGpunode(t, "genesis", "add-validator", ids["b"], "10000000", "--genesis", g)
	data, err := os.ReadFile(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(homes[n], "genesis.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	a := startDaemon(t, homes["a"], "--role", "validator")
	var boot string
	for _, addr := range a.addrs {
		if strings.Contains(addr, "/tcp/") {
			boot = addr
		}
	}
	b := startDaemon(t, homes["b"], "--role", "validator", "--bootstrap", boot)
	c := startDaemon(t, homes["c"], "--role", "provider", "--bootstrap", boot)
	running := []string{"a", "b", "c"}

	waitFor(t, 40*time.Second, "every node at chain height 2", func() bool {
		for _, n := range running {
			var st chainStatusJSON
			gpunodeJSON(t, &st, "chain", "status", "--home", homes[n])
			if st.Height < 2 {
				return false
			}
		}
		return true
	})
	var st chainStatusJSON
	gpunodeJSON(t, &st, "chain", "status", "--home", homes["a"])
	if st.ChainID != network || st.PeerID != ids["a"] || !st.Validator {
		t.Errorf("chain status of a = %+v; want chain %s, peer %s, validator", st, network, ids["a"])
	}
	gpunodeJSON(t, &st, "chain", "status", "--home", homes["c"])
	if st.Validator {
		t.Errorf("follower c reports itself as a validator: %+v", st)
	}
	var vals struct {
		Validators []struct {
			ID    string `json:"id"`
			Stake uint64 `json:"stake"`
		} `json:"validators"`
	}
	gpunodeJSON(t, &vals, "chain", "validators", "--home", homes["c"])
	if len(vals.Validators) != 2 {
		t.Fatalf("validators = %+v, want a and b", vals)
	}
	for _, v := range vals.Validators {
		if (v.ID != ids["a"] && v.ID != ids["b"]) || v.Stake != valStake {
			t.Errorf("validator %+v, want a or b with stake %d", v, valStake)
		}
	}

	// A transfer from the follower waits for its block.
	var sub submitJSON
	gpunodeJSON(t, &sub, "transfer", ids["d"], "1234567", "--fee", "5", "--home", homes["c"])
	if len(sub.ID) != 64 || sub.Tx == nil || sub.Tx.Status != "committed" || sub.Tx.Height == 0 || sub.Tx.Fee != fee || sub.Tx.Sender != ids["c"] {
		t.Fatalf("transfer answer = %+v (tx %+v); want a committed tx from c with fee %d", sub, sub.Tx, fee)
	}
	var blk struct {
		Txs []string `json:"txs"`
	}
	waitFor(t, 20*time.Second, "the transfer's block on a", func() bool {
		out, err := gpunode(t, "chain", "block", strconv.FormatUint(sub.Tx.Height, 10), "--home", homes["a"], "--json")
		return err == nil && json.Unmarshal([]byte(out), &blk) == nil
	})
	if !contains(blk.Txs, sub.ID) {
		t.Errorf("block %d on a lists %v, not the transfer %s", sub.Tx.Height, blk.Txs, sub.ID)
	}

	wantC, wantD := uint64(funds-amount-fee), uint64(amount)
	checkBalances := func(what string) {
		t.Helper()
		waitFor(t, 20*time.Second, what+" on every node", func() bool {
			for _, n := range running {
				if account(t, homes[n], ids["c"]).Balance != wantC || account(t, homes[n], ids["d"]).Balance != wantD {
					return false
				}
			}
			return true
		})
	}
	checkBalances("balances after the transfer")
	if own := account(t, homes["c"], ""); own.ID != ids["c"] || own.Balance != wantC || own.Nonce != 1 {
		t.Errorf("gpunode chain account (own) on c = %+v; want %s, balance %d, nonce 1", own, ids["c"], wantC)
	}

	// A transfer beyond the balance is included but fails: non-zero exit,
	// the fee is paid and nothing else moves.
	out, err := gpunode(t, "transfer", ids["d"], "999999999999", "--home", homes["c"])
	if err == nil || !strings.Contains(out, "FAILED") {
		t.Fatalf("overdrawn transfer: err %v, output %q; want a failure", err, out)
	}
	wantC -= minFee
	checkBalances("balances after the failed transfer")

	// --no-wait returns at once; the tx commits later.
	sub = submitJSON{}
	gpunodeJSON(t, &sub, "transfer", ids["d"], "10", "--no-wait", "--home", homes["c"])
	if sub.Tx != nil || len(sub.ID) != 64 {
		t.Fatalf("--no-wait answer = %+v; want an ID and no tx", sub)
	}
	waitFor(t, 20*time.Second, "the --no-wait transfer committed on b", func() bool {
		out, err := gpunode(t, "chain", "tx", sub.ID, "--home", homes["b"], "--json")
		var tx txJSON
		return err == nil && json.Unmarshal([]byte(out), &tx) == nil && tx.Status == "committed"
	})
	wantC, wantD = wantC-10-minFee, wantD+10
	checkBalances("balances after the --no-wait transfer")

	// Provider stake moves from the balance to the bond, and back into
	// unbonding.
	gpunodeJSON(t, &sub, "stake", "provider", "200000", "--home", homes["c"])
	if sub.Tx == nil || sub.Tx.Status != "committed" {
		t.Fatalf("stake provider = %+v", sub)
	}
	sub = submitJSON{}
	gpunodeJSON(t, &sub, "unstake", "provider", "50000", "--home", homes["c"])
	if sub.Tx == nil || sub.Tx.Status != "committed" {
		t.Fatalf("unstake provider = %+v", sub)
	}
	wantC -= 200000 + 2*minFee
	checkBalances("balances after stake and unstake")
	acct := account(t, homes["a"], ids["c"])
	if acct.Bond.Provider != 150000 || len(acct.Unbonding) != 1 || acct.Unbonding[0].Amount != 50000 || acct.Unbonding[0].Role != "provider" {
		t.Errorf("c after stake 200000 and unstake 50000 = %+v; want 150000 bonded, 50000 unbonding", acct)
	}

	// Bad input is refused before anything is sent.
	for _, args := range [][]string{
		{"transfer", "not-a-peer", "10"},
		{"transfer", ids["d"], "0"},
		{"stake", "banker", "10"},
	} {
		if _, err := gpunode(t, append(args, "--home", homes["c"])...); err == nil {
			t.Errorf("gpunode %v succeeded", args)
		}
	}
	if got := account(t, homes["c"], ids["c"]).Balance; got != wantC {
		t.Errorf("refused commands changed c's balance: %d, want %d", got, wantC)
	}

	human := mustGpunode(t, "chain", "status", "--home", homes["b"])
	for _, want := range []string{network, ids["b"], "validator"} {
		if !strings.Contains(human, want) {
			t.Errorf("gpunode chain status output lacks %q:\n%s", want, human)
		}
	}
	c.stop(t)
	b.stop(t)
	a.stop(t)
}

// TestDevnetChain runs `gpunode devnet` twice on one home: the first run
// writes one genesis into every node's home, bonds the provider's stake
// and waits for blocks; the second resumes the same chain with the same
// file.
func TestDevnetChain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "devnet")
	type devnetJSON struct {
		Network string `json:"network"`
		Height  uint64 `json:"height"`
		Nodes   []struct {
			Name   string `json:"name"`
			Home   string `json:"home"`
			PeerID string `json:"peer_id"`
		} `json:"nodes"`
	}
	run := func() devnetJSON {
		t.Helper()
		var out devnetJSON
		gpunodeJSON(t, &out, "devnet", "--home", dir, "--network", "e2edev", "--validators", "2",
			"--providers", "1", "--renters", "0", "--scenario", "connect", "--ready-timeout", "45s")
		return out
	}
	first := run()
	if first.Network != "e2edev" || first.Height == 0 || len(first.Nodes) != 3 {
		t.Fatalf("devnet answer = %+v; want e2edev, 3 nodes, a height", first)
	}
	var genesis []byte
	for i, n := range first.Nodes {
		data, err := os.ReadFile(filepath.Join(n.Home, "genesis.json"))
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if i > 0 && string(data) != string(genesis) {
			t.Fatalf("%s has a different genesis.json", n.Name)
		}
		genesis = data
	}
	var g struct {
		ChainID  string `json:"chain_id"`
		Accounts []struct {
			ID string `json:"id"`
		} `json:"accounts"`
		Validators []struct {
			ID string `json:"id"`
		} `json:"validators"`
	}
	if err := json.Unmarshal(genesis, &g); err != nil {
		t.Fatal(err)
	}
	if g.ChainID != "e2edev" || len(g.Accounts) != 3 || len(g.Validators) != 2 ||
		g.Validators[0].ID != first.Nodes[0].PeerID || g.Validators[1].ID != first.Nodes[1].PeerID {
		t.Fatalf("devnet genesis = %+v; want chain e2edev, every node funded, the two validators bonded", g)
	}

	second := run()
	if second.Height <= first.Height {
		t.Errorf("resumed devnet at height %d, first run reached %d; want the chain to continue", second.Height, first.Height)
	}
	for _, n := range second.Nodes {
		data, err := os.ReadFile(filepath.Join(n.Home, "genesis.json"))
		if err != nil || string(data) != string(genesis) {
			t.Fatalf("%s: genesis.json changed on resume (%v)", n.Name, err)
		}
	}
}
