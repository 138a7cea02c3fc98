package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/examples/train/model"
)

// trainSummaryJSON is the summary `gpunode devnet --scenario train --json`
// prints.
type trainSummaryJSON struct {
	Job          string             `json:"job"`
	Segments     int                `json:"segments"`
	SegmentsDone int                `json:"segments_done"`
	ModelCID     string             `json:"model_cid"`
	Accuracy     float64            `json:"accuracy"`
	Chance       float64            `json:"chance"`
	Loss         float64            `json:"loss"`
	Paid         map[string]uint64  `json:"paid"`
	Fees         uint64             `json:"fees"`
	Refund       uint64             `json:"refund"`
	Deposit      uint64             `json:"deposit"`
	Height       uint64             `json:"height"`
	InvariantOK  bool               `json:"invariant_ok"`
	Seconds      float64            `json:"seconds"`
	Winners      map[string]int     `json:"winners"`
	Auctions     int                `json:"auctions"`
	Killed       []string           `json:"killed"`
	Missed       int                `json:"missed"`
	Slashed      map[string]uint64  `json:"slashed"`
	Phases       map[string]float64 `json:"phases"`
}

// trainSizes are the data set sizes of the e2e runs: the scenario's
// defaults with GPUNODE_E2E=1, small shards otherwise (the wasm module's
// compilation, not the data, dominates a run).
func trainSizes() (rows, dim int) {
	if os.Getenv("GPUNODE_E2E") == "1" {
		return 4000, 16
	}
	return 300, 8
}

// buildTrainWasm builds examples/train for wasip1 into dir.
func buildTrainWasm(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "train.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "github.com/gpunode/gpunode/examples/train")
	cmd.Env = append(cleanEnv(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building train.wasm: %v\n%s", err, b)
	}
	return out
}

// runTrainScenario runs the scenario on a fresh home and returns its
// summary and the renter's home.
func runTrainScenario(t *testing.T, wasm string, rows, dim int, extra ...string) (trainSummaryJSON, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "devnet")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	args := append([]string{"devnet", "--home", dir, "--network", "e2etrain", "--validators", "2", "--providers", "3",
		"--renters", "1", "--scenario", "train", "--json", "--train-wasm", wasm,
		"--rows", strconv.Itoa(rows), "--dim", strconv.Itoa(dim), "--ready-timeout", "60s"}, extra...)
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = cleanEnv()
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpunode %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("gpunode %s:\n%s", strings.Join(args[1:], " "), stderr.String())
	var sum trainSummaryJSON
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout.String())
	}
	return sum, filepath.Join(dir, "renter-0")
}

// checkTrainSummary checks what holds for every run: all segments done,
// the model is the mean of the natively trained shards (so every segment's
// output was right) and beats chance, the deposit is accounted for, the
// invariant holds and every phase was measured.
func checkTrainSummary(t *testing.T, sum trainSummaryJSON, renter string, rows, dim int) {
	t.Helper()
	if sum.Job == "" || sum.Segments != 8 || sum.SegmentsDone != 8 || sum.Height == 0 || !sum.InvariantOK {
		t.Errorf("summary = %+v; want 8/8 segments done, a height, the invariant ok", sum)
	}
	task, err := model.NewTask(1, dim)
	if err != nil {
		t.Fatal(err)
	}
	var ws []model.Weights
	for i := range 8 {
		s, _ := task.Shard(i, rows)
		w, _ := model.Train(model.Zero(dim), s, model.DefaultConfig)
		ws = append(ws, w)
	}
	avg, _ := model.Average(ws)
	got, err := os.ReadFile(filepath.Join(renter, "train", "model.bin"))
	if err != nil || !bytes.Equal(got, model.EncodeWeights(avg)) {
		t.Errorf("the renter's model.bin (%v) is not the mean of the natively trained shards", err)
	}
	hold, _ := task.Shard(-1, rows)
	acc, _, _ := model.Evaluate(avg, hold)
	if sum.ModelCID == "" || sum.Accuracy != acc || sum.Accuracy < sum.Chance+0.1 {
		t.Errorf("model %q accuracy %.4f (chance %.4f); want %.4f, clearly above chance", sum.ModelCID, sum.Accuracy, sum.Chance, acc)
	}
	var paid uint64
	for _, v := range sum.Paid {
		paid += v
	}
	var slashed uint64
	for _, v := range sum.Slashed {
		slashed += v
	}
	if paid == 0 || paid+sum.Fees+sum.Refund != sum.Deposit {
		t.Errorf("paid %v + fees %d + refund %d != deposit %d", sum.Paid, sum.Fees, sum.Refund, sum.Deposit)
	}
	for _, p := range []string{"network", "data", "auction", "run", "settle", "model"} {
		if _, ok := sum.Phases[p]; !ok {
			t.Errorf("no phase %q in %v", p, sum.Phases)
		}
	}
	if sum.Seconds <= 0 || sum.Auctions < 1 {
		t.Errorf("seconds %v auctions %d", sum.Seconds, sum.Auctions)
	}
}

