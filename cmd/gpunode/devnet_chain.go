package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/node"
)

// Devnet genesis amounts, in tokens: every node's balance, each
// validator's bonded stake, and the provider stake devnet bonds for each
// provider once the chain runs (the genesis format bonds validator stake
// only).
const (
	devnetBalance       = 100_000_000
	devnetValidatorBond = 10_000_000
	devnetProviderBond  = 1_000_000
)

// devnetGenesis is the genesis of a devnet: chain ID = network, every node
// funded, every validator node bonded.
func devnetGenesis(network string, nodes []*devnetNode, now time.Time) (*ledger.Genesis, error) {
	g := ledger.NewGenesis(network)
	g.GenesisTime = now.UTC().Truncate(time.Second)
	for _, n := range nodes {
		if err := g.AddAccount(n.PeerID, devnetBalance); err != nil {
			return nil, err
		}
		if slices.Contains(n.Roles, string(node.RoleValidator)) {
			if err := g.AddValidator(n.PeerID, max(devnetValidatorBond, g.Params.MinValidatorStake)); err != nil {
				return nil, err
			}
		}
	}
	if _, err := setGenesisMarket(g); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return g, nil
}

// ensureDevnetGenesis gives every node the same <home>/genesis.json. On a
// resume the existing file is kept (and copied to nodes added since);
// otherwise a new one is written. fresh reports a new chain.
func ensureDevnetGenesis(nodes []*devnetNode, network string, now time.Time) (fresh bool, err error) {
	var g *ledger.Genesis
	var missing []*devnetNode
	for _, n := range nodes {
		path := node.Home(n.Home).GenesisFile()
		eg, err := ledger.Load(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, n)
		case err != nil:
			return false, fmt.Errorf("devnet: %s: %w", n.Name, err)
		case g == nil:
			g = eg
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	if g == nil {
		if g, err = devnetGenesis(network, nodes, now); err != nil {
			return false, fmt.Errorf("devnet: genesis: %w", err)
		}
		fresh = true
	}
	for _, n := range missing {
		if err := g.Save(node.Home(n.Home).GenesisFile()); err != nil {
			return false, fmt.Errorf("devnet: %s: %w", n.Name, err)
		}
	}
	return fresh, nil
}

// waitDevnetChain waits until every node's chain height has advanced past
// what it first reported, and returns the lowest height then seen.
func waitDevnetChain(ctx context.Context, nodes []*devnetNode, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	clients := make([]*api.Client, len(nodes))
	for i, n := range nodes {
		c, err := api.ClientForDataDir(n.Home)
		if err != nil {
			return 0, err
		}
		clients[i] = c
	}
	first := make([]uint64, len(nodes))
	seen := make([]bool, len(nodes))
	for {
		behind, low := "", uint64(0)
		for i, c := range clients {
			var st consensus.ChainStatus
			if err := c.Do(ctx, http.MethodGet, "/chain/status", nil, &st); err != nil {
				if api.IsStatus(err, http.StatusNotFound) {
					return 0, fmt.Errorf("devnet: %s runs no chain (see %s/gpunode.log)", nodes[i].Name, nodes[i].Home)
				}
				behind = nodes[i].Name
				continue
			}
			if !seen[i] {
				first[i], seen[i] = st.Height, true
			}
			if st.Height <= first[i] && behind == "" {
				behind = nodes[i].Name
			}
			if i == 0 || st.Height < low {
				low = st.Height
			}
		}
		if behind == "" {
			return low, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("devnet: the chain does not advance on %s (see its gpunode.log)", behind)
		case err := <-firstExit(nodes):
			return 0, fmt.Errorf("devnet: a node stopped while starting: %w", err)
		case <-tick.C:
		}
	}
}

// stakeDevnetProviders bonds devnetProviderBond of provider stake for each
// provider node that has none yet (a new chain; on a resume they have it),
// and waits for the txs to commit. It returns the highest commit height.
func stakeDevnetProviders(ctx context.Context, nodes []*devnetNode, progress func(string, ...any)) (uint64, error) {
	var top uint64
	for _, n := range nodes {
		if !slices.Contains(n.Roles, string(node.RoleProvider)) {
			continue
		}
		c, err := api.ClientForDataDir(n.Home)
		if err != nil {
			return 0, err
		}
		cc := chainClient{c}
		var acct consensus.AccountInfo
		if err := cc.do(ctx, http.MethodGet, "/chain/accounts/"+n.PeerID, nil, &acct); err != nil {
			return 0, fmt.Errorf("devnet: %s: %w", n.Name, err)
		}
		if acct.Bond.Provider > 0 || acct.Balance < devnetProviderBond+1_000 {
			continue
		}
		var sub consensus.SubmitTxResponse
		req := consensus.SubmitTxRequest{Type: string(ledger.TxStake), Role: ledger.RoleProvider, Amount: devnetProviderBond}
		if err := cc.do(ctx, http.MethodPost, "/chain/txs", req, &sub); err != nil {
			return 0, fmt.Errorf("devnet: %s: stake provider: %w", n.Name, err)
		}
		ti, err := cc.waitTx(ctx, sub.ID, 60*time.Second)
		if err != nil {
			return 0, fmt.Errorf("devnet: %s: stake provider: %w", n.Name, err)
		}
		if ti.Status != "committed" {
			return 0, fmt.Errorf("devnet: %s: stake provider failed: %s", n.Name, ti.Error)
		}
		progress("  %s bonded %d provider stake (height %d)", n.Name, devnetProviderBond, ti.Height)
		top = max(top, ti.Height)
	}
	return top, nil
}
