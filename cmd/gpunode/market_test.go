package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/protocol"
)

// testCID is a CIDv1 derived from s.
func testCID(s string) string { return protocol.BlockCID([]byte(s)).String() }

// scriptedMarket serves the market routes of market/agent/api.go from
// fixed answers, and GET /market/jobs/{id} from a script: each poll answers
// the next view, the last one repeating. It records what the CLI sent.
type scriptedMarket struct {
	offers   []agent.OfferView
	prices   []agent.PriceView
	jobs     []agent.JobView // script for GET /market/jobs/{id}
	bids     agent.BidsView
	leases   []agent.LeaseView
	provider agent.ProviderView

	mu        sync.Mutex // guards the fields below
	submitted []agent.SubmitJobRequest
	polls     int
	posts     []string // paths of POSTs without a body type of their own
}

func (s *scriptedMarket) record() (submitted []agent.SubmitJobRequest, polls int, posts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agent.SubmitJobRequest(nil), s.submitted...), s.polls, append([]string(nil), s.posts...)
}

func fixed[T any](v T) http.Handler {
	return api.JSON(func(*http.Request, struct{}) (T, error) { return v, nil })
}

func (s *scriptedMarket) routes() []api.Route {
	job := api.JSON(func(r *http.Request, _ struct{}) (agent.JobView, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.jobs) == 0 {
			return agent.JobView{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "unknown job")
		}
		j := s.jobs[min(s.polls, len(s.jobs)-1)]
		s.polls++
		j.Job = r.PathValue("id")
		return j, nil
	})
	submit := api.JSON(func(_ *http.Request, in agent.SubmitJobRequest) (agent.SubmitJobResponse, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.submitted = append(s.submitted, in)
		return agent.SubmitJobResponse{Job: testCID("job"), Deposit: uint64(in.Segments) * in.MaxPrice, Tx: strings.Repeat("cd", 32), Height: 12}, nil
	})
	tx := api.JSON(func(r *http.Request, _ struct{}) (agent.TxResponse, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.posts = append(s.posts, r.URL.Path)
		return agent.TxResponse{Tx: strings.Repeat("ef", 32), Height: 30}, nil
	})
	return []api.Route{
		{Method: http.MethodGet, Path: "/market/offers", Handler: fixed(s.offers)},
		{Method: http.MethodGet, Path: "/market/prices", Handler: fixed(s.prices)},
		{Method: http.MethodPost, Path: "/market/jobs", Handler: submit},
		{Method: http.MethodGet, Path: "/market/jobs", Handler: fixed(s.jobs)},
		{Method: http.MethodGet, Path: "/market/jobs/{id}", Handler: job},
		{Method: http.MethodGet, Path: "/market/jobs/{id}/bids", Handler: fixed(s.bids)},
		{Method: http.MethodPost, Path: "/market/jobs/{id}/cancel", Handler: tx},
		{Method: http.MethodGet, Path: "/market/leases", Handler: fixed(s.leases)},
		{Method: http.MethodGet, Path: "/market/provider", Handler: fixed(s.provider)},
		{Method: http.MethodPost, Path: "/market/exit", Handler: tx},
	}
}

