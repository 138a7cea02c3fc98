// Package market_test runs the market end to end in one process: real
// daemons (libp2p on loopback, gossipsub, the BFT chain, badger, the wasm
// executor) playing validators, providers and a renter.
package market_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/protocol"
)

func TestMain(m *testing.M) {
	wasm.RunWorkerIfRequested()
	code := m.Run()
	exectest.Cleanup()
	os.Exit(code)
}

const network = "mkt"

// member is one daemon of the test network.
type member struct {
	name   string
	d      *node.Daemon
	price  uint64
	slots  uint32
	tamper atomic.Bool
	hold   atomic.Bool // BeforeSubmit holds results until the node stops
	held   chan struct{}
	cfg    node.DaemonConfig // to restart it on the same home
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// net is the test network: 4 validators that are also providers, one
// provider-only node (the cheapest) and one renter.
type net struct {
	t          *testing.T
	vals       []*member
	solo       *member // provider only
	renter     *member
	providers  []*member
	all        []*member
	program    string // data root of the segment program
	invariants atomic.Int64
	invErr     atomic.Value
}

func startNet(t *testing.T) *net {
	t.Helper()
	prog := exectest.Build(t, "github.com/gpunode/gpunode/test/market/segprog", "wasip1", "wasm")
	worker := exectest.Build(t, "github.com/gpunode/gpunode/compute/exec/wasm/wasmworker", runtime.GOOS, runtime.GOARCH)
	n := &net{t: t}
	spec := []struct {
		name  string
		roles []node.Role
		price uint64
		slots uint32
	}{
		{"val-0", []node.Role{node.RoleValidator, node.RoleProvider}, 200, 3},
		{"val-1", []node.Role{node.RoleValidator, node.RoleProvider}, 300, 3},
		{"val-2", []node.Role{node.RoleValidator, node.RoleProvider}, 400, 4},
		{"val-3", []node.Role{node.RoleValidator, node.RoleProvider}, 500, 4},
		{"solo", []node.Role{node.RoleProvider}, 100, 2},
		{"renter", []node.Role{node.RoleRenter}, 0, 0},
	}
	homes := make([]node.Home, len(spec))
	g := ledger.NewGenesis(network)
	g.Params.MinProviderStake = 1000
	g.Market = json.RawMessage(`{"block_time_ms":250,"challenge_window":2,"check_blocks":40,"slash_amount":500}`)
	for i, s := range spec {
		homes[i] = node.Home(t.TempDir())
		key, err := node.InitKey(homes[i].KeyFile())
		if err != nil {
			t.Fatal(err)
		}
		id, _ := node.PeerIDFromKey(key)
		if err := g.AddAccount(id.String(), 10_000_000); err != nil {
			t.Fatal(err)
		}
		if s.roles[0] == node.RoleValidator {
			if err := g.AddValidator(id.String(), 1_000_000); err != nil {
				t.Fatal(err)
			}
		}
	}
	var boot []string
	for i, s := range spec {
		if err := g.Save(homes[i].GenesisFile()); err != nil {
			t.Fatal(err)
		}
		m := &member{name: s.name, price: s.price, slots: s.slots, logs: &syncBuffer{}, held: make(chan struct{}, 16)}
		log := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		cfg := node.DaemonConfig{
			Home:       homes[i],
			P2P:        node.Config{Network: network, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableQUIC: true, Bootstrap: boot},
			Roles:      s.roles,
			APIListen:  "127.0.0.1:0",
			WasmWorker: worker,
			Market: node.MarketConfig{Price: s.price, Slots: s.slots, AuctionWindow: 10 * time.Second, // rounds close early once every provider answered; the window is for a loaded machine

				Tamper: func(protocol.CID, uint32) bool { return m.tamper.Load() },
				BeforeSubmit: func(ctx context.Context, _ protocol.CID, _ uint32) {
					if m.hold.Load() {
						m.held <- struct{}{}
						<-ctx.Done()
					}
				}},
			Logger: log,
		}
		m.cfg = cfg
		d, err := node.StartDaemon(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v\n%s", s.name, err, m.logs.String())
		}
		m.d = d
		t.Cleanup(func() {
			_ = m.d.Close() // the latest daemon of this member
			if t.Failed() {
				t.Logf("--- logs of %s ---\n%s", m.name, lastLines(m.logs.String(), 60))
			}
		})
		if i == 0 {
			boot = []string{d.Addrs()[0].String()}
		}
		n.all = append(n.all, m)
		switch {
		case s.name == "renter":
			n.renter = m
		case s.name == "solo":
			n.solo = m
			n.providers = append(n.providers, m)
		default:
			n.vals = append(n.vals, m)
			n.providers = append(n.providers, m)
		}
	}
	// The supply invariant at every height, on the renter's node (a
	// follower) and a validator.
	for _, m := range []*member{n.renter, n.vals[0]} {
		m.d.Chain().OnCommit(func(c *consensus.Committed) {
			n.invariants.Add(1)
			if err := ledger.CheckInvariant(c.State); err != nil {
				n.invErr.CompareAndSwap(nil, fmt.Sprintf("height %d: %v", c.Height, err))
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Providers bond their stake.
	for _, p := range n.providers {
		if _, _, err := p.d.Chain().SubmitOwn(ctx, ledger.TxStake, 0, ledger.Stake{Role: ledger.RoleProvider, Amount: 100_000}); err != nil {
			t.Fatalf("%s stake: %v", p.name, err)
		}
	}
	n.waitFor(ctx, "providers staked and offers in the renter's book", func() bool {
		st := n.renter.d.Chain().State()
		for _, p := range n.providers {
			if st.Bond(p.d.PeerID().String()).Provider < 100_000 {
				return false
			}
		}
		if len(n.renter.d.Market().Offers()) != len(n.providers) {
			return false
		}
		// And each provider hears job requests: the renter's publishes
		// reach the peers it knows are subscribed.
		subs := n.renter.d.Node().TopicPeers(protocol.TopicJobs)
		for _, p := range n.providers {
			if !slices.Contains(subs, p.d.PeerID()) {
				return false
			}
		}
		return true
	})
	n.program = n.add(ctx, "segprog.wasm", mustRead(t, prog))
	return n
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lastLines(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// add stores content on the renter's node and returns its data root.
func (n *net) add(ctx context.Context, name string, content []byte) string {
	n.t.Helper()
	p := filepath.Join(n.t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		n.t.Fatal(err)
	}
	root, err := n.renter.d.AddPath(ctx, p)
	if err != nil {
		n.t.Fatalf("add %s: %v", name, err)
	}
	return root
}

// inputs adds k distinct segment inputs.
func (n *net) inputs(ctx context.Context, tag string, k int) []string {
	var out []string
	for i := range k {
		out = append(out, n.add(ctx, fmt.Sprintf("%s-%d", tag, i), []byte(fmt.Sprintf("input %s %d\n", tag, i))))
	}
	return out
}

func (n *net) waitFor(ctx context.Context, what string, cond func() bool) {
	n.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			n.t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func (n *net) job(id string) agent.JobView {
	v, err := n.renter.d.Market().Job(id)
	if err != nil {
		n.t.Fatalf("job %s: %v", id, err)
	}
	return v
}

// waitDone waits until job id is closed on chain (every segment paid).
func (n *net) waitDone(ctx context.Context, id string) agent.JobView {
	n.t.Helper()
	var v agent.JobView
	n.waitFor(ctx, "job "+id+" done", func() bool {
		v = n.job(id)
		return v.State == "done"
	})
	return v
}

func (n *net) checkInvariant() {
	n.t.Helper()
	if e := n.invErr.Load(); e != nil {
		n.t.Fatalf("supply invariant broken at %s", e)
	}
	if n.invariants.Load() == 0 {
		n.t.Fatal("no block was checked for the supply invariant")
	}
}

func (n *net) byID(id string) *member {
	for _, m := range n.all {
		if m.d.PeerID().String() == id {
			return m
		}
	}
	return nil
}

// fee is the market fee on price under the genesis parameters.
func fee(st *ledger.State, price uint64) uint64 {
	f := st.Params().MarketFee
	if f.Den == 0 {
		return 0
	}
	return price * f.Num / f.Den
}

// leasesOf counts each provider's leases in the job's events.
func leasesOf(v agent.JobView) map[string]int {
	out := map[string]int{}
	for _, e := range v.Events {
		if e.Kind == string(settle.EventLease) {
			out[e.Account]++
		}
	}
	return out
}

func TestMarket(t *testing.T) {
	n := startNet(t)
	// In this order: the last one kills a provider. Each subtest's
	// failures are its own (n.t is the running subtest).
	for _, st := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"AwardRunVerifyPay", n.testAwardRunVerifyPay},
		{"NoBids", n.testNoBids},
		{"WrongResult", n.testWrongResult},
		{"BadBids", n.testBadBids},
		{"ProviderExit", n.testProviderExit},
		{"ProviderRestart", n.testProviderRestart},
		{"ProviderKilled", n.testProviderKilled},
	} {
		t.Run(st.name, func(t *testing.T) {
			n.t = t
			defer func() { n.t = nil }()
			st.f(t)
		})
	}
}

// Acceptance 1: a 10-segment job goes to the cheapest providers within
// their capacity; every segment runs and is verified; each provider is paid
// price x segments minus the fee; the renter gets the rest back.
func (n *net) testAwardRunVerifyPay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in := n.inputs(ctx, "a", 10)
	res, err := n.renter.d.Market().SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Inputs: in, Segments: 10,
		MaxPrice: 1000, Deadline: 60, Verify: "replicate:1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deposit != 10_000 {
		t.Fatalf("deposit %d, want 10000", res.Deposit)
	}
	v := n.waitDone(ctx, res.Job)
	st := n.renter.d.Chain().State()
	counts := leasesOf(v)
	// Cheapest first within capacity: a provider only gets segments while
	// every cheaper one is full.
	ps := append([]*member(nil), n.providers...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].price < ps[j].price })
	total, full := 0, true
	var cost uint64
	for _, p := range ps {
		c := counts[p.d.PeerID().String()]
		if c > int(p.slots) {
			t.Errorf("%s got %d segments, capacity %d", p.name, c, p.slots)
		}
		if c > 0 && !full {
			t.Errorf("%s (price %d) got %d segments while a cheaper provider had capacity left: %v", p.name, p.price, c, counts)
		}
		full = full && c == int(p.slots)
		total += c
		cost += uint64(c) * p.price
		want := uint64(c) * (p.price - fee(st, p.price))
		if got := v.Paid[p.d.PeerID().String()]; got != want {
			t.Errorf("%s paid %d, want %d (%d segments at %d minus fee)", p.name, got, want, c, p.price)
		}
	}
	if total != 10 {
		t.Fatalf("%d leases for 10 segments: %v", total, counts)
	}
	if v.Refund != res.Deposit-cost {
		t.Errorf("refund %d, want deposit %d - cost %d", v.Refund, res.Deposit, cost)
	}
	if v.SegmentsDone != 10 {
		t.Errorf("segments done %d, want 10", v.SegmentsDone)
	}
	// Each segment's output is what the program computes from its input.
	for i, s := range v.SegmentList {
		if s.Output == "" {
			t.Fatalf("segment %d has no output: %+v", i, s)
		}
		dir := filepath.Join(t.TempDir(), "out")
		if err := n.renter.d.GetPath(ctx, s.Output, nil, dir); err != nil {
			t.Fatalf("fetch output of segment %d: %v", i, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "result.txt"))
		want := fmt.Sprintf("%x segment=%d of 10 job=%s\n", sha256.Sum256([]byte(fmt.Sprintf("input a %d\n", i))), i, res.Job)
		if err != nil || string(got) != want {
			t.Fatalf("segment %d output %q, %v; want %q", i, got, err, want)
		}
	}
	// The awarded prices are in the renter's price index.
	var cpu *agent.PriceView
	for _, pv := range n.renter.d.Market().Prices() {
		if pv.Model == "cpu" {
			cpu = &pv
		}
	}
	if cpu == nil || cpu.Count == 0 || cpu.Min != ps[0].price {
		t.Errorf("price index after the award: %+v", n.renter.d.Market().Prices())
	}
	n.checkInvariant()
}

// A provider that announces its exit stops bidding (the renter sees why),
// its offer says disconnected, and the chain refuses its bids.
func (n *net) testProviderExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leaving := n.vals[3]
	id := leaving.d.PeerID().String()
	if _, err := leaving.d.Market().Exit(ctx); err != nil {
		t.Fatal(err)
	}
	n.waitFor(ctx, "the exit on chain and the offer disconnected", func() bool {
		if !settle.Exiting(n.renter.d.Chain().State(), id) {
			return false
		}
		for _, o := range n.renter.d.Market().Offers() {
			if o.Provider == id {
				return o.Status == "disconnected"
			}
		}
		return false
	})
	in := n.inputs(ctx, "x", 2)
	res, err := n.renter.d.Market().SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Inputs: in, Segments: 2,
		MaxPrice: 1000, Deadline: 60, Verify: "replicate:1"})
	if err != nil {
		t.Fatal(err)
	}
	n.waitFor(ctx, "the leaving provider's reason", func() bool {
		for _, nb := range n.job(res.Job).NoBids {
			if nb.Provider == id {
				return nb.Reason == "provider exiting"
			}
		}
		return false
	})
	v := n.waitDone(ctx, res.Job)
	if c := leasesOf(v)[id]; c != 0 {
		t.Errorf("exiting provider won %d leases", c)
	}
	n.checkInvariant()
}

