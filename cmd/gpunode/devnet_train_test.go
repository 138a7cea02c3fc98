package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/examples/train/model"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/node"
)

// The data set is deterministic, a few MB at the default size, and one
// round of training on it, averaged, beats chance clearly.
func TestWriteTrainData(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	da, err := writeTrainData(a, 1, 16, 8, 4000)
	if err != nil {
		t.Fatal(err)
	}
	db, err := writeTrainData(b, 1, 16, 8, 4000)
	if err != nil {
		t.Fatal(err)
	}
	if len(da.Shards) != 8 || da.Holdout.Rows() != 4000 || da.Holdout.Dim != 16 {
		t.Fatalf("data = %d shards, holdout %d x %d; want 8 shards, 4000 x 16", len(da.Shards), da.Holdout.Rows(), da.Holdout.Dim)
	}
	if da.Bytes < 2<<20 || da.Bytes > 8<<20 {
		t.Errorf("default data set is %d bytes; want a few MB", da.Bytes)
	}
	var ws [][]byte
	for i := range da.Shards {
		x, _ := os.ReadFile(da.Shards[i])
		y, _ := os.ReadFile(db.Shards[i])
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("shard %d differs between two generations (%d and %d bytes)", i, len(x), len(y))
		}
		s, err := model.DecodeShard(x)
		if err != nil || s.Rows() != 4000 {
			t.Fatalf("shard %d: %v, %d rows", i, err, s.Rows())
		}
		w, err := model.Train(model.Zero(16), s, model.DefaultConfig)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, model.EncodeWeights(w))
	}
	avg, err := aggregate(ws)
	if err != nil {
		t.Fatal(err)
	}
	acc, _, err := model.Evaluate(avg, da.Holdout)
	if err != nil {
		t.Fatal(err)
	}
	if c := chance(da.Holdout); acc < c+0.2 {
		t.Errorf("accuracy of the averaged model %.4f; chance %.4f", acc, c)
	}
	if _, err := aggregate([][]byte{ws[0], []byte("nope")}); err == nil || !strings.Contains(err.Error(), "segment 1") {
		t.Errorf("aggregate of a bad file: %v; want an error naming segment 1", err)
	}
}

func TestChance(t *testing.T) {
	for _, tc := range []struct {
		y    []float64
		want float64
	}{{nil, 0}, {[]float64{1, 1, 0, 1}, 0.75}, {[]float64{0, 0, 0, 1}, 0.75}, {[]float64{0, 1}, 0.5}} {
		if got := chance(model.Shard{Dim: 1, Y: tc.y}); got != tc.want {
			t.Errorf("chance(%v) = %v; want %v", tc.y, got, tc.want)
		}
	}
}

func TestFindWeights(t *testing.T) {
	dir := t.TempDir()
	want := []byte("GNW1-weights")
	flat := filepath.Join(dir, "flat")
	nested := filepath.Join(dir, "nested")
	file := filepath.Join(dir, "file")
	empty := filepath.Join(dir, "empty")
	for _, p := range []string{flat, filepath.Join(nested, "out"), empty} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(flat, trainWeightsFile), filepath.Join(nested, "out", trainWeightsFile), file} {
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(empty, "other.bin"), []byte("x"), 0o644)
	for _, p := range []string{flat, nested, file} {
		if got, err := findWeights(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("findWeights(%s) = %q, %v; want %q", filepath.Base(p), got, err, want)
		}
	}
	for _, p := range []string{empty, filepath.Join(dir, "missing")} {
		if _, err := findWeights(p); err == nil {
			t.Errorf("findWeights(%s) succeeded", filepath.Base(p))
		}
	}
}