// startMarketAPI runs a real api.Server on a temporary home with sm's
// market routes, or none when sm is nil.
func startMarketAPI(t *testing.T, sm *scriptedMarket) string {
	t.Helper()
	home := t.TempDir()
	srv, err := api.New(statusOnly{}, api.WithAddr("127.0.0.1:0"), api.WithDataDir(home))
	if err != nil {
		t.Fatal(err)
	}
	if sm != nil {
		for _, r := range sm.routes() {
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

// testMarket is a market with one of everything.
func testMarket(t *testing.T) *scriptedMarket {
	p1, p2 := testPeerID(t, 1), testPeerID(t, 2)
	job := testCID("job")
	offer := agent.OfferView{
		Provider: p1, Seq: 4, Status: "idle", Region: "eu-west",
		GPUs:      []agent.GPUGroupView{{Model: "A100", VRAM: 80 << 30, Count: 4}},
		CPUs:      32,
		Executors: []string{"wasm", "process"},
		Prices:    []agent.PriceListItem{{Model: "A100", Executor: "wasm", Price: 120}, {Executor: "wasm", Price: 7}},
		Stake:     5000, FreeSlots: 3, HardwareClass: "a100-80",
		Reputation: agent.Rep{Completed: 11, Failed: 2, Slashed: 1},
		Expires:    1_700_000_000_000,
	}
	return &scriptedMarket{
		offers: []agent.OfferView{offer, {Provider: p2, Status: "disconnected", CPUs: 8, Executors: []string{"wasm"}, Stake: 10}},
		prices: []agent.PriceView{{Model: "A100", Count: 9, Min: 90, Q1: 100, Median: 110, Q3: 120, Max: 150}},
		jobs: []agent.JobView{{
			Job: job, Renter: p2, State: "open", Segments: 3, SegmentsDone: 1, SegmentsPaid: 1,
			Verify: "replicate:2", MaxPrice: 150, Deposit: 900, Escrow: 660, Program: testCID("prog"),
			SegmentList: []agent.SegmentView{
				{Index: 0, State: "paid", Output: testCID("out0"), Leases: []agent.LeaseView{{Provider: p1, Price: 120}}},
				{Index: 1, State: "leased", Leases: []agent.LeaseView{{Provider: p1, Price: 120}}},
				{Index: 2, State: "open"},
			},
			Auctions: 2, Paid: map[string]uint64{p1: 114}, Fees: 6, Refund: 0, Missed: 1,
			NoBids: []agent.NoBidView{{Provider: p2, Reason: "requirement unmet: VRAM", Detail: "have 24 GiB, need 40 GiB"}},
		}},
		bids: agent.BidsView{
			Job: job,
			Rounds: []agent.RoundView{{
				Round: 1, Segments: []uint32{0, 1, 2, 5}, CloseAt: 1_700_000_000_000, Closed: true,
				Bids:    []agent.BidView{{Provider: p1, Price: 120, Capacity: 2, Nonce: 77}},
				NoBids:  []agent.NoBidView{{Provider: p2, Reason: "no free capacity"}},
				Awarded: []uint32{0, 1},
			}},
			Rejected: map[string]int{"above max price": 3, "replayed": 1},
		},
		leases:   []agent.LeaseView{{Job: job, Segment: 1, Provider: p1, Price: 120, Deadline: 88, Local: "running"}},
		provider: agent.ProviderView{Provider: p1, Offer: &offer, TotalSlots: 4, FreeSlots: 3, Running: 1, Earned: 114},
	}
}

func TestMarketQueries(t *testing.T) {
	sm := testMarket(t)
	home := startMarketAPI(t, sm)
	job := testCID("job")
	p1, p2 := testPeerID(t, 1), testPeerID(t, 2)
	for _, c := range []struct {
		args []string
		want any      // what --json must decode to
		text []string // what the text must show
	}{
		{[]string{"offers"}, sm.offers, []string{
			"PROVIDER", shortID(p1), "idle", "eu-west", "A100 x4 / 32 CPUs", "wasm,process",
			"A100/wasm=120,cpu/wasm=7", "5000", "11/2/1", "a100-80", shortID(p2), "disconnected", "8 CPUs"}},
		{[]string{"prices"}, sm.prices, []string{"MEDIAN", "A100", "110", "150"}},
		{[]string{"job", "status", job}, sm.jobs[0], []string{
			"state:", "open", "1/3 done, 1 paid", "deposit:", "900 (escrow now 660)", "replicate:2",
			testCID("out0"), "leased", "PAID TO", p1 + "  114", "fees:", "why no bids?", "requirement unmet: VRAM",
			"have 24 GiB, need 40 GiB", "1 missed deadlines"}},
		{[]string{"job", "bids", job}, sm.bids, []string{
			"round 1: segments 0-2,5, closed", "awarded: segments 0-1", p1, "77", "did not bid:", "no free capacity",
			"above max price:  3", "replayed:"}},
		{[]string{"job", "list"}, sm.jobs, []string{job, "open"}},
		{[]string{"leases"}, sm.leases, []string{"DEADLINE", job, "88", "running"}},
		{[]string{"provider", "status"}, sm.provider, []string{
			"3 free of 4", "earned:", "114", "exiting:", "no", "seq 4, idle", "A100 x4 / 32 CPUs", "11 completed, 2 failed, 1 slashed"}},
	} {
		t.Run(strings.Join(c.args[:min(2, len(c.args))], " "), func(t *testing.T) {
			out, err := runCLI(t, append(c.args, "--home", home)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.text {
				if !strings.Contains(out, s) {
					t.Errorf("%v output lacks %q:\n%s", c.args, s, out)
				}
			}
			out, err = runCLI(t, append(c.args, "--home", home, "--json")...)
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(c.want))
			if err := json.Unmarshal([]byte(out), got.Interface()); err != nil {
				t.Fatalf("%v --json: %v\n%s", c.args, err, out)
			}
			want := c.want
			if j, ok := want.(agent.JobView); ok {
				j.Job = job // the script answers with the asked ID
				want = j
			}
			if !reflect.DeepEqual(got.Elem().Interface(), want) {
				t.Errorf("%v --json = %s; want %+v", c.args, out, want)
			}
		})
	}
}

func TestMarketEmptyAnswers(t *testing.T) {
	home := startMarketAPI(t, &scriptedMarket{})
	for cmd, want := range map[string]string{"offers": "no offers", "prices": "no prices", "leases": "no leases"} {
		out, err := runCLI(t, cmd, "--home", home)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s on an empty market = %q, %v; want %q", cmd, out, err, want)
		}
		out, err = runCLI(t, cmd, "--home", home, "--json")
		if err != nil || strings.TrimSpace(out) != "[]" {
			t.Errorf("%s --json on an empty market = %q, %v; want []", cmd, out, err)
		}
	}
}

func TestJobSubmitRequest(t *testing.T) {
	prog, in0, in1 := testCID("prog"), testCID("in0"), testCID("in1")
	base := []string{"job", "submit", "--program", prog, "--segments", "2", "--max-price", "100"}
	for _, c := range []struct {
		name  string
		flags []string
		want  agent.SubmitJobRequest
	}{
		{"defaults", nil,
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60}},
		{"spotcheck as written", []string{"--verify", "spotcheck:0.1"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, Verify: "spotcheck:0.1"}},
		{"spotcheck without zero", []string{"--verify", "spotcheck:.05"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, Verify: "spotcheck:0.05"}},
		{"spotcheck trailing zero", []string{"--verify", "spotcheck:0.250"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, Verify: "spotcheck:0.25"}},
		{"spotcheck percent", []string{"--verify", "spotcheck:10%"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, Verify: "spotcheck:0.1"}},
		{"spotcheck all", []string{"--verify", "spotcheck:1.0"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, Verify: "spotcheck:1"}},
		{"replicate", []string{"--verify", "replicate:02"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, Verify: "replicate:2"}},
		{"deadline and auction", []string{"--deadline", "2m30s", "--auction", "3s"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 150, AuctionMs: 3000}},
		{"inputs", []string{"--input", in0, "--input", in1},
			agent.SubmitJobRequest{Program: prog, Inputs: []string{in0, in1}, Segments: 2, MaxPrice: 100, Deadline: 60}},
		{"gpu requirements", []string{"--gpu-model", "H100", "--gpu-model", "A100,H100", "--min-vram", "40GiB", "--region", "eu", "--executor", "wasm", "--salt", "9"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, GPUModels: []string{"A100", "H100"},
				MinVRAM: 40 << 30, GPUCount: 1, Region: "eu", Executor: "wasm", Salt: 9}},
		{"gpu count", []string{"--gpu-model", "L4", "--gpus", "4"},
			agent.SubmitJobRequest{Program: prog, Segments: 2, MaxPrice: 100, Deadline: 60, GPUModels: []string{"L4"}, GPUCount: 4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sm := &scriptedMarket{}
			home := startMarketAPI(t, sm)
			out, err := runCLI(t, append(append(base, c.flags...), "--home", home)...)
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := sm.record()
			if len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
				t.Fatalf("daemon received %+v\nwant %+v", got, c.want)
			}
			want := fmt.Sprintf("job %s opened at height 12: deposit 200 in escrow", testCID("job"))
			if !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		})
	}
	t.Run("runtime json", func(t *testing.T) {
		sm := &scriptedMarket{}
		home := startMarketAPI(t, sm)
		out, err := runCLI(t, "job", "submit", "--runtime", "cuda-matmul", "--segments", "3", "--max-price", "5", "--home", home, "--json")
		if err != nil {
			t.Fatal(err)
		}
		// The progress line goes to stderr with --json; runCLI merges
		// them, so decode the JSON after it.
		var got submitOutcome
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got.Job != testCID("job") || got.Deposit != 15 || got.Height != 12 || got.Final != nil {
			t.Errorf("submit --json = %s; want the job, deposit 15, height 12 and no final view", out)
		}
		req, _, _ := sm.record()
		if len(req) != 1 || req[0].Runtime != "cuda-matmul" || req[0].Program != "" {
			t.Errorf("daemon received %+v; want the runtime and no program", req)
		}
	})
}

