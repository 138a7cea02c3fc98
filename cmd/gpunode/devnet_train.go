package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/examples/train/model"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/node"
)

// The training scenario (--scenario train): the renter generates a data
// set with examples/train/model, adds it and the training program
// (examples/train built for wasip1), opens a segmented job, and the
// providers bid, win, fetch, run and submit; the chain verifies and
// settles; the renter fetches every segment's weights, averages them into
// the model, adds the model (its root is model_cid) and evaluates it on a
// held-out split.

// Devnet provider settings: provider i asks devnetPrice + i*devnetPriceStep
// per CPU (wasm) segment, so provider-0 is the cheapest, and runs
// devnetSlots segments at once, so that any two providers hold one replica
// of every segment of a default job.
const (
	devnetPrice     = 400
	devnetPriceStep = 100
	devnetGPUPrice  = 4000
	devnetSlots     = 8
	devnetRegion    = "local"
	// devnetMaxPrice is the job's max price per segment; above every
	// devnet provider's price up to provider-5.
	devnetMaxPrice = 1000
	// trainModelFile is the model's file name in the renter's train
	// directory; the root of a file depends on its name, so it is fixed.
	trainModelFile = "model.bin"
	// trainWeightsFile is what the program writes per segment.
	trainWeightsFile = "weights.bin"
)

// devnetMarketParams is the genesis "market" object of a devnet: short
// blocks and windows so a training job runs in seconds.
var devnetMarketParams = json.RawMessage(`{"challenge_window":2,"block_time_ms":250,"slash_amount":10000,"expiry_grace_ms":30000,"check_blocks":8}`)

// setGenesisMarket puts devnetMarketParams into g's Market field when this
// build's ledger.Genesis has one (a json.RawMessage or a struct), and
// reports whether it did. Until the field exists the genesis file must not
// carry the object: ledger.Load refuses unknown keys.
func setGenesisMarket(g *ledger.Genesis) (bool, error) {
	f := reflect.ValueOf(g).Elem().FieldByName("Market")
	if !f.IsValid() || !f.CanAddr() || !f.CanSet() {
		return false, nil
	}
	if err := json.Unmarshal(devnetMarketParams, f.Addr().Interface()); err != nil {
		return false, fmt.Errorf("devnet: genesis market parameters: %w", err)
	}
	return true, nil
}

// marketFlagsSupported reports whether this build's `gpunode run` has the
// provider market flags (--price, --gpu-price, --slots, --region).
func marketFlagsSupported() bool {
	f := newRunCmd().Flags()
	for _, name := range []string{"price", "gpu-price", "slots", "region"} {
		if f.Lookup(name) == nil {
			return false
		}
	}
	return true
}

// devnetProviderArgs are the extra `gpunode run` flags of the i-th provider.
func devnetProviderArgs(i int) []string {
	return []string{
		"--price", strconv.Itoa(devnetPrice + i*devnetPriceStep),
		"--gpu-price", strconv.Itoa(devnetGPUPrice + i*10*devnetPriceStep),
		"--slots", strconv.Itoa(devnetSlots),
		"--region", devnetRegion,
	}
}

// trainConfig is what --scenario train runs.
type trainConfig struct {
	Program      string        // path of train.wasm
	Segments     int           // segments = shards
	Rows         int           // rows per shard and in the held-out split
	Dim          int           // features
	Seed         uint64        // data set seed
	Verify       string        // replicate:k or spotcheck:p
	Deadline     time.Duration // per segment
	Auction      time.Duration // auction round length; 0: the agent's default
	JobTimeout   time.Duration // submit to done
	KillProvider bool          // SIGKILL the cheapest provider once it wins
}

// replicas is how many providers run each segment under Verify.
func (c trainConfig) replicas() int {
	if k, ok := strings.CutPrefix(c.Verify, "replicate:"); ok {
		n, err := strconv.Atoi(k)
		if err == nil && n > 0 {
			return n
		}
	}
	return 1
}

func addTrainFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Bool("kill-provider", false, "train: SIGKILL the cheapest provider right after it wins; its segments are re-auctioned after their deadline")
	f.String("train-wasm", "", "train: the training program (default: train.wasm next to this binary, which make build writes)")
	f.Int("segments", 8, "train: segments (one data shard each)")
	f.Int("rows", 4000, "train: rows per shard and in the held-out split")
	f.Int("dim", 16, "train: features per row")
	f.Uint64("seed", 1, "train: data set seed")
	f.String("verify", "replicate:2", "train: verification policy, replicate:k or spotcheck:p")
	f.Duration("deadline", 60*time.Second, "train: time a provider has for a segment before it is re-auctioned (a first run compiles the module on every slot at once)")
	f.Duration("auction", 0, "train: how long each auction round stays open (0: the agent's default)")
	f.Duration("job-timeout", 4*time.Minute, "train: how long the job may take from submission to settlement")
}

