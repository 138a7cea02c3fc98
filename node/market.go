package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
	"github.com/gpunode/gpunode/storage"
)

// MarketConfig is the market part of a daemon's configuration.
type MarketConfig struct {
	// Price is the provider's price per segment of CPU (wasm) work.
	Price uint64
	// GPUPrice is the provider's price per segment per GPU, for each GPU
	// model it has; 0 leaves GPU work unpriced (no bids on it).
	GPUPrice uint64
	// Slots is how many segments the provider runs at once; 0: 2.
	Slots uint32
	// Region is announced in offers.
	Region string
	// Surcharge is the percentage the provider adds to its price at full
	// load (market.UtilisationPricing); 0 bids the list price always.
	Surcharge uint64
	// AuctionWindow is the renter's default auction round length; 0: 3 s.
	AuctionWindow time.Duration
	// Tamper makes a provider submit wrong outputs (fault-injection tests).
	Tamper func(job protocol.CID, segment uint32) bool
	// BeforeSubmit is called before a provider submits a result
	// (fault-injection tests; see agent.ProviderConfig).
	BeforeSubmit func(ctx context.Context, job protocol.CID, segment uint32)
}

// DefaultPrice is a provider's default price per segment.
const DefaultPrice = 500

// startMarket starts the market agent for the node's roles. It needs the
// chain: without a genesis file there is no market.
func (d *Daemon) startMarket() error {
	if d.chain == nil {
		d.log.Info("no chain: running without the market")
		return nil
	}
	mc := d.cfg.Market
	home := string(d.cfg.Home)
	cfg := agent.Config{
		Self:          d.node.PeerID(),
		Chain:         d.chain,
		Network:       marketNet{d.node},
		Data:          marketData{d.data},
		Runner:        &marketRunner{d: d},
		WorkDir:       d.cfg.Home.WorkDir(),
		StateDir:      filepath.Join(home, "market"),
		Renter:        HasRole(d.cfg.Roles, RoleRenter),
		Validator:     HasRole(d.cfg.Roles, RoleValidator),
		AuctionWindow: mc.AuctionWindow,
		Logger:        d.log.With("subsystem", "market"),
		Events:        d.events,
	}
	if HasRole(d.cfg.Roles, RoleProvider) {
		cfg.Provider = d.providerConfig()
	}
	a, err := agent.New(cfg)
	if err != nil {
		return fmt.Errorf("node: market: %w", err)
	}
	if err := agent.RegisterAPI(d.api, a); err != nil {
		return err
	}
	d.chain.OnCommit(func(c *consensus.Committed) { a.OnCommit(c.Height, c.Events, c.State) })
	if err := a.Start(); err != nil {
		_ = a.Close()
		return fmt.Errorf("node: market: %w", err)
	}
	d.market = a
	d.marketRef.Store(a)
	return nil
}

