package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// GenesisFileName is the chain's genesis file in the home directory.
const GenesisFileName = "genesis.json"

// GenesisFile is <home>/genesis.json.
func (h Home) GenesisFile() string { return filepath.Join(string(h), GenesisFileName) }

// ChainNetwork adapts n to what the consensus Service needs.
func ChainNetwork(n *Node) consensus.Network { return chainNet{n} }

type chainNet struct{ *Node }

func (c chainNet) Join(name string, v consensus.Validator) (consensus.Topic, error) {
	t, sub, err := c.joinSubscribed(name, func(ctx context.Context, from peer.ID, env *protocol.Envelope) Verdict {
		return verdictOf(v(ctx, from, env), consensus.Accept, consensus.Ignore)
	})
	if err != nil {
		return nil, err
	}
	return chainTopic{t, sub}, nil
}

// joinSubscribed joins topic name with validator v and subscribes to it.
func (n *Node) joinSubscribed(name string, v Validator) (*Topic, *Subscription, error) {
	t, err := n.JoinTopic(name, v)
	if err != nil {
		return nil, nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		_ = t.Close()
		return nil, nil, err
	}
	return t, sub, nil
}

// verdictOf maps a service's own verdict type onto the node's: accept and
// ignore are the service's values for those; anything else rejects.
func verdictOf[V comparable](v, accept, ignore V) Verdict {
	switch v {
	case accept:
		return Accept
	case ignore:
		return Ignore
	}
	return Reject
}

type chainTopic struct {
	*Topic
	sub *Subscription
}

func (c chainTopic) Next(ctx context.Context) (*consensus.Received, error) {
	r, err := c.sub.Next(ctx)
	if err != nil {
		return nil, err
	}
	return &consensus.Received{Envelope: r.Envelope, From: r.From, Local: r.Local}, nil
}

// startChain starts the consensus service when the home holds a genesis
// file, and adds its API endpoints; without one the daemon runs without a
// chain and says so.
func (d *Daemon) startChain() error {
	path := d.cfg.Home.GenesisFile()
	g, err := ledger.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.log.Info("no genesis file: running without the chain service", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: chain: %w", err)
	}
	if g.ChainID != d.node.ChainID() {
		return fmt.Errorf("node: chain: genesis chain ID %q, node configured for %q", g.ChainID, d.node.ChainID())
	}
	// The market's transactions and settlement are part of every gpunode
	// chain's rules.
	marketParams, err := settle.ParseParams(g.Market)
	if err != nil {
		return fmt.Errorf("node: chain: genesis %s: market: %w", path, err)
	}
	marketTxs, err := settle.Options(marketParams)
	if err != nil {
		return fmt.Errorf("node: chain: %w", err)
	}
	svc, err := consensus.New(consensus.Config{
		Genesis: g, LedgerOptions: marketTxs, Key: d.node.Key(), KV: consensus.NewKV(d.db), Network: ChainNetwork(d.node),
		Events: d.events, Logger: d.log.With("subsystem", "consensus"),
	})
	if err != nil {
		return fmt.Errorf("node: chain: %w", err)
	}
	if err := consensus.RegisterAPI(d.api, svc); err != nil {
		return err
	}
	if err := svc.Start(); err != nil {
		_ = svc.Close()
		return fmt.Errorf("node: chain: %w", err)
	}
	d.chain = svc
	d.log.Info("chain service started", "chain", g.ChainID, "height", svc.Height())
	return nil
}

// Chain is the consensus service, or nil when the node runs without one.
func (d *Daemon) Chain() *consensus.Service { return d.chain }

func (d *Daemon) closeChain() error {
	if d.chain == nil {
		return nil
	}
	return d.chain.Close()
}
