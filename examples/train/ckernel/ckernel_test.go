//go:build cgo

package ckernel_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/examples/train/ckernel"
	"github.com/gpunode/gpunode/examples/train/model"
)

func shard(t *testing.T, seed uint64, dim, rows int) model.Shard {
	t.Helper()
	task, err := model.NewTask(seed, dim)
	if err != nil {
		t.Fatal(err)
	}
	s, err := task.Shard(0, rows)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTrainMatchesGo: the C kernel gives model.Train's weights bit for bit.
func TestTrainMatchesGo(t *testing.T) {
	for _, c := range []struct {
		dim, rows int
		cfg       model.Config
	}{
		{3, 10, model.Config{Epochs: 1, LR: 0.5, BatchSize: 4}},
		{16, 333, model.Config{Epochs: 3, LR: 0.1, BatchSize: 32}},
		{64, 1000, model.Config{Epochs: 2, LR: 2, BatchSize: 7}},
		{8, 0, model.Config{Epochs: 2, LR: 0.5, BatchSize: 32}},
		{5, 50, model.Config{Epochs: 0, LR: 0.5, BatchSize: 1}},
	} {
		s := shard(t, uint64(c.dim), c.dim, c.rows)
		w := model.Zero(c.dim)
		w.W[0] = 0.25
		want, err := model.Train(w, s, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := model.EncodeWeights(w)
		got, err := ckernel.Train(w, s, c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(model.EncodeWeights(got), model.EncodeWeights(want)) {
			t.Errorf("dim %d rows %d %+v: C weights %v, Go weights %v", c.dim, c.rows, c.cfg, got.W[:2], want.W[:2])
		}
		if !bytes.Equal(model.EncodeWeights(w), before) {
			t.Errorf("Train changed its input weights")
		}
	}
}

func TestTrainRejects(t *testing.T) {
	s := shard(t, 1, 4, 10)
	for _, c := range []struct {
		w   model.Weights
		cfg model.Config
	}{
		{model.Zero(5), model.DefaultConfig},
		{model.Zero(4), model.Config{Epochs: 1, LR: 0, BatchSize: 1}},
		{model.Zero(4), model.Config{Epochs: -1, LR: 1, BatchSize: 1}},
		{model.Zero(4), model.Config{Epochs: 1, LR: 1, BatchSize: 0}},
	} {
		if _, err := ckernel.Train(c.w, s, c.cfg); !errors.Is(err, model.ErrShape) {
			t.Errorf("Train(dim %d, %+v) = %v, want ErrShape", c.w.Dim(), c.cfg, err)
		}
	}
}

// TestModuleMatchesNative: the committed wasm build gives the native C
// kernel's weights byte for byte, and refuses a malformed shard cleanly.
func TestModuleMatchesNative(t *testing.T) {
	e, err := wasm.New(wasm.WithInProcess(), wasm.WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	const dim, rows = 12, 500
	s := shard(t, 7, dim, rows)
	w := model.Zero(dim)
	cfg := model.Config{Epochs: 2, LR: 0.3, BatchSize: 16}
	run := func(shardBytes []byte) (*exec.Result, []byte, error) {
		out := t.TempDir()
		res, err := e.Run(context.Background(), exec.Spec{
			Program: exec.Bytes(ckernel.Module),
			Args: []string{wasm.InputDir + "/w.bin", wasm.InputDir + "/s.bin", wasm.OutputDir + "/w.bin",
				strconv.Itoa(cfg.Epochs), strconv.FormatFloat(cfg.LR, 'g', -1, 64), strconv.Itoa(cfg.BatchSize)},
			Inputs:    map[string]exec.Source{"w.bin": exec.Bytes(model.EncodeWeights(w)), "s.bin": exec.Bytes(shardBytes)},
			OutputDir: out,
			Limits:    exec.Limits{WallTime: time.Minute},
		})
		if err != nil {
			return res, nil, err
		}
		b, err := os.ReadFile(filepath.Join(out, "w.bin"))
		return res, b, err
	}
	_, got, err := run(model.EncodeShard(s))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ckernel.Train(w, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, model.EncodeWeights(want)) {
		t.Fatal("wasm C kernel and native C kernel weights differ (stale train-c.wasm? run make train-c-wasm)")
	}

	bad := model.EncodeShard(s)
	bad[len(bad)-1] = 7 // a label that is not 0 or 1
	res, _, err := run(bad)
	if !errors.Is(err, exec.ErrExit) || res == nil || !strings.Contains(string(res.Stderr), "label") {
		t.Errorf("malformed shard: err %v, want exit with a message about the label", err)
	}
}