func trainConfigFromFlags(cmd *cobra.Command, self string, providers, renters int) (trainConfig, error) {
	f := cmd.Flags()
	var c trainConfig
	c.Program, _ = f.GetString("train-wasm")
	c.Segments, _ = f.GetInt("segments")
	c.Rows, _ = f.GetInt("rows")
	c.Dim, _ = f.GetInt("dim")
	c.Seed, _ = f.GetUint64("seed")
	c.Verify, _ = f.GetString("verify")
	c.Deadline, _ = f.GetDuration("deadline")
	c.Auction, _ = f.GetDuration("auction")
	c.JobTimeout, _ = f.GetDuration("job-timeout")
	c.KillProvider, _ = f.GetBool("kill-provider")
	if c.Program == "" {
		c.Program = filepath.Join(filepath.Dir(self), "train.wasm")
	}
	return c, c.validate(providers, renters)
}

func (c trainConfig) validate(providers, renters int) error {
	switch {
	case c.Segments < 1 || c.Segments > 1024:
		return fmt.Errorf("--segments %d: want 1..1024", c.Segments)
	case c.Rows < 2 || c.Rows > model.MaxRows:
		return fmt.Errorf("--rows %d: want 2..%d", c.Rows, model.MaxRows)
	case c.Dim < 1 || c.Dim > 1024:
		return fmt.Errorf("--dim %d: want 1..1024", c.Dim)
	case !strings.HasPrefix(c.Verify, "replicate:") && !strings.HasPrefix(c.Verify, "spotcheck:"):
		return fmt.Errorf("--verify %q: want replicate:k or spotcheck:p", c.Verify)
	case c.Deadline < time.Second || c.Deadline > 24*time.Hour:
		return fmt.Errorf("--deadline %s: want 1s..24h", c.Deadline)
	case c.Auction < 0 || c.JobTimeout <= 0:
		return errors.New("--auction and --job-timeout must not be negative")
	case renters < 1:
		return errors.New("--scenario train needs a renter")
	}
	need := c.replicas()
	if c.KillProvider {
		need++
	}
	if providers < need {
		return fmt.Errorf("--scenario train with --verify %s needs at least %d providers (have %d)", c.Verify, need, providers)
	}
	if _, err := os.Stat(c.Program); err != nil {
		return fmt.Errorf("training program: %w (make build writes bin/train.wasm; or pass --train-wasm)", err)
	}
	return nil
}

// trainSummary is what the scenario reports; --json prints it as is.
type trainSummary struct {
	Job          string             `json:"job"`
	Segments     uint32             `json:"segments"`
	SegmentsDone uint32             `json:"segments_done"`
	Verify       string             `json:"verify"`
	ModelCID     string             `json:"model_cid"`
	Accuracy     float64            `json:"accuracy"`
	Chance       float64            `json:"chance"` // majority-class rate of the held-out split
	Loss         float64            `json:"loss"`
	HoldoutRows  int                `json:"holdout_rows"`
	Winners      map[string]int     `json:"winners"` // provider -> leases won, re-auctions included
	Paid         map[string]uint64  `json:"paid"`    // provider -> paid to it
	Slashed      map[string]uint64  `json:"slashed,omitempty"`
	Fees         uint64             `json:"fees"`
	Refund       uint64             `json:"refund"`
	Deposit      uint64             `json:"deposit"`
	Auctions     int                `json:"auctions"`
	Missed       int                `json:"missed"`
	Wrong        int                `json:"wrong"`
	Killed       []string           `json:"killed"`
	Height       uint64             `json:"height"`
	InvariantOK  bool               `json:"invariant_ok"`
	Seconds      float64            `json:"seconds"`
	Phases       map[string]float64 `json:"phases"` // wall seconds: network, data, auction, run, settle, model
}

// trainPhases are the summary's phases in order.
var trainPhases = []string{"network", "data", "auction", "run", "settle", "model"}

// phaseClock measures consecutive phases.
type phaseClock struct {
	start, last time.Time
	phases      map[string]float64
}

