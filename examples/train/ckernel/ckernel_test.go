//go:build cgo

package ckernel_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
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
// kernel's weights byte for byte, from a GNS2 shard (used in place) and a
// GNS1 shard (decoded), with and without a tail of features beyond the
// 64-byte groups, and refuses malformed shards cleanly.
func TestModuleMatchesNative(t *testing.T) {
	e, err := wasm.New(wasm.WithInProcess(), wasm.WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	cfg := model.Config{Epochs: 2, LR: 0.3, BatchSize: 16}
	run := func(w model.Weights, shardBytes []byte) (*exec.Result, []byte, error) {
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
	for _, c := range []struct{ dim, rows int }{{12, 500}, {64, 300}, {5, 77}, {8, 0}} {
		s := shard(t, 7, c.dim, c.rows)
		w := model.Zero(c.dim)
		w.W[c.dim] = 0.125
		want, err := ckernel.Train(w, s, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []func(model.Shard) []byte{model.EncodeShard, model.EncodeShardV1} {
			b := enc(s)
			_, got, err := run(w, b)
			if err != nil {
				t.Fatalf("dim %d rows %d %s: %v", c.dim, c.rows, b[:4], err)
			}
			if !bytes.Equal(got, model.EncodeWeights(want)) {
				t.Fatalf("dim %d rows %d %s: wasm C kernel and native C kernel weights differ (stale train-c.wasm? run make train-c-wasm)", c.dim, c.rows, b[:4])
			}
		}
	}

	s := shard(t, 7, 12, 50)
	w := model.Zero(12)
	setF64 := func(b []byte, off int, v float64) []byte {
		binary.LittleEndian.PutUint64(b[off:], math.Float64bits(v))
		return b
	}
	v2 := model.EncodeShard(s)
	labels := 16 + 8*12*50
	for _, c := range []struct {
		name, msg string
		b         []byte
	}{
		{"GNS2 label 7", "label", setF64(bytes.Clone(v2), len(v2)-8, 7)},
		{"GNS2 label -0", "label", setF64(bytes.Clone(v2), labels, math.Copysign(0, -1))},
		{"GNS2 NaN feature", "not finite", setF64(bytes.Clone(v2), 16+8*100, math.NaN())},
		{"GNS2 inf feature", "not finite", setF64(bytes.Clone(v2), labels-8, math.Inf(1))},
		{"GNS2 truncated", "shape", v2[:len(v2)-1]},
		{"GNS2 header", "header", setF64(bytes.Clone(v2), 8, 1)},
		{"GNS1 label 7", "label", func() []byte { b := model.EncodeShardV1(s); b[len(b)-1] = 7; return b }()},
		{"GNS1 NaN feature", "not finite", setF64(model.EncodeShardV1(s), 12, math.NaN())},
		{"other magic", "not a shard", append([]byte("GNS9"), v2[4:]...)},
	} {
		res, _, err := run(w, c.b)
		if !errors.Is(err, exec.ErrExit) || res == nil || !strings.Contains(string(res.Stderr), c.msg) {
			var stderr []byte
			if res != nil {
				stderr = res.Stderr
			}
			t.Errorf("%s: err %v, stderr %q; want exit with a message about %q", c.name, err, stderr, c.msg)
		}
	}
}