func TestSegList(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want string
	}{
		{nil, ""},
		{[]uint32{3}, "3"},
		{[]uint32{0, 1, 2, 3, 4, 5, 6, 7}, "0-7"},
		{[]uint32{7, 5, 0, 1, 1, 3}, "0-1,3,5,7"},
	} {
		if got := segList(tc.in); got != tc.want {
			t.Errorf("segList(%v) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestPhaseClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newPhaseClock(t0)
	c.end("network", t0.Add(4*time.Second))
	c.end("data", t0.Add(4500*time.Millisecond))
	c.end("auction", t0.Add(4*time.Second)) // a clock going back counts 0
	want := map[string]float64{"network": 4, "data": 0.5, "auction": 0}
	if !reflect.DeepEqual(c.phases, want) {
		t.Errorf("phases = %v; want %v", c.phases, want)
	}
}

func TestTrainConfig(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "train.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (trainConfig, error) {
		cmd := newDevnetCmd()
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		return trainConfigFromFlags(cmd, filepath.Join(filepath.Dir(wasm), "gpunode"), 3, 1)
	}
	c, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	want := trainConfig{Program: wasm, Segments: 8, Rows: 4000, Dim: 16, Seed: 1, Verify: "replicate:2",
		Deadline: 60 * time.Second, JobTimeout: 4 * time.Minute}
	if c != want {
		t.Errorf("defaults = %+v; want %+v", c, want)
	}
	if c.replicas() != 2 {
		t.Errorf("replicas of %s = %d", c.Verify, c.replicas())
	}
	c, err = parse("--kill-provider", "--segments", "10", "--rows", "100", "--dim", "4", "--verify", "spotcheck:0.5",
		"--deadline", "5s", "--auction", "1500ms", "--train-wasm", wasm, "--seed", "9")
	if err != nil {
		t.Fatal(err)
	}
	if !c.KillProvider || c.Segments != 10 || c.Rows != 100 || c.Dim != 4 || c.Verify != "spotcheck:0.5" ||
		c.Deadline != 5*time.Second || c.Auction != 1500*time.Millisecond || c.Seed != 9 || c.replicas() != 1 {
		t.Errorf("parsed %+v", c)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--segments", "0"}, "--segments"},
		{[]string{"--rows", "1"}, "--rows"},
		{[]string{"--dim", "0"}, "--dim"},
		{[]string{"--verify", "majority"}, "--verify"},
		{[]string{"--deadline", "10ms"}, "--deadline"},
		{[]string{"--verify", "replicate:3", "--kill-provider"}, "at least 4 providers"},
		{[]string{"--train-wasm", wasm + ".missing"}, "make build"},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if err := want.validate(3, 0); err == nil || !strings.Contains(err.Error(), "renter") {
		t.Errorf("no renter: %v", err)
	}
}

func TestDevnetProviderArgs(t *testing.T) {
	var prices []string
	for i := range 3 {
		args := devnetProviderArgs(i)
		if len(args) != 8 || args[0] != "--price" || args[4] != "--slots" || args[5] != "8" {
			t.Fatalf("provider %d args = %v", i, args)
		}
		prices = append(prices, args[1])
	}
	if !slices.Equal(prices, []string{"400", "500", "600"}) {
		t.Errorf("prices = %v; want 400, 500, 600", prices)
	}
}

// The devnet genesis carries the market parameters exactly when this
// build's genesis has a place for them (ledger.Load refuses unknown keys).
func TestDevnetGenesisMarket(t *testing.T) {
	nodes := []*devnetNode{{Name: "validator-0", Roles: []string{"validator"}, PeerID: testPeerID(t, 1)}}
	g, err := devnetGenesis("mynet", nodes, time.Unix(1e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.ParseGenesis(b); err != nil {
		t.Fatalf("devnet genesis does not parse: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	_, hasField := reflect.TypeOf(ledger.Genesis{}).FieldByName("Market")
	m, has := raw["market"]
	if has != hasField {
		t.Fatalf("genesis has a market object: %v; ledger.Genesis has a Market field: %v", has, hasField)
	}
	if has {
		var got, want map[string]float64
		_ = json.Unmarshal(m, &got)
		_ = json.Unmarshal(devnetMarketParams, &want)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("genesis market %s = %v; want %v", k, got[k], v)
			}
		}
	}
}

func TestJobTracker(t *testing.T) {
	names := map[string]string{"P0": "provider-0", "P1": "provider-1", "P2": "provider-2"}
	tr := newJobTracker(func(id string) string { return names[id] })
	lease := func(seg uint32, p string, dl uint64, out string) agent.LeaseView {
		return agent.LeaseView{Segment: seg, Provider: p, Price: map[string]uint64{"P0": 400, "P1": 500, "P2": 600}[p], Deadline: dl, Output: out}
	}
	view := func(missed, done int, segs ...agent.SegmentView) agent.JobView {
		return agent.JobView{Segments: 2, SegmentsDone: uint32(done), Auctions: 1, Missed: missed, SegmentList: segs}
	}
	steps := []struct {
		v    agent.JobView
		want []string
	}{
		{view(0, 0, agent.SegmentView{Index: 0, State: "open"}, agent.SegmentView{Index: 1, State: "open"}), nil},
		{view(0, 0,
			agent.SegmentView{Index: 0, State: "leased", Leases: []agent.LeaseView{lease(0, "P0", 50, ""), lease(0, "P1", 50, "")}},
			agent.SegmentView{Index: 1, State: "leased", Leases: []agent.LeaseView{lease(1, "P0", 50, ""), lease(1, "P1", 51, "")}}),
			[]string{
				"lease: provider-0 won segment(s) 0-1 at 400 each (deadline height 50)",
				"lease: provider-1 won segment(s) 0-1 at 500 each (deadline height 51)",
				"segments 0-1: leased",
			}},
		{view(2, 0,
			agent.SegmentView{Index: 0, State: "leased", Leases: []agent.LeaseView{lease(0, "P1", 50, "o0"), lease(0, "P2", 90, "")}},
			agent.SegmentView{Index: 1, State: "leased", Leases: []agent.LeaseView{lease(1, "P1", 51, "o1"), lease(1, "P2", 90, "")}}),
			[]string{
				"lease: provider-2 won segment(s) 0-1 at 600 each (deadline height 90)",
				"result: provider-1 submitted segment(s) 0-1",
				"missed: 2 lease(s) passed their deadline without a result; the segments go back to auction",
			}},
		{view(2, 1,
			agent.SegmentView{Index: 0, State: "verified", Leases: []agent.LeaseView{lease(0, "P1", 50, "o0"), lease(0, "P2", 90, "o0")}},
			agent.SegmentView{Index: 1, State: "checking", Leases: []agent.LeaseView{lease(1, "P1", 51, "o1"), lease(1, "P2", 90, "o1")}}),
			[]string{
				"result: provider-2 submitted segment(s) 0-1",
				"segments 1: checking",
				"segments 0: verified (1/2 done, 0 paid)",
			}},
		// A view that drops the deadline of known leases shows nothing new.
		{view(2, 1,
			agent.SegmentView{Index: 0, State: "verified", Leases: []agent.LeaseView{lease(0, "P1", 0, "o0"), lease(0, "P2", 0, "o0")}},
			agent.SegmentView{Index: 1, State: "checking", Leases: []agent.LeaseView{lease(1, "P1", 0, "o1"), lease(1, "P2", 0, "o1")}}),
			nil},
	}
	for i, s := range steps {
		if got := tr.update(s.v); !slices.Equal(got, s.want) {
			t.Errorf("step %d lines:\n%s\nwant:\n%s", i, strings.Join(got, "\n"), strings.Join(s.want, "\n"))
		}
	}
	if want := map[string]int{"P0": 2, "P1": 2, "P2": 2}; !reflect.DeepEqual(tr.won, want) {
		t.Errorf("leases won %v; want %v (the dropped ones of P0 included)", tr.won, want)
	}
}

func TestRoundTracker(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	tr := newRoundTracker(func(id string) string { return strings.Replace(id, "P", "provider-", 1) })
	r := agent.RoundView{Round: 1, Segments: []uint32{0, 1, 2}, CloseAt: now.Add(1500 * time.Millisecond).UnixMilli()}
	got := tr.update(agent.BidsView{Rounds: []agent.RoundView{r}}, now)
	if want := []string{"auction round 1: segment(s) 0-2, closes in 1.5s"}; !slices.Equal(got, want) {
		t.Errorf("open: %q; want %q", got, want)
	}
	if got := tr.update(agent.BidsView{Rounds: []agent.RoundView{r}}, now); len(got) != 0 {
		t.Errorf("same round again: %q", got)
	}
	r.Closed = true
	r.Bids = []agent.BidView{{Provider: "P0", Price: 400, Capacity: 8}, {Provider: "P1", Price: 500, Capacity: 8}}
	r.NoBids = []agent.NoBidView{{Provider: "P2", Reason: "no capacity", Detail: "0 free slots"}}
	r.Awarded = []uint32{0, 1, 2}
	got = tr.update(agent.BidsView{Rounds: []agent.RoundView{r}}, now)
	want := "auction round 1 closed: 2 bid(s): provider-0 400 (capacity 8), provider-1 500 (capacity 8); " +
		"provider-2 did not bid: no capacity (0 free slots); awarded segment(s) 0-2"
	if len(got) != 1 || got[0] != want {
		t.Errorf("closed: %q; want %q", got, want)
	}
}

// The summary has every key the issue names.
func TestTrainSummaryKeys(t *testing.T) {
	s := trainSummary{Paid: map[string]uint64{"provider-1": 3}, Winners: map[string]int{}, Killed: []string{}, Phases: map[string]float64{}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"job", "segments", "segments_done", "model_cid", "accuracy", "paid", "fees", "refund",
		"height", "invariant_ok", "seconds", "winners", "deposit", "auctions", "killed", "loss", "phases"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary has no %q: %s", k, b)
		}
	}
}

func TestTrainSummaryCheck(t *testing.T) {
	good := trainSummary{Segments: 8, SegmentsDone: 8, InvariantOK: true, Accuracy: 0.95, Chance: 0.52}
	if err := good.check(); err != nil {
		t.Errorf("good summary: %v", err)
	}
	bad := good
	bad.SegmentsDone, bad.InvariantOK, bad.Accuracy = 7, false, 0.55
	err := bad.check()
	for _, want := range []string{"7 of 8 segments", "invariant", "not clearly better than chance"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad summary: %v; want it to mention %q", err, want)
		}
	}
}

// fakeMarket is a daemon's API as the scenario uses it: data add and get,
// the order book, a job that moves through scripted views, bids and chain
// status. Data "fetched" from an output root is the weights that training
// the root's shard natively gives.
type fakeMarket struct {
	t         *testing.T
	providers []string // peer IDs
	mu        sync.Mutex
	added     map[string]string // root -> path
	job       *agent.SubmitJobRequest
	views     []agent.JobView // handed out in turn; the last one repeats
	served    int
}

func (f *fakeMarket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, api.Prefix)
	switch {
	case r.Method == http.MethodGet && path == "/market/offers":
		var offers []agent.OfferView
		for i, p := range f.providers {
			offers = append(offers, agent.OfferView{Provider: p, FreeSlots: 8,
				Prices: []agent.PriceListItem{{Executor: "wasm", Price: uint64(400 + 100*i)}}})
		}
		api.WriteJSON(w, http.StatusOK, offers)
	case r.Method == http.MethodPost && path == "/data/add":
		var req node.DataAddRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		b, err := os.ReadFile(req.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(append([]byte(filepath.Base(req.Path)+"\x00"), b...))
		root := "root-" + hex.EncodeToString(sum[:8])
		f.added[root] = req.Path
		api.WriteJSON(w, http.StatusOK, node.DataAddResult{Root: root, Size: uint64(len(b))})
	case r.Method == http.MethodPost && path == "/market/jobs":
		var req agent.SubmitJobRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.job = &req
		api.WriteJSON(w, http.StatusOK, agent.SubmitJobResponse{Job: "job1", Deposit: 17_000, Height: 30})
	case r.Method == http.MethodGet && path == "/market/jobs/job1":
		v := f.views[min(f.served, len(f.views)-1)]
		f.served++
		api.WriteJSON(w, http.StatusOK, v)
	case r.Method == http.MethodGet && path == "/market/jobs/job1/bids":
		api.WriteJSON(w, http.StatusOK, agent.BidsView{Job: "job1", Rounds: []agent.RoundView{{Round: 1, Segments: []uint32{0, 1}, Closed: f.served > 1,
			Bids: []agent.BidView{{Provider: f.providers[0], Price: 400, Capacity: 8}}, Awarded: []uint32{0, 1}}}})
	case r.Method == http.MethodPost && path == "/data/get":
		var req node.DataGetRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if f.job == nil || !strings.HasPrefix(req.Root, "out-") {
			http.Error(w, "unknown root", http.StatusNotFound)
			return
		}
		var seg int
		fmt.Sscanf(req.Root, "out-%d", &seg)
		b, _ := os.ReadFile(f.added[f.job.Inputs[seg]])
		s, err := model.DecodeShard(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wt, _ := model.Train(model.Zero(s.Dim), s, model.DefaultConfig)
		_ = os.MkdirAll(req.Output, 0o755)
		_ = os.WriteFile(filepath.Join(req.Output, trainWeightsFile), model.EncodeWeights(wt), 0o644)
		api.WriteJSON(w, http.StatusOK, node.DataTransfer{ID: "t" + req.Root, Root: req.Root, Output: req.Output, State: node.TransferFetching})
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/data/transfers/"):
		api.WriteJSON(w, http.StatusOK, node.DataTransfer{ID: strings.TrimPrefix(path, "/data/transfers/"), State: node.TransferDone, Bytes: 144})
	case r.Method == http.MethodGet && path == "/chain/status":
		api.WriteJSON(w, http.StatusOK, consensus.ChainStatus{Height: 77, Invariant: "ok"})
	default:
		http.Error(w, "no route "+r.Method+" "+path, http.StatusNotFound)
	}
}

// The scenario against a fake daemon: it adds the data and the program,
// submits the job it was asked for, follows it to done (killing the
// cheapest provider once it wins), fetches and averages the outputs,
// and reports the model the native computation gives.
func TestRunTrainScenarioFake(t *testing.T) {
	dir := t.TempDir()
	fake := &fakeMarket{t: t, added: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	var nodes []*devnetNode
	for i, role := range []string{"validator", "provider", "provider", "provider", "renter"} {
		name := fmt.Sprintf("%s-%d", role, max(0, i-1))
		if role == "validator" {
			name = "validator-0"
		} else if role == "renter" {
			name = "renter-0"
		}
		n := &devnetNode{Name: name, Roles: []string{role}, Home: filepath.Join(dir, name), PeerID: fmt.Sprintf("PEER%d", i)}
		if err := os.MkdirAll(n.Home, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.Home, api.URLFile), []byte(srv.URL+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.Home, api.TokenFile), []byte(strings.Repeat("a", 64)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		if role == "provider" {
			fake.providers = append(fake.providers, n.PeerID)
		}
	}
	p0, p1, p2 := fake.providers[0], fake.providers[1], fake.providers[2]
	lease := func(seg uint32, p string, out string) agent.LeaseView {
		return agent.LeaseView{Segment: seg, Provider: p, Price: map[string]uint64{p0: 400, p1: 500, p2: 600}[p], Deadline: 60, Output: out}
	}
	segs := func(state string, leases func(seg uint32) []agent.LeaseView, out bool) []agent.SegmentView {
		var s []agent.SegmentView
		for i := range uint32(2) {
			sv := agent.SegmentView{Index: i, State: state, Leases: leases(i)}
			if out {
				sv.Output = fmt.Sprintf("out-%d", i)
			}
			s = append(s, sv)
		}
		return s
	}
	base := agent.JobView{Job: "job1", State: "open", Segments: 2, Verify: "replicate:2", Auctions: 1}
	v := func(mod func(*agent.JobView)) agent.JobView {
		x := base
		mod(&x)
		return x
	}
	fake.views = []agent.JobView{
		v(func(x *agent.JobView) {
			x.SegmentList = segs("open", func(uint32) []agent.LeaseView { return nil }, false)
		}),
		v(func(x *agent.JobView) {
			x.SegmentList = segs("leased", func(s uint32) []agent.LeaseView { return []agent.LeaseView{lease(s, p0, ""), lease(s, p1, "")} }, false)
		}),
		v(func(x *agent.JobView) {
			x.Auctions, x.Missed = 2, 2
			x.SegmentList = segs("leased", func(s uint32) []agent.LeaseView {
				return []agent.LeaseView{lease(s, p0, ""), lease(s, p1, fmt.Sprintf("out-%d", s)), lease(s, p2, "")}
			}, false)
		}),
		v(func(x *agent.JobView) {
			x.Auctions, x.Missed, x.SegmentsDone = 2, 2, 2
			x.SegmentList = segs("verified", func(s uint32) []agent.LeaseView {
				return []agent.LeaseView{lease(s, p0, ""), lease(s, p1, fmt.Sprintf("out-%d", s)), lease(s, p2, fmt.Sprintf("out-%d", s))}
			}, true)
		}),
		v(func(x *agent.JobView) {
			x.State, x.Auctions, x.Missed, x.SegmentsDone, x.SegmentsPaid = "done", 2, 2, 2, 2
			x.Paid = map[string]uint64{p1: 950, p2: 1140}
			x.Fees, x.Refund = 110, 14_800
			x.SegmentList = segs("paid", func(s uint32) []agent.LeaseView {
				return []agent.LeaseView{lease(s, p0, ""), lease(s, p1, fmt.Sprintf("out-%d", s)), lease(s, p2, fmt.Sprintf("out-%d", s))}
			}, true)
		}),
	}

	wasm := filepath.Join(dir, "train.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm-program"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := trainConfig{Program: wasm, Segments: 2, Rows: 300, Dim: 6, Seed: 3, Verify: "replicate:2",
		Deadline: 7 * time.Second, Auction: time.Second, JobTimeout: time.Minute, KillProvider: true}
	var log bytes.Buffer
	progress := func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := runTrainScenario(ctx, cfg, nodes, time.Now(), 30*time.Second, progress)
	if err != nil {
		t.Fatalf("scenario: %v\n%s", err, log.String())
	}

	job := fake.job
	if job == nil || len(job.Inputs) != 2 || job.Segments != 2 || job.Verify != "replicate:2" || job.Deadline != 7 ||
		job.AuctionMs != 1000 || job.MaxPrice != devnetMaxPrice || job.Executor != "wasm" || fake.added[job.Program] != wasm {
		t.Fatalf("submitted job %+v", job)
	}
	// The model is the mean of natively trained shards, added as model.bin.
	task, _ := model.NewTask(3, 6)
	var ws []model.Weights
	for i := range 2 {
		s, _ := task.Shard(i, 300)
		w, _ := model.Train(model.Zero(6), s, model.DefaultConfig)
		ws = append(ws, w)
	}
	avg, _ := model.Average(ws)
	mb, err := os.ReadFile(fake.added[sum.ModelCID])
	if err != nil || !bytes.Equal(mb, model.EncodeWeights(avg)) || filepath.Base(fake.added[sum.ModelCID]) != trainModelFile {
		t.Fatalf("model %s is not the average of the natively trained segments (%v)", sum.ModelCID, err)
	}
	hold, _ := task.Shard(-1, 300)
	acc, loss, _ := model.Evaluate(avg, hold)
	if sum.Accuracy != acc || sum.Loss != loss || sum.HoldoutRows != 300 {
		t.Errorf("accuracy %v loss %v rows %d; want %v %v 300", sum.Accuracy, sum.Loss, sum.HoldoutRows, acc, loss)
	}
	want := map[string]uint64{"provider-1": 950, "provider-2": 1140}
	if !reflect.DeepEqual(sum.Paid, want) || sum.Fees != 110 || sum.Refund != 14_800 || sum.Deposit != 17_000 {
		t.Errorf("paid %v fees %d refund %d deposit %d", sum.Paid, sum.Fees, sum.Refund, sum.Deposit)
	}
	if w := map[string]int{"provider-0": 2, "provider-1": 2, "provider-2": 2}; !reflect.DeepEqual(sum.Winners, w) {
		t.Errorf("winners %v; want %v", sum.Winners, w)
	}
	if !slices.Equal(sum.Killed, []string{"provider-0"}) || sum.Missed != 2 || sum.Auctions != 2 {
		t.Errorf("killed %v missed %d auctions %d", sum.Killed, sum.Missed, sum.Auctions)
	}
	if sum.Height != 77 || !sum.InvariantOK || sum.Job != "job1" || sum.SegmentsDone != 2 {
		t.Errorf("summary %+v", sum)
	}
	for _, p := range trainPhases {
		if _, ok := sum.Phases[p]; !ok {
			t.Errorf("no phase %q in %v", p, sum.Phases)
		}
	}
	for _, line := range []string{
		"offers: provider-0 400/segment (wasm, 8 slots), provider-1 500/segment (wasm, 8 slots), provider-2 600/segment (wasm, 8 slots)",
		"killed provider-0 (SIGKILL) right after it won segment(s) 0-1",
		"lease: provider-2 won segment(s) 0-1 at 600 each",
		"settled: job done, 2/2 segments paid: provider-1 950, provider-2 1140; fees 110, refund 14800",
	} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("progress lacks %q:\n%s", line, log.String())
		}
	}
	var out bytes.Buffer
	sum.print(&out)
	t.Logf("progress:\n%s\nsummary:\n%s", log.String(), out.String())
	for _, s := range []string{"2/2 segments done (replicate:2)", "killed:     provider-0", "model:      " + sum.ModelCID, "supply invariant ok"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed summary lacks %q:\n%s", s, out.String())
		}
	}
}