// providerConfig builds the provider's offer from the compute inventory.
func (d *Daemon) providerConfig() *agent.ProviderConfig {
	mc := d.cfg.Market
	price := mc.Price
	if price == 0 {
		price = DefaultPrice
	}
	slots := mc.Slots
	if slots == 0 {
		slots = 2
	}
	inv := d.compute.monitor.Inventory()
	hw := market.Hardware{Executors: []string{"wasm"}, Region: mc.Region}
	if len(d.compute.service.Runtimes()) > 0 {
		hw.Executors = append(hw.Executors, "process")
	}
	prices := []market.Price{}
	for _, e := range hw.Executors {
		prices = append(prices, market.Price{Model: "", Executor: e, PerSegment: price})
	}
	groups := map[market.GPUGroup]uint32{}
	for _, g := range inv.GPUs {
		groups[market.GPUGroup{Model: g.Name, VRAM: g.MemoryBytes}]++
	}
	for g, n := range groups {
		g.Count = n
		hw.GPUs = append(hw.GPUs, g)
		if mc.GPUPrice > 0 {
			for _, e := range hw.Executors {
				prices = append(prices, market.Price{Model: g.Model, Executor: e, PerSegment: mc.GPUPrice})
			}
		}
	}
	slices.SortFunc(hw.GPUs, func(a, b market.GPUGroup) int {
		if a.Model != b.Model {
			return cmpStr(a.Model, b.Model)
		}
		return int(a.VRAM>>20) - int(b.VRAM>>20)
	})
	slices.SortFunc(prices, func(a, b market.Price) int {
		if a.Model != b.Model {
			return cmpStr(a.Model, b.Model)
		}
		return cmpStr(a.Executor, b.Executor)
	})
	prices = slices.CompactFunc(prices, func(a, b market.Price) bool { return a.Model == b.Model && a.Executor == b.Executor })
	return &agent.ProviderConfig{
		Hardware: hw,
		CPUs:     uint32(inv.CPU.LogicalCores),
		Memory:   inv.CPU.MemoryBytes,
		Prices:   prices,
		Slots:    slots,
		Strategy: pricing(mc.Surcharge),
		Tamper:   mc.Tamper,

		BeforeSubmit: mc.BeforeSubmit,
	}
}