// jobAt is a job view with done of 3 segments done and leases leases.
func jobAt(state string, done, leases, missed, wrong int) agent.JobView {
	j := agent.JobView{State: state, Segments: 3, SegmentsDone: uint32(done), Missed: missed, Wrong: wrong, Refund: 40}
	for i := range 3 {
		s := agent.SegmentView{Index: uint32(i), State: "open"}
		if i < leases {
			s.Leases = []agent.LeaseView{{Provider: "p"}}
		}
		j.SegmentList = append(j.SegmentList, s)
	}
	if state == "done" {
		j.Paid = map[string]uint64{"a": 50, "b": 25}
		j.Fees = 3
	}
	return j
}

func TestJobSubmitWait(t *testing.T) {
	prog := testCID("prog")
	submit := []string{"job", "submit", "--program", prog, "--segments", "3", "--max-price", "10", "--wait", "--poll", "1ms"}
	t.Run("done", func(t *testing.T) {
		sm := &scriptedMarket{jobs: []agent.JobView{
			jobAt("open", 0, 0, 0, 0),
			jobAt("open", 0, 0, 0, 0), // unchanged: no line
			jobAt("open", 0, 2, 0, 0),
			jobAt("open", 0, 2, 0, 0),
			jobAt("open", 1, 3, 1, 0),
			jobAt("open", 3, 3, 1, 1),
			jobAt("done", 3, 3, 1, 1),
		}}
		home := startMarketAPI(t, sm)
		out, err := runCLI(t, append(submit, "--home", home)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		want := []string{
			"job " + testCID("job") + " opened at height 12: deposit 30 in escrow (tx " + strings.Repeat("cd", 32) + ")",
			"open: 0/3 segments done, 0 leases, 0 missed, 0 wrong",
			"open: 0/3 segments done, 2 leases, 0 missed, 0 wrong",
			"open: 1/3 segments done, 3 leases, 1 missed, 0 wrong",
			"open: 3/3 segments done, 3 leases, 1 missed, 1 wrong",
			"done: 3/3 segments done, 3 leases, 1 missed, 1 wrong",
			"job " + testCID("job") + " done: 3 segments, paid 75 to 2 providers, fees 3, refund 40",
		}
		if got := strings.Split(strings.TrimSpace(out), "\n"); !reflect.DeepEqual(got, want) {
			t.Errorf("submit --wait printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if _, polls, _ := sm.record(); polls != len(sm.jobs) {
			t.Errorf("polled %d times, want %d (until done, then stop)", polls, len(sm.jobs))
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		sm := &scriptedMarket{jobs: []agent.JobView{jobAt("open", 1, 1, 0, 0), jobAt("cancelled", 1, 1, 0, 0)}}
		home := startMarketAPI(t, sm)
		out, err := runCLI(t, append(submit, "--home", home, "--json")...)
		if err == nil || !strings.Contains(err.Error(), "ended cancelled: 1 of 3 segments done, refund 40") {
			t.Fatalf("a cancelled job gave error %v; want it to say the job ended cancelled", err)
		}
		if !strings.Contains(out, "cancelled: 1/3 segments done") {
			t.Errorf("no progress line for the cancellation in\n%s", out)
		}
		var got submitOutcome
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got.Final == nil || got.Final.State != "cancelled" || got.Job != testCID("job") {
			t.Errorf("submit --wait --json = %s; want the final view, cancelled", out)
		}
		if _, polls, _ := sm.record(); polls != 2 {
			t.Errorf("polled %d times, want 2", polls)
		}
	})
	t.Run("job vanishes", func(t *testing.T) {
		home := startMarketAPI(t, &scriptedMarket{})
		_, err := runCLI(t, append(submit, "--home", home)...)
		if err == nil || !strings.Contains(err.Error(), "following job") {
			t.Fatalf("error %v; want it to say following the job failed", err)
		}
	})
}

func TestJobSubmitRefusesBadInput(t *testing.T) {
	sm := &scriptedMarket{}
	home := startMarketAPI(t, sm)
	prog, in0 := testCID("prog"), testCID("in0")
	ok := func(extra ...string) []string {
		return append([]string{"job", "submit", "--program", prog, "--segments", "2", "--max-price", "100"}, extra...)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "submit", "--segments", "2", "--max-price", "1"}, "give --program CID"},
		{ok("--runtime", "x"), "both given"},
		{[]string{"job", "submit", "--program", prog, "--segments", "0", "--max-price", "1"}, "--segments must be at least 1"},
		{[]string{"job", "submit", "--program", prog, "--max-price", "1"}, "--segments must be at least 1"},
		{[]string{"job", "submit", "--program", prog, "--segments", "1"}, "--max-price must be positive"},
		{[]string{"job", "submit", "--program", "notacid", "--segments", "1", "--max-price", "1"}, `--program "notacid" is not a CID`},
		{ok("--input", in0, "--input", "bafyzzz"), `--input 1 "bafyzzz" is not a CID`},
		{ok("--input", in0), "1 --input CIDs for 2 segments"},
		{ok("--verify", "spotcheck:0"), "the fraction P must be in (0, 1]"},
		{ok("--verify", "spotcheck:1.5"), "the fraction P must be in (0, 1]"},
		{ok("--verify", "spotcheck:0.0000001"), "at most 6 decimals"},
		{ok("--verify", "spotcheck:abc"), "the fraction P must be in (0, 1]"},
		{ok("--verify", "replicate:0"), "K must be a whole number 1..16"},
		{ok("--verify", "replicate:17"), "K must be a whole number 1..16"},
		{ok("--verify", "majority:3"), "unknown kind"},
		{ok("--verify", "replicate"), "want replicate:K or spotcheck:P"},
		{ok("--deadline", "1500ms"), "want whole seconds"},
		{ok("--deadline", "0s"), "want at least 1s"},
		{ok("--deadline", "200h"), "want at most"},
		{ok("--auction", "-1s"), "--auction"},
		{ok("--min-vram", "40 parsecs"), "--min-vram"},
		{ok("--min-vram", "0GiB"), "out of range"},
		{ok("--gpu-model", "A100", "--gpus", "0"), "--gpus is 0"},
	} {
		_, err := runCLI(t, append(c.args, "--home", home)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v; want %q", c.args, err, c.want)
		}
	}
	if got, _, _ := sm.record(); len(got) != 0 {
		t.Fatalf("refused submissions reached the daemon: %+v", got)
	}
}

func TestMarketTxCommands(t *testing.T) {
	sm := &scriptedMarket{}
	home := startMarketAPI(t, sm)
	job := testCID("job")
	out, err := runCLI(t, "job", "cancel", job, "--home", home)
	if err != nil {
		t.Fatal(err)
	}
	if want := "job " + job + " cancelled: tx " + strings.Repeat("ef", 32) + " committed at height 30"; !strings.Contains(out, want) {
		t.Errorf("job cancel printed %q; want %q", out, want)
	}
	out, err = runCLI(t, "provider", "exit", "--home", home, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var tx agent.TxResponse
	if err := json.Unmarshal([]byte(out), &tx); err != nil || tx.Height != 30 || tx.Tx != strings.Repeat("ef", 32) {
		t.Errorf("provider exit --json = %s (%v); want the tx at height 30", out, err)
	}
	if _, err := runCLI(t, "job", "cancel", "nope", "--home", home); err == nil || !strings.Contains(err.Error(), "not a CID") {
		t.Errorf("job cancel of a bad ID: %v; want it refused as not a CID", err)
	}
	_, _, posts := sm.record()
	if want := []string{"/api/v1/market/jobs/" + job + "/cancel", "/api/v1/market/exit"}; !reflect.DeepEqual(posts, want) {
		t.Errorf("daemon received POSTs %v; want %v", posts, want)
	}
}

func TestMarketCommandsWithoutMarket(t *testing.T) {
	home := startMarketAPI(t, nil)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"offers"}, "runs without the market"},
		{[]string{"leases"}, "without the provider role"},
		{[]string{"provider", "exit"}, "without the provider role"},
		{[]string{"job", "submit", "--runtime", "r", "--segments", "1", "--max-price", "1"}, "without the renter role"},
	} {
		_, err := runCLI(t, append(c.args, "--home", home)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v on a node without the market: %v; want %q", c.args, err, c.want)
		}
	}
}