func newPhaseClock(start time.Time) *phaseClock {
	return &phaseClock{start: start, last: start, phases: map[string]float64{}}
}

// end closes the phase running since the previous end at t.
func (p *phaseClock) end(name string, t time.Time) {
	if t.Before(p.last) {
		t = p.last
	}
	p.phases[name] = roundSecs(t.Sub(p.last))
	p.last = t
}

func roundSecs(d time.Duration) float64 {
	return float64(d.Round(10*time.Millisecond)) / float64(time.Second)
}

// trainData is the renter's generated data set.
type trainData struct {
	Shards  []string // shard file paths, segment order
	Holdout model.Shard
	Bytes   int64 // total bytes of the shard files
}

// writeTrainData generates the segments' shards into dir (one file per
// segment) and the held-out split (index -1, kept in memory). The same
// seed, dim and sizes always give the same bytes.
func writeTrainData(dir string, seed uint64, dim, segments, rows int) (trainData, error) {
	task, err := model.NewTask(seed, dim)
	if err != nil {
		return trainData{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return trainData{}, err
	}
	var d trainData
	for i := range segments {
		s, err := task.Shard(i, rows)
		if err != nil {
			return trainData{}, err
		}
		b := model.EncodeShard(s)
		p := filepath.Join(dir, fmt.Sprintf("shard-%03d.bin", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return trainData{}, err
		}
		d.Shards = append(d.Shards, p)
		d.Bytes += int64(len(b))
	}
	if d.Holdout, err = task.Shard(-1, rows); err != nil {
		return trainData{}, err
	}
	return d, nil
}

// chance is the accuracy of always answering the majority class.
func chance(s model.Shard) float64 {
	if s.Rows() == 0 {
		return 0
	}
	ones := 0
	for _, y := range s.Y {
		if y == 1 {
			ones++
		}
	}
	return float64(max(ones, s.Rows()-ones)) / float64(s.Rows())
}

// findWeights reads the segment's weights from what data get wrote at out:
// the directory of the output root (weights.bin in it, at any depth) or
// the file itself.
func findWeights(out string) ([]byte, error) {
	st, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return os.ReadFile(out)
	}
	var found string
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == trainWeightsFile && found == "" {
			found = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == "" {
		return nil, fmt.Errorf("no %s under %s", trainWeightsFile, out)
	}
	return os.ReadFile(found)
}

// aggregate decodes every segment's weights and averages them in segment
// order.
func aggregate(files [][]byte) (model.Weights, error) {
	ws := make([]model.Weights, len(files))
	for i, b := range files {
		w, err := model.DecodeWeights(b)
		if err != nil {
			return model.Weights{}, fmt.Errorf("segment %d: %w", i, err)
		}
		ws[i] = w
	}
	return model.Average(ws)
}

// segList formats segment indices compactly: "0-3,5,7".
func segList(segs []uint32) string {
	s := slices.Clone(segs)
	slices.Sort(s)
	s = slices.Compact(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", s[i], s[j])
		} else {
			fmt.Fprintf(&b, "%d", s[i])
		}
		i = j + 1
	}
	return b.String()
}

// jobTracker turns successive views of a job into progress lines: new
// leases, submitted results, segment state changes, missed deadlines and
// wrong results.
type jobTracker struct {
	name   func(peerID string) string
	leases map[string]bool   // "segment/provider/deadline" and "segment/provider" seen
	won    map[string]int    // provider -> leases seen, including those a reopened segment dropped
	output map[string]bool   // "segment/provider" with a result seen
	state  map[uint32]string // segment -> last state
	missed int
	wrong  int
}

func newJobTracker(name func(string) string) *jobTracker {
	return &jobTracker{name: name, leases: map[string]bool{}, won: map[string]int{}, output: map[string]bool{}, state: map[uint32]string{}}
}

func (t *jobTracker) update(v agent.JobView) []string {
	var lines []string
	type group struct {
		segs  []uint32
		price uint64
		dl    uint64
	}
	newLeases := map[string]*group{}
	results := map[string][]uint32{}
	states := map[string][]uint32{}
	for _, s := range v.SegmentList {
		for _, l := range s.Leases {
			// A lease is new when its deadline is; a view may drop the
			// deadline (0) of a lease it showed before.
			key := fmt.Sprintf("%d/%s/%d", l.Segment, l.Provider, l.Deadline)
			sp := fmt.Sprintf("%d/%s", l.Segment, l.Provider)
			if !t.leases[key] && (l.Deadline != 0 || !t.leases[sp]) {
				t.leases[key], t.leases[sp] = true, true
				t.won[l.Provider]++
				g := newLeases[l.Provider]
				if g == nil {
					g = &group{price: l.Price}
					newLeases[l.Provider] = g
				}
				g.segs = append(g.segs, l.Segment)
				g.dl = max(g.dl, l.Deadline)
			}
			okey := fmt.Sprintf("%d/%s", l.Segment, l.Provider)
			if l.Output != "" && !t.output[okey] {
				t.output[okey] = true
				results[l.Provider] = append(results[l.Provider], l.Segment)
			}
		}
		if s.State != t.state[s.Index] {
			t.state[s.Index] = s.State
			if s.State != "open" || v.Auctions > 1 {
				states[s.State] = append(states[s.State], s.Index)
			}
		}
	}
	for _, p := range sortedKeys(newLeases) {
		g := newLeases[p]
		lines = append(lines, fmt.Sprintf("lease: %s won segment(s) %s at %d each (deadline height %d)", t.name(p), segList(g.segs), g.price, g.dl))
	}
	for _, p := range sortedKeys(results) {
		lines = append(lines, fmt.Sprintf("result: %s submitted segment(s) %s", t.name(p), segList(results[p])))
	}
	if v.Missed > t.missed {
		lines = append(lines, fmt.Sprintf("missed: %d lease(s) passed their deadline without a result; the segments go back to auction", v.Missed-t.missed))
		t.missed = v.Missed
	}
	if v.Wrong > t.wrong {
		lines = append(lines, fmt.Sprintf("wrong: %d lease(s) proven wrong; the provider is slashed and the segments go back to auction", v.Wrong-t.wrong))
		t.wrong = v.Wrong
	}
	for _, st := range []string{"open", "leased", "checking", "disputed", "verified", "paid", "cancelled"} {
		if segs := states[st]; len(segs) > 0 {
			line := fmt.Sprintf("segments %s: %s", segList(segs), st)
			if st == "verified" || st == "paid" {
				line += fmt.Sprintf(" (%d/%d done, %d paid)", v.SegmentsDone, v.Segments, v.SegmentsPaid)
			}
			lines = append(lines, line)
		}
	}
	return lines
}

// roundTracker turns successive bids views into a line per auction round
// opened and one per round closed (bids, reasons for no bids, award).
type roundTracker struct {
	name   func(string) string
	opened map[int]bool
	closed map[int]bool
}

func newRoundTracker(name func(string) string) *roundTracker {
	return &roundTracker{name: name, opened: map[int]bool{}, closed: map[int]bool{}}
}

func (t *roundTracker) update(v agent.BidsView, now time.Time) []string {
	var lines []string
	for _, r := range v.Rounds {
		if !t.opened[r.Round] {
			t.opened[r.Round] = true
			left := time.UnixMilli(r.CloseAt).Sub(now).Round(100 * time.Millisecond)
			lines = append(lines, fmt.Sprintf("auction round %d: segment(s) %s, closes in %s", r.Round, segList(r.Segments), max(left, 0)))
		}
		if !r.Closed || t.closed[r.Round] {
			continue
		}
		t.closed[r.Round] = true
		var bids []string
		for _, b := range r.Bids {
			bids = append(bids, fmt.Sprintf("%s %d (capacity %d)", t.name(b.Provider), b.Price, b.Capacity))
		}
		line := fmt.Sprintf("auction round %d closed: %d bid(s)", r.Round, len(r.Bids))
		if len(bids) > 0 {
			line += ": " + strings.Join(bids, ", ")
		}
		for _, nb := range r.NoBids {
			line += fmt.Sprintf("; %s did not bid: %s", t.name(nb.Provider), nb.Reason)
			if nb.Detail != "" {
				line += " (" + nb.Detail + ")"
			}
		}
		if len(r.Awarded) > 0 {
			line += "; awarded segment(s) " + segList(r.Awarded)
		}
		if r.Error != "" {
			line += "; award failed: " + r.Error
		}
		lines = append(lines, line)
	}
	return lines
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// trainRun is one run of the scenario against a started devnet.
type trainRun struct {
	cfg      trainConfig
	nodes    []*devnetNode
	renter   *devnetNode
	rc       *api.Client
	progress func(string, ...any)
	clock    *phaseClock
	names    map[string]string // peer ID -> node name
	killed   []string
	victim   *devnetNode // the cheapest provider, with --kill-provider
	exits    <-chan error
}

func (r *trainRun) name(id string) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	return id
}

// runTrainScenario runs the training scenario on a devnet whose nodes are
// up and whose providers are staked; start is when the devnet started.
func runTrainScenario(ctx context.Context, cfg trainConfig, nodes []*devnetNode, start time.Time, readyTimeout time.Duration,
	progress func(string, ...any)) (*trainSummary, error) {
	r := &trainRun{cfg: cfg, nodes: nodes, progress: progress, clock: newPhaseClock(start), names: map[string]string{}}
	var providers []*devnetNode
	for _, n := range nodes {
		r.names[n.PeerID] = n.Name
		if slices.Contains(n.Roles, string(node.RoleRenter)) && r.renter == nil {
			r.renter = n
		}
		if slices.Contains(n.Roles, string(node.RoleProvider)) {
			providers = append(providers, n)
		}
	}
	if r.renter == nil || len(providers) == 0 {
		return nil, errors.New("devnet: the train scenario needs a renter and providers")
	}
	if cfg.KillProvider {
		r.victim = providers[0] // devnetProviderArgs makes provider-0 the cheapest
	}
	var watched []*devnetNode
	for _, n := range nodes {
		if n != r.victim {
			watched = append(watched, n)
		}
	}
	r.exits = firstExit(watched)
	var err error
	if r.rc, err = api.ClientForDataDir(r.renter.Home); err != nil {
		return nil, err
	}

	if err := r.waitOffers(ctx, providers, readyTimeout); err != nil {
		return nil, err
	}
	r.clock.end("network", time.Now())

	work := filepath.Join(r.renter.Home, "train")
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	data, err := writeTrainData(filepath.Join(work, "data"), cfg.Seed, cfg.Dim, cfg.Segments, cfg.Rows)
	if err != nil {
		return nil, fmt.Errorf("devnet: generate data: %w", err)
	}
	program, err := r.add(ctx, cfg.Program)
	if err != nil {
		return nil, fmt.Errorf("devnet: add program: %w", err)
	}
	inputs := make([]string, len(data.Shards))
	for i, p := range data.Shards {
		if inputs[i], err = r.add(ctx, p); err != nil {
			return nil, fmt.Errorf("devnet: add shard %d: %w", i, err)
		}
	}
	progress("data: %d shards of %d rows x %d features (%s) and the program %s added on %s",
		cfg.Segments, cfg.Rows, cfg.Dim, fmtBytes(data.Bytes), program, r.renter.Name)
	r.clock.end("data", time.Now())

	req := agent.SubmitJobRequest{
		Program:   program,
		Inputs:    inputs,
		Segments:  uint32(cfg.Segments),
		MaxPrice:  devnetMaxPrice,
		Deadline:  uint32(cfg.Deadline.Round(time.Second) / time.Second),
		Verify:    cfg.Verify,
		Executor:  "wasm",
		Salt:      uint64(time.Now().UnixNano()),
		AuctionMs: cfg.Auction.Milliseconds(),
	}
	var sub agent.SubmitJobResponse
	if err := r.rc.Do(ctx, http.MethodPost, "/market/jobs", req, &sub); err != nil {
		return nil, fmt.Errorf("devnet: submit job: %w", err)
	}
	progress("job %s opened at height %d: %d segments, %s, max price %d, deposit %d in escrow",
		sub.Job, sub.Height, cfg.Segments, cfg.Verify, devnetMaxPrice, sub.Deposit)

	view, won, err := r.follow(ctx, sub.Job)
	if err != nil {
		return nil, err
	}

	sum := &trainSummary{
		Job: sub.Job, Segments: view.Segments, SegmentsDone: view.SegmentsDone, Verify: view.Verify,
		Winners: map[string]int{}, Paid: map[string]uint64{}, Fees: view.Fees, Refund: view.Refund,
		Deposit: sub.Deposit, Auctions: view.Auctions, Missed: view.Missed, Wrong: view.Wrong,
		Killed: append([]string{}, r.killed...), HoldoutRows: data.Holdout.Rows(), Chance: chance(data.Holdout),
	}
	if sum.Verify == "" {
		sum.Verify = cfg.Verify
	}
	for id, amt := range view.Paid {
		sum.Paid[r.name(id)] += amt
	}
	for id, amt := range view.Slashed {
		if sum.Slashed == nil {
			sum.Slashed = map[string]uint64{}
		}
		sum.Slashed[r.name(id)] += amt
	}
	for id, n := range won {
		sum.Winners[r.name(id)] += n
	}

	w, err := r.fetchModel(ctx, view, work)
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(work, trainModelFile)
	if err := os.WriteFile(mpath, model.EncodeWeights(w), 0o644); err != nil {
		return nil, err
	}
	if sum.ModelCID, err = r.add(ctx, mpath); err != nil {
		return nil, fmt.Errorf("devnet: add model: %w", err)
	}
	if sum.Accuracy, sum.Loss, err = model.Evaluate(w, data.Holdout); err != nil {
		return nil, fmt.Errorf("devnet: evaluate model: %w", err)
	}
	progress("model: %s, the mean of %d segments' weights; accuracy %.4f on %d held-out rows (chance %.4f), loss %.4f",
		sum.ModelCID, len(view.SegmentList), sum.Accuracy, sum.HoldoutRows, sum.Chance, sum.Loss)
	r.clock.end("model", time.Now())

	sum.Height, sum.InvariantOK = r.chainCheck(ctx)
	sum.Phases = r.clock.phases
	sum.Seconds = roundSecs(time.Since(start))
	return sum, nil
}

// waitOffers waits until every provider's offer is in the renter's order
// book.
func (r *trainRun) waitOffers(ctx context.Context, providers []*devnetNode, timeout time.Duration) error {
	r.progress("waiting for %d provider offers in %s's order book ...", len(providers), r.renter.Name)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var offers []agent.OfferView
		err := r.rc.Do(ctx, http.MethodGet, "/market/offers", nil, &offers)
		if api.IsStatus(err, http.StatusNotFound) {
			return fmt.Errorf("devnet: %s serves no market API (GET /market/offers: %v); this gpunode has no market agent", r.renter.Name, err)
		}
		var missing []string
		for _, p := range providers {
			if !slices.ContainsFunc(offers, func(o agent.OfferView) bool { return o.Provider == p.PeerID }) {
				missing = append(missing, p.Name)
			}
		}
		if err == nil && len(missing) == 0 {
			var desc []string
			for _, o := range offers {
				for _, pr := range o.Prices {
					if pr.Model == "" {
						desc = append(desc, fmt.Sprintf("%s %d/segment (%s, %d slots)", r.name(o.Provider), pr.Price, pr.Executor, o.FreeSlots))
					}
				}
			}
			sort.Strings(desc)
			r.progress("offers: %s", strings.Join(desc, ", "))
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("devnet: order book of %s: %w", r.renter.Name, err)
			}
			return fmt.Errorf("devnet: no offer from %s in %s's order book within %s", strings.Join(missing, ", "), r.renter.Name, timeout)
		case err := <-r.exits:
			return fmt.Errorf("devnet: a node stopped: %w", err)
		case <-tick.C:
		}
	}
}