// pricing is the provider's pricing strategy: its list price, raised with
// utilisation when a surcharge is set.
func pricing(surcharge uint64) market.PricingStrategy {
	if surcharge == 0 {
		return market.StaticPrices{}
	}
	return market.UtilisationPricing{MaxSurchargePercent: surcharge}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Market is the market agent, or nil when the node runs without a chain.
func (d *Daemon) Market() *agent.Agent { return d.market }

func (d *Daemon) closeMarket() error {
	if d.market == nil {
		return nil
	}
	return d.market.Close()
}

// marketNet adapts the node's pubsub to agent.Network.
type marketNet struct{ n *Node }

func (m marketNet) Join(name string, v agent.Validator) (agent.Topic, error) {
	t, sub, err := m.n.joinSubscribed(name, func(ctx context.Context, from peer.ID, env *protocol.Envelope) Verdict {
		return verdictOf(v(ctx, from, env), agent.Accept, agent.Ignore)
	})
	if err != nil {
		return nil, err
	}
	return marketTopic{t, sub}, nil
}

type marketTopic struct {
	*Topic
	sub *Subscription
}

func (m marketTopic) Next(ctx context.Context) (*agent.Received, error) {
	r, err := m.sub.Next(ctx)
	if err != nil {
		return nil, err
	}
	return &agent.Received{Envelope: r.Envelope, From: r.From, Local: r.Local}, nil
}

// marketData adapts the data service to agent.Data.
type marketData struct{ s *dataService }

func (m marketData) Fetch(ctx context.Context, root cid.Cid, from []peer.ID) error {
	s := m.s
	if err := s.bs.Pin(ctx, root); err != nil {
		return err
	}
	s.remember(root, "")
	if s.completeHere(ctx, root) {
		return nil
	}
	var firstErr error
	if len(from) > 0 {
		if _, err := s.ex.Fetch(ctx, root, from); err == nil {
			s.announceSoon(root)
			return nil
		} else {
			firstErr = err
		}
	}
	holders, err := s.findHolders(ctx, root)
	if err != nil {
		return errors.Join(firstErr, err)
	}
	if _, err := s.ex.Fetch(ctx, root, holders); err != nil {
		return errors.Join(firstErr, err)
	}
	s.announceSoon(root)
	return nil
}

func (m marketData) Export(ctx context.Context, root cid.Cid, path string) error {
	return storage.Export(ctx, m.s.bs, root, path, storage.ExportOptions{Overwrite: true})
}

// marketRunner runs segments with the wasm executor and imports the
// outputs into the block store.
type marketRunner struct{ d *Daemon }

// segmentReceipt is the receipt a provider submits with its result.
type segmentReceipt struct {
	Executor  string `json:"executor"`
	ExitCode  int    `json:"exit_code"`
	ElapsedMs int64  `json:"elapsed_ms"`
	Outputs   int    `json:"outputs"`
}

// Warm compiles the module at program in a wasm worker (filling the
// compile cache that every run uses).
func (r *marketRunner) Warm(ctx context.Context, program string) error {
	b, err := os.ReadFile(program)
	if err != nil {
		return err
	}
	return r.d.compute.wasm.Warm(ctx, b)
}

func (r *marketRunner) Run(ctx context.Context, run agent.SegmentRun) (agent.SegmentResult, error) {
	if run.Program == "" {
		return agent.SegmentResult{}, fmt.Errorf("node: market: runtime jobs (%q) are not run by the market yet", run.Spec.Runtime)
	}
	d := r.d
	dir, err := os.MkdirTemp(d.cfg.Home.WorkDir(), "run-")
	if err != nil {
		return agent.SegmentResult{}, err
	}
	defer os.RemoveAll(dir)
	// The output directory has the same name on every node, so honest
	// providers produce the same output root.
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return agent.SegmentResult{}, err
	}
	inputs := map[string]exec.Source{}
	if run.Input != "" {
		base := filepath.Dir(run.Input)
		err := filepath.WalkDir(run.Input, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			rel, err := filepath.Rel(base, p)
			if err != nil {
				return err
			}
			inputs[filepath.ToSlash(rel)] = exec.HostFile(p)
			return nil
		})
		if err != nil {
			return agent.SegmentResult{}, err
		}
	}
	spec := exec.Spec{
		Program: exec.HostFile(run.Program),
		Env: map[string]string{
			"GPUNODE_JOB":      run.Job.String(),
			"GPUNODE_SEGMENT":  fmt.Sprint(run.Segment),
			"GPUNODE_SEGMENTS": fmt.Sprint(run.Spec.Segments),
		},
		Inputs:    inputs,
		OutputDir: out,
		Seed:      run.Seed,
		Limits:    exec.Limits{WallTime: run.WallTime},
	}
	res, err := d.compute.wasm.Run(ctx, spec)
	if err != nil {
		msg := ""
		if res != nil && len(res.Stderr) > 0 {
			msg = ": " + lastLine(string(res.Stderr))
		}
		return agent.SegmentResult{}, fmt.Errorf("node: market: run segment %d: %w%s", run.Segment, err, msg)
	}
	root, err := storage.Import(ctx, d.blocks, out, storage.ImportOptions{})
	if err != nil {
		return agent.SegmentResult{}, fmt.Errorf("node: market: store outputs: %w", err)
	}
	d.data.remember(root, "out")
	d.data.announceSoon(root)
	rc, _ := json.Marshal(segmentReceipt{Executor: "wasm", ExitCode: res.ExitCode, ElapsedMs: res.Elapsed.Milliseconds(), Outputs: len(res.Outputs)})
	if len(rc) > settle.MaxReceipt {
		rc = rc[:settle.MaxReceipt]
	}
	return agent.SegmentResult{Output: root, Receipt: rc}, nil
}

func lastLine(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}

// AddPath imports the file or directory at path into the block store,
// pins it and announces it, like POST /data/add; it returns the root CID.
func (d *Daemon) AddPath(ctx context.Context, path string) (string, error) {
	root, err := storage.Import(ctx, d.blocks, path, storage.ImportOptions{})
	if err != nil {
		return "", err
	}
	d.data.remember(root, filepath.Base(path))
	d.data.announceSoon(root)
	return root.String(), nil
}

// GetPath fetches the DAG under root (from the given peers, else from the
// holders found on the DHT) and writes it to out, like POST /data/get.
func (d *Daemon) GetPath(ctx context.Context, root string, from []peer.ID, out string) error {
	c, err := cid.Decode(root)
	if err != nil {
		return fmt.Errorf("node: bad root %q: %w", root, err)
	}
	m := marketData{d.data}
	if err := m.Fetch(ctx, c, from); err != nil {
		return err
	}
	return m.Export(ctx, c, out)
}