// Acceptance 4: no provider meets the requirements: no bids, and the
// renter sees each provider's reason; cancelling refunds everything.
func (n *net) testNoBids(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := n.renter.d.Market().SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Segments: 2, MaxPrice: 1000,
		GPUModels: []string{"NVIDIA A100-SXM4-80GB"}, GPUCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	n.waitFor(ctx, "a reason from every provider", func() bool { return len(n.job(res.Job).NoBids) == len(n.providers) })
	v := n.job(res.Job)
	for _, nb := range v.NoBids {
		if nb.Reason == "" || n.byID(nb.Provider) == nil {
			t.Errorf("no-bid %+v", nb)
		}
	}
	t.Logf("why no bids: %+v", v.NoBids)
	bv, _ := n.renter.d.Market().Bids(res.Job)
	for _, r := range bv.Rounds {
		if len(r.Bids) != 0 {
			t.Errorf("round %d has bids %+v", r.Round, r.Bids)
		}
	}
	if _, err := n.renter.d.Market().CancelJob(ctx, res.Job); err != nil {
		t.Fatal(err)
	}
	n.waitFor(ctx, "cancelled job closed", func() bool {
		v = n.job(res.Job)
		return v.State == "cancelled" && v.Refund == res.Deposit
	})
	n.checkInvariant()
}