// add adds a file on the renter's node and returns its root.
func (r *trainRun) add(ctx context.Context, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var res node.DataAddResult
	if err := r.rc.Do(ctx, http.MethodPost, "/data/add", node.DataAddRequest{Path: abs}, &res); err != nil {
		return "", err
	}
	return res.Root, nil
}

// follow polls the job until it is done, printing its progress, ending the
// auction, run and settle phases, and killing the victim once it wins.
func (r *trainRun) follow(ctx context.Context, job string) (agent.JobView, map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.JobTimeout)
	defer cancel()
	jobs, rounds := newJobTracker(r.name), newRoundTracker(r.name)
	path := "/market/jobs/" + url.PathEscape(job)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	phase := 0 // 0 auction, 1 run, 2 settle
	lastBids := time.Time{}
	var v agent.JobView
	for {
		if err := r.rc.Do(ctx, http.MethodGet, path, nil, &v); err != nil && ctx.Err() == nil {
			r.progress("job %s: %v (retrying)", job, err)
		} else if err == nil {
			now := time.Now()
			if now.Sub(lastBids) >= 300*time.Millisecond || phase == 0 {
				lastBids = now
				var bv agent.BidsView
				if err := r.rc.Do(ctx, http.MethodGet, path+"/bids", nil, &bv); err == nil {
					for _, l := range rounds.update(bv, now) {
						r.progress("%s", l)
					}
				}
			}
			for _, l := range jobs.update(v) {
				r.progress("%s", l)
			}
			r.maybeKill(v)
			if phase == 0 && allLeased(v) {
				r.clock.end("auction", now)
				phase = 1
			}
			if phase == 1 && v.Segments > 0 && v.SegmentsDone >= v.Segments {
				r.clock.end("run", now)
				phase = 2
			}
			switch v.State {
			case "done":
				for phase < 3 {
					r.clock.end([]string{"auction", "run", "settle"}[phase], now)
					phase++
				}
				var paid []string
				for _, id := range sortedKeys(v.Paid) {
					paid = append(paid, fmt.Sprintf("%s %d", r.name(id), v.Paid[id]))
				}
				r.progress("settled: job done, %d/%d segments paid: %s; fees %d, refund %d",
					v.SegmentsPaid, v.Segments, strings.Join(paid, ", "), v.Fees, v.Refund)
				return v, jobs.won, nil
			case "cancelled":
				return v, nil, fmt.Errorf("devnet: job %s was cancelled", job)
			}
		}
		select {
		case <-ctx.Done():
			return v, nil, fmt.Errorf("devnet: job %s not done within %s: state %s, %d/%d segments done (see the nodes' gpunode.log)",
				job, r.cfg.JobTimeout, v.State, v.SegmentsDone, v.Segments)
		case err := <-r.exits:
			return v, nil, fmt.Errorf("devnet: a node stopped: %w", err)
		case <-tick.C:
		}
	}
}