// TestDevnetTrain runs `gpunode devnet --scenario train --json`: a renter
// trains a model on a devnet's market (8 segments, replicate:2) and gets
// it back. The cheapest two providers win one replica of every segment
// each and are paid their price minus the fee. It runs again on a fresh
// home (the model CID and the payments are the same), then with
// --kill-provider: the cheapest
// provider is SIGKILLed right after it wins, its segments are re-auctioned
// after their deadline, the job completes and it is paid nothing. Small
// shards in make test; full size with GPUNODE_E2E=1 (make e2e).
func TestDevnetTrain(t *testing.T) {
	dir := t.TempDir()
	wasm := buildTrainWasm(t, dir)
	rows, dim := trainSizes()
	sum, renter := runTrainScenario(t, wasm, rows, dim)
	checkTrainSummary(t, sum, renter, rows, dim)
	if len(sum.Killed) != 0 || sum.Winners["provider-0"] != 8 || sum.Winners["provider-1"] != 8 || sum.Winners["provider-2"] != 0 {
		t.Errorf("winners %v killed %v; want provider-0 and provider-1 with 8 leases each", sum.Winners, sum.Killed)
	}
	if sum.Paid["provider-0"] == 0 || sum.Paid["provider-1"] <= sum.Paid["provider-0"] || sum.Paid["provider-0"] > 8*400 {
		t.Errorf("paid %v; want provider-0 at most 8 x 400 and provider-1 more", sum.Paid)
	}
	t.Run("deterministic", func(t *testing.T) {
		again, renter := runTrainScenario(t, wasm, rows, dim)
		checkTrainSummary(t, again, renter, rows, dim)
		if again.ModelCID != sum.ModelCID || again.Fees != sum.Fees || again.Refund != sum.Refund || len(again.Paid) != len(sum.Paid) {
			t.Fatalf("second run: model %s paid %v fees %d refund %d; first: %s %v %d %d",
				again.ModelCID, again.Paid, again.Fees, again.Refund, sum.ModelCID, sum.Paid, sum.Fees, sum.Refund)
		}
		for p, v := range sum.Paid {
			if again.Paid[p] != v {
				t.Errorf("second run paid %s %d; first %d", p, again.Paid[p], v)
			}
		}
	})

	t.Run("kill-provider", func(t *testing.T) {
		// A short deadline in make test: the killed provider's leases
		// lapse sooner, and small shards run in well under a second.
		deadline := "15s"
		if os.Getenv("GPUNODE_E2E") == "1" {
			deadline = "30s"
		}
		killed, renter := runTrainScenario(t, wasm, rows, dim, "--kill-provider", "--deadline", deadline)
		checkTrainSummary(t, killed, renter, rows, dim)
		if killed.ModelCID != sum.ModelCID {
			t.Errorf("model %s with a provider killed; %s without", killed.ModelCID, sum.ModelCID)
		}
		if len(killed.Killed) != 1 || killed.Killed[0] != "provider-0" || killed.Paid["provider-0"] != 0 || killed.Missed < 1 || killed.Auctions < 2 {
			t.Errorf("killed %v paid %v missed %d auctions %d; want provider-0 killed and unpaid, its leases missed and re-auctioned",
				killed.Killed, killed.Paid, killed.Missed, killed.Auctions)
		}
		if killed.Winners["provider-2"] == 0 || killed.Paid["provider-2"] == 0 {
			t.Errorf("winners %v paid %v; want provider-2 to take over the killed provider's segments", killed.Winners, killed.Paid)
		}
	})
}