// Acceptance 3: under replicate:2 a provider returning a wrong result is
// caught (validators re-run and attest), slashed, and the honest result
// stands; the renter pays once per segment.
func (n *net) testWrongResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cheat := n.solo // the cheapest: it wins a replica of every segment it can
	cheat.tamper.Store(true)
	defer cheat.tamper.Store(false)
	id := cheat.d.PeerID().String()
	before := n.renter.d.Chain().State().Bond(id).Provider
	repBefore, _ := settle.ReputationOf(n.renter.d.Chain().State(), id)
	in := n.inputs(ctx, "w", 2)
	res, err := n.renter.d.Market().SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Inputs: in, Segments: 2,
		MaxPrice: 1000, Deadline: 60, Verify: "replicate:2"})
	if err != nil {
		t.Fatal(err)
	}
	v := n.waitDone(ctx, res.Job)
	cheatLeases := leasesOf(v)[id]
	if cheatLeases == 0 {
		t.Fatalf("the cheating provider won no lease: %v", leasesOf(v))
	}
	if v.Wrong != cheatLeases {
		t.Errorf("wrong results %d, want %d (one per lease of the cheater)", v.Wrong, cheatLeases)
	}
	if v.Paid[id] != 0 {
		t.Errorf("cheater paid %d", v.Paid[id])
	}
	st := n.renter.d.Chain().State()
	if after := st.Bond(id).Provider; before-after != uint64(cheatLeases)*500 {
		t.Errorf("cheater stake %d -> %d, want %d slashed", before, after, cheatLeases*500)
	}
	repAfter, _ := settle.ReputationOf(st, id)
	if repAfter.Slashed != repBefore.Slashed+uint64(cheatLeases) {
		t.Errorf("cheater reputation %+v -> %+v", repBefore, repAfter)
	}
	// Every segment is paid, each to honest providers only, and the renter
	// pays no segment twice: total payments per segment <= 2 leases.
	paidPerSeg := map[string]int{}
	for _, e := range v.Events {
		if e.Kind == string(settle.EventPaid) {
			paidPerSeg[e.Segment]++
			if e.Account == id {
				t.Errorf("cheater paid for segment %s", e.Segment)
			}
		}
	}
	for s := range 2 {
		c := paidPerSeg[strconv.Itoa(s)]
		if c == 0 || c > 2 {
			t.Errorf("segment %d paid %d times", s, c)
		}
	}
	n.checkInvariant()
}