// allLeased reports whether the first auction is over: no segment waits
// for a lease.
func allLeased(v agent.JobView) bool {
	if len(v.SegmentList) == 0 {
		return false
	}
	for _, s := range v.SegmentList {
		if s.State == "open" {
			return false
		}
	}
	return true
}

// maybeKill SIGKILLs the victim as soon as it holds a lease of the job.
func (r *trainRun) maybeKill(v agent.JobView) {
	if r.victim == nil || len(r.killed) > 0 {
		return
	}
	var segs []uint32
	for _, s := range v.SegmentList {
		for _, l := range s.Leases {
			if l.Provider == r.victim.PeerID {
				segs = append(segs, l.Segment)
			}
		}
	}
	if len(segs) == 0 {
		return
	}
	if r.victim.cmd != nil && r.victim.cmd.Process != nil {
		_ = r.victim.cmd.Process.Signal(syscall.SIGKILL)
	}
	r.killed = append(r.killed, r.victim.Name)
	r.progress("killed %s (SIGKILL) right after it won segment(s) %s; they are re-auctioned after their deadline",
		r.victim.Name, segList(segs))
}

// fetchModel fetches every segment's output to the renter's node and
// averages the weights.
func (r *trainRun) fetchModel(ctx context.Context, v agent.JobView, work string) (model.Weights, error) {
	files := make([][]byte, len(v.SegmentList))
	segs := slices.Clone(v.SegmentList)
	sort.Slice(segs, func(i, j int) bool { return segs[i].Index < segs[j].Index })
	var total int64
	for i, s := range segs {
		if s.Output == "" {
			return model.Weights{}, fmt.Errorf("devnet: segment %d is done without an output", s.Index)
		}
		var peers []string
		for _, l := range s.Leases {
			if l.Output == s.Output && !slices.Contains(r.killed, r.name(l.Provider)) && !slices.Contains(peers, l.Provider) {
				peers = append(peers, l.Provider)
			}
		}
		out := filepath.Join(work, "out", fmt.Sprintf("segment-%03d", s.Index))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return model.Weights{}, err
		}
		st, err := r.get(ctx, s.Output, out, peers)
		if err != nil {
			return model.Weights{}, fmt.Errorf("devnet: fetch segment %d output %s: %w", s.Index, s.Output, err)
		}
		total += st.Bytes
		if files[i], err = findWeights(out); err != nil {
			return model.Weights{}, fmt.Errorf("devnet: segment %d output: %w", s.Index, err)
		}
	}
	r.progress("outputs: fetched %d segments' weights (%s) to %s", len(files), fmtBytes(total), filepath.Join(work, "out"))
	w, err := aggregate(files)
	if err != nil {
		return model.Weights{}, fmt.Errorf("devnet: aggregate: %w", err)
	}
	return w, nil
}

