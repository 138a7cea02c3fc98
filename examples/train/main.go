// Command train is the segmented-training workload, built with
// GOOS=wasip1 GOARCH=wasm and run by the wasm executor (it also runs
// natively). Relative input paths are read from $GPUNODE_INPUT_DIR and
// relative output paths written to $GPUNODE_OUTPUT_DIR.
//
//	train gen   -seed S -dim D -shard I -rows N -out shard.bin   (-shard -1: held-out split)
//	train init  -dim D -out weights.bin
//	train step  -weights weights.bin -shard shard.bin [-epochs E -lr R -batch B] -out weights.bin
//	train avg   -out weights.bin w1.bin w2.bin ...
//	train eval  -weights weights.bin -shard holdout.bin [-out eval.txt]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gpunode/gpunode/examples/train/model"
)

func main() {
	if len(os.Args) < 2 {
		fatal("usage: train gen|init|step|avg|eval [flags]")
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fatal("train %s: %v", os.Args[1], err)
	}
}

func run(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	seed := fs.Uint64("seed", 1, "task seed")
	dim := fs.Int("dim", 16, "feature dimension")
	shardIdx := fs.Int("shard", 0, "shard index (-1: held-out split)")
	rows := fs.Int("rows", 1000, "rows per shard")
	out := fs.String("out", "", "output file")
	weights := fs.String("weights", "", "weights file")
	shardFile := fs.String("shard-file", "", "shard file (step, eval)")
	epochs := fs.Int("epochs", model.DefaultConfig.Epochs, "epochs")
	lr := fs.Float64("lr", model.DefaultConfig.LR, "learning rate")
	batch := fs.Int("batch", model.DefaultConfig.BatchSize, "batch size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch cmd {
	case "gen":
		task, err := model.NewTask(*seed, *dim)
		if err != nil {
			return err
		}
		s, err := task.Shard(*shardIdx, *rows)
		if err != nil {
			return err
		}
		return write(*out, model.EncodeShard(s))
	case "init":
		if *dim <= 0 || *dim > model.MaxDim {
			return fmt.Errorf("bad dim %d", *dim)
		}
		return write(*out, model.EncodeWeights(model.Zero(*dim)))
	case "step":
		w, s, err := load(*weights, *shardFile)
		if err != nil {
			return err
		}
		w2, err := model.Train(w, s, model.Config{Epochs: *epochs, LR: *lr, BatchSize: *batch})
		if err != nil {
			return err
		}
		return write(*out, model.EncodeWeights(w2))
	case "avg":
		var ws []model.Weights
		for _, p := range fs.Args() {
			b, err := os.ReadFile(input(p))
			if err != nil {
				return err
			}
			w, err := model.DecodeWeights(b)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			ws = append(ws, w)
		}
		avg, err := model.Average(ws)
		if err != nil {
			return err
		}
		return write(*out, model.EncodeWeights(avg))
	case "eval":
		w, s, err := load(*weights, *shardFile)
		if err != nil {
			return err
		}
		acc, loss, err := model.Evaluate(w, s)
		if err != nil {
			return err
		}
		line := evalLine(acc, loss, s.Rows())
		fmt.Print(line)
		if *out != "" {
			return write(*out, []byte(line))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func evalLine(acc, loss float64, rows int) string {
	return fmt.Sprintf("accuracy %.6f loss %.6f rows %d\n", acc, loss, rows)
}

func load(wp, sp string) (model.Weights, model.Shard, error) {
	wb, err := os.ReadFile(input(wp))
	if err != nil {
		return model.Weights{}, model.Shard{}, err
	}
	w, err := model.DecodeWeights(wb)
	if err != nil {
		return model.Weights{}, model.Shard{}, fmt.Errorf("%s: %w", wp, err)
	}
	sb, err := os.ReadFile(input(sp))
	if err != nil {
		return model.Weights{}, model.Shard{}, err
	}
	s, err := model.DecodeShard(sb)
	if err != nil {
		return model.Weights{}, model.Shard{}, fmt.Errorf("%s: %w", sp, err)
	}
	return w, s, nil
}

func input(p string) string {
	if d := os.Getenv("GPUNODE_INPUT_DIR"); d != "" && !filepath.IsAbs(p) {
		return filepath.Join(d, p)
	}
	return p
}

func write(p string, b []byte) error {
	if p == "" {
		return fmt.Errorf("no -out given")
	}
	if d := os.Getenv("GPUNODE_OUTPUT_DIR"); d != "" && !filepath.IsAbs(p) {
		p = filepath.Join(d, p)
	}
	return os.WriteFile(p, b, 0o644)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