// A provider stopped while it holds leases (each segment ran, its result
// not yet submitted) keeps them in <home>/market/leases.json; started
// again on the same home, it resumes them, submits and is paid, with no
// re-auction.
func (n *net) testProviderRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := n.solo // the cheapest, with 2 slots: it wins both segments
	id := m.d.PeerID().String()
	m.hold.Store(true)
	in := n.inputs(ctx, "r", 2)
	res, err := n.renter.d.Market().SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Inputs: in, Segments: 2,
		MaxPrice: 1000, Deadline: 60, Verify: "replicate:1"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-m.held:
		case <-ctx.Done():
			t.Fatal("the cheapest provider did not run both segments")
		}
	}
	m.hold.Store(false)
	if err := m.d.Close(); err != nil {
		t.Fatal(err)
	}
	var saved []struct {
		Job     string `json:"job"`
		Segment uint32 `json:"segment"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(string(m.cfg.Home), "market", "leases.json")), &saved); err != nil {
		t.Fatal(err)
	}
	if len(saved) != 2 || saved[0].Job != res.Job || saved[1].Job != res.Job {
		t.Fatalf("leases kept over the stop: %+v; want both segments of %s", saved, res.Job)
	}
	restarted := time.Now()
	d, err := node.StartDaemon(context.Background(), m.cfg)
	if err != nil {
		t.Fatalf("restart %s: %v", m.name, err)
	}
	m.d = d
	v := n.waitDone(ctx, res.Job)
	st := n.renter.d.Chain().State()
	if want := 2 * (m.price - fee(st, m.price)); v.Paid[id] != want {
		t.Errorf("restarted provider paid %d, want %d (paid %v)", v.Paid[id], want, v.Paid)
	}
	if v.Auctions != 1 || v.Missed != 0 {
		t.Errorf("auctions %d, missed %d: want the leases resumed, not re-auctioned", v.Auctions, v.Missed)
	}
	// Back in the market: its new offer (all slots free) in the renter's
	// book, and subscribed to job requests as the renter sees it.
	n.waitFor(ctx, "the restarted provider's new offer and job subscription at the renter", func() bool {
		if !slices.Contains(n.renter.d.Node().TopicPeers(protocol.TopicJobs), m.d.PeerID()) {
			return false
		}
		for _, o := range n.renter.d.Market().Offers() {
			if o.Provider == id {
				return o.FreeSlots == m.slots && o.IssuedAt >= restarted.UnixMilli()
			}
		}
		return false
	})
	n.checkInvariant()
}

// Acceptance 2: the cheapest provider dies right after winning; its
// segments miss their deadline, are re-auctioned and finished by the
// others; it is paid nothing for them and is penalised.
func (n *net) testProviderKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	victim := n.solo
	id := victim.d.PeerID().String()
	repBefore, _ := settle.ReputationOf(n.renter.d.Chain().State(), id)
	stakeBefore := n.renter.d.Chain().State().Bond(id).Provider
	killed := make(chan struct{})
	var once sync.Once
	victim.d.Chain().OnCommit(func(c *consensus.Committed) {
		for _, e := range c.Events {
			if e.Kind == settle.EventLease && e.Account == id {
				once.Do(func() { close(killed) })
			}
		}
	})
	in := n.inputs(ctx, "k", 6)
	res, err := n.renter.d.Market().SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Inputs: in, Segments: 6,
		MaxPrice: 1000, Deadline: 3, Verify: "replicate:1", AuctionMs: 2000})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatal("the cheapest provider never won a lease")
	}
	_ = victim.d.Close()
	v := n.waitDone(ctx, res.Job)
	if v.Paid[id] != 0 {
		t.Errorf("killed provider paid %d", v.Paid[id])
	}
	if v.Missed == 0 || v.Auctions < 2 {
		t.Errorf("missed %d, auctions %d: want misses and a re-auction", v.Missed, v.Auctions)
	}
	st := n.renter.d.Chain().State()
	rep, _ := settle.ReputationOf(st, id)
	if rep.Failed <= repBefore.Failed || st.Bond(id).Provider >= stakeBefore {
		t.Errorf("killed provider not penalised: reputation %+v -> %+v, stake %d -> %d", repBefore, rep, stakeBefore, st.Bond(id).Provider)
	}
	if v.SegmentsDone != 6 {
		t.Errorf("segments done %d, want 6", v.SegmentsDone)
	}
	n.checkInvariant()
}