// get fetches root to out on the renter's node and waits for it.
func (r *trainRun) get(ctx context.Context, root, out string, peers []string) (node.DataTransfer, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var st node.DataTransfer
	if err := r.rc.Do(ctx, http.MethodPost, "/data/get", node.DataGetRequest{Root: root, Output: out, Peers: peers}, &st); err != nil {
		return st, err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !st.Finished() {
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("transfer %s: %w", st.ID, ctx.Err())
		case <-tick.C:
		}
		if err := r.rc.Do(ctx, http.MethodGet, "/data/transfers/"+url.PathEscape(st.ID), nil, &st); err != nil {
			return st, err
		}
	}
	if st.State == node.TransferFailed {
		return st, fmt.Errorf("transfer %s failed: %s", st.ID, st.Error)
	}
	return st, nil
}

// chainCheck returns the renter's chain height and whether every live
// node reports the supply invariant "ok".
func (r *trainRun) chainCheck(ctx context.Context) (uint64, bool) {
	var height uint64
	ok := true
	for _, n := range r.nodes {
		if slices.Contains(r.killed, n.Name) {
			continue
		}
		c, err := api.ClientForDataDir(n.Home)
		if err != nil {
			ok = false
			continue
		}
		var st consensus.ChainStatus
		if err := c.Do(ctx, http.MethodGet, "/chain/status", nil, &st); err != nil {
			r.progress("chain: %s: %v", n.Name, err)
			ok = false
			continue
		}
		if st.Invariant != "ok" {
			r.progress("chain: %s reports the invariant broken: %s", n.Name, st.Invariant)
			ok = false
		}
		if n == r.renter {
			height = st.Height
		}
	}
	return height, ok
}

