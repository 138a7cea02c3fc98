// Command train is the segmented-training workload, built with
// GOOS=wasip1 GOARCH=wasm and run by the wasm executor (it also runs
// natively). Relative input paths are read from $GPUNODE_INPUT_DIR and
// relative output paths written to $GPUNODE_OUTPUT_DIR.
//
// Without arguments it is one segment of a market training job, as a
// provider runs it: it reads the segment's shard at "input" (a shard file,
// or a directory holding exactly one), trains from zero weights with
// model.DefaultConfig and writes "weights.bin". Every segment starts from
// zero, so segments are independent and the renter's aggregate is their
// element-wise mean in segment order (one round of federated averaging);
// the result depends only on the shard, so replicas agree byte for byte.
// GPUNODE_JOB, GPUNODE_SEGMENT and GPUNODE_SEGMENTS only label the
// report line on stdout.
//
//	train                                                       (a market segment)
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
		line, err := segment()
		if err != nil {
			fatal("train: segment: %v (usage: train [gen|init|step|avg|eval] [flags])", err)
		}
		fmt.Print(line)
		return
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

// Names of a market segment's input and output under $GPUNODE_INPUT_DIR
// and $GPUNODE_OUTPUT_DIR.
const (
	segmentInput  = "input"
	segmentOutput = "weights.bin"
)

// segment runs one segment of a market job and returns its report line.
func segment() (string, error) {
	p, err := segmentShardPath(input(segmentInput))
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s, err := model.ViewShard(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	w, err := model.Train(model.Zero(s.Dim), s, model.DefaultConfig)
	if err != nil {
		return "", err
	}
	if err := write(segmentOutput, model.EncodeWeights(w)); err != nil {
		return "", err
	}
	_, loss, err := model.Evaluate(w, s)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("job %s segment %s/%s: %d rows, dim %d, train loss %.6f\n",
		os.Getenv("GPUNODE_JOB"), os.Getenv("GPUNODE_SEGMENT"), os.Getenv("GPUNODE_SEGMENTS"), s.Rows(), s.Dim, loss), nil
}

// segmentShardPath is p itself, or the only file in directory p (a data
// root of a directory holding the shard).
func segmentShardPath(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return p, nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return "", err
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			files = append(files, e.Name())
		}
	}
	if len(files) != 1 || len(ents) != 1 {
		return "", fmt.Errorf("%s: want a shard file or a directory holding one, found %d entries", p, len(ents))
	}
	return filepath.Join(p, files[0]), nil
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
	s, err := model.ViewShard(sb)
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