func TestFractionPPM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32 // 0: refused
	}{
		{"0.1", 100_000}, {".1", 100_000}, {"0.10", 100_000}, {"00.5", 500_000}, {"1", 1_000_000}, {"1.000", 1_000_000},
		{"0.000001", 1}, {"10%", 100_000}, {"2.5%", 25_000}, {"100%", 1_000_000}, {"0.0001%", 1},
		{"0", 0}, {"0.0", 0}, {"", 0}, {".", 0}, {"1.01", 0}, {"101%", 0}, {"-0.1", 0}, {"1e-1", 0}, {"0.0000001", 0},
		{"0.00001%", 0}, {"99999999999999999999", 0},
	} {
		got, err := fractionPPM(c.in)
		if c.want == 0 {
			if err == nil {
				t.Errorf("fractionPPM(%q) = %d; want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("fractionPPM(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64 // 0: refused
	}{
		{"40GiB", 40 << 30}, {"40 GiB", 40 << 30}, {"40gib", 40 << 30}, {"24GB", 24e9}, {"512MiB", 512 << 20},
		{"1TiB", 1 << 40}, {"1000", 1000}, {"7B", 7},
		{"", 0}, {"GiB", 0}, {"40G", 0}, {"1.5GiB", 0}, {"-1GiB", 0}, {"0", 0}, {"99999999999TiB", 0},
	} {
		got, err := parseSize(c.in)
		if c.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d; want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestSegmentRanges(t *testing.T) {
	for _, c := range []struct {
		in   []uint32
		want string
	}{
		{nil, "none"}, {[]uint32{4}, "4"}, {[]uint32{0, 1, 2, 5}, "0-2,5"}, {[]uint32{9, 7, 8, 1}, "1,7-9"},
	} {
		if got := segmentRanges(c.in); got != c.want {
			t.Errorf("segmentRanges(%v) = %q; want %q", c.in, got, c.want)
		}
	}
}