// check is the scenario's verdict on a summary.
func (s *trainSummary) check() error {
	var errs []error
	if s.SegmentsDone != s.Segments {
		errs = append(errs, fmt.Errorf("%d of %d segments done", s.SegmentsDone, s.Segments))
	}
	if !s.InvariantOK {
		errs = append(errs, errors.New("the chain's supply invariant does not hold"))
	}
	if s.Accuracy < s.Chance+0.1 {
		errs = append(errs, fmt.Errorf("model accuracy %.4f is not clearly better than chance %.4f", s.Accuracy, s.Chance))
	}
	if len(errs) > 0 {
		return fmt.Errorf("devnet: train scenario: %w", errors.Join(errs...))
	}
	return nil
}

// print writes the summary for people.
func (s *trainSummary) print(w io.Writer) {
	fmt.Fprintf(w, "job %s: %d/%d segments done (%s), %d auction round(s)", s.Job, s.SegmentsDone, s.Segments, s.Verify, s.Auctions)
	if s.Missed > 0 || s.Wrong > 0 {
		fmt.Fprintf(w, ", %d missed and %d wrong lease(s)", s.Missed, s.Wrong)
	}
	fmt.Fprintln(w)
	var win, paid []string
	for _, n := range sortedKeys(s.Winners) {
		win = append(win, fmt.Sprintf("%s %d", n, s.Winners[n]))
	}
	for _, n := range sortedKeys(s.Paid) {
		paid = append(paid, fmt.Sprintf("%s %d", n, s.Paid[n]))
	}
	fmt.Fprintf(w, "  leases won: %s\n", strings.Join(win, ", "))
	fmt.Fprintf(w, "  paid:       %s; fees %d, refund %d of the %d deposit\n", strings.Join(paid, ", "), s.Fees, s.Refund, s.Deposit)
	if len(s.Slashed) > 0 {
		var sl []string
		for _, n := range sortedKeys(s.Slashed) {
			sl = append(sl, fmt.Sprintf("%s %d", n, s.Slashed[n]))
		}
		fmt.Fprintf(w, "  slashed:    %s\n", strings.Join(sl, ", "))
	}
	if len(s.Killed) > 0 {
		fmt.Fprintf(w, "  killed:     %s\n", strings.Join(s.Killed, ", "))
	}
	fmt.Fprintf(w, "  model:      %s\n", s.ModelCID)
	fmt.Fprintf(w, "  accuracy:   %.4f on %d held-out rows (chance %.4f), loss %.4f\n", s.Accuracy, s.HoldoutRows, s.Chance, s.Loss)
	inv := "ok"
	if !s.InvariantOK {
		inv = "BROKEN"
	}
	fmt.Fprintf(w, "  chain:      height %d, supply invariant %s\n", s.Height, inv)
	var ph []string
	for _, p := range trainPhases {
		ph = append(ph, fmt.Sprintf("%s %.1fs", p, s.Phases[p]))
	}
	fmt.Fprintf(w, "  time:       %.1fs (%s)\n", s.Seconds, strings.Join(ph, ", "))
}
