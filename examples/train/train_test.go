package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/examples/train/model"
)

func TestMain(m *testing.M) {
	wasm.RunWorkerIfRequested()
	code := m.Run()
	exectest.Cleanup()
	os.Exit(code)
}

// The wasm build of a training segment, its aggregation and evaluation give
// byte-identical results to the native model package: native and wasm
// providers agree.
func TestWasmMatchesNative(t *testing.T) {
	wasmRun := wasmRunner(t)
	runWasm := func(inputs map[string][]byte, args ...string) (map[string][]byte, string) {
		t.Helper()
		return wasmRun(nil, inputs, args...)
	}

	task, _ := model.NewTask(11, 12)
	var natives []model.Weights
	segs := map[string][]byte{}
	for i := range 2 {
		s, _ := task.Shard(i, 400)
		gen, _ := runWasm(nil, "gen", "-seed", "11", "-dim", "12", "-shard", string(rune('0'+i)), "-rows", "400", "-out", "s.bin")
		if !bytes.Equal(gen["s.bin"], model.EncodeShard(s)) {
			t.Fatalf("shard %d: wasm and native data differ", i)
		}
		w, _ := model.Train(model.Zero(12), s, model.DefaultConfig)
		natives = append(natives, w)
		got, _ := runWasm(map[string][]byte{"w.bin": model.EncodeWeights(model.Zero(12)), "s.bin": gen["s.bin"]},
			"step", "-weights", "w.bin", "-shard-file", "s.bin", "-out", "w.bin")
		if !bytes.Equal(got["w.bin"], model.EncodeWeights(w)) {
			t.Fatalf("segment %d: wasm and native weights differ", i)
		}
		segs[string(rune('a'+i))+".bin"] = got["w.bin"]
	}
	avg, _ := model.Average(natives)
	got, _ := runWasm(segs, "avg", "-out", "avg.bin", "a.bin", "b.bin")
	if !bytes.Equal(got["avg.bin"], model.EncodeWeights(avg)) {
		t.Fatal("average: wasm and native differ")
	}
	hold, _ := task.Shard(-1, 500)
	_, stdout := runWasm(map[string][]byte{"w.bin": got["avg.bin"], "h.bin": model.EncodeShard(hold)}, "eval", "-weights", "w.bin", "-shard-file", "h.bin")
	acc, loss, _ := model.Evaluate(avg, hold)
	if want := evalLine(acc, loss, hold.Rows()); stdout != want {
		t.Fatalf("wasm eval %q; native %q", stdout, want)
	}
	if acc < 0.8 {
		t.Fatalf("accuracy after one round %.3f; want >= 0.8", acc)
	}
}

// wasmRunner builds the train program for wasip1 and returns a function
// that runs it under the wasm executor with env, inputs and args, and
// returns its output files and stdout.
func wasmRunner(t *testing.T) func(env map[string]string, inputs map[string][]byte, args ...string) (map[string][]byte, string) {
	t.Helper()
	mod, err := os.ReadFile(exectest.Build(t, "github.com/gpunode/gpunode/examples/train", "wasip1", "wasm"))
	if err != nil {
		t.Fatal(err)
	}
	// The stand-alone worker keeps the module's compilation out of the race
	// detector when tests run with -race.
	worker := exectest.Build(t, "github.com/gpunode/gpunode/compute/exec/wasm/wasmworker", runtime.GOOS, runtime.GOARCH)
	e, err := wasm.New(wasm.WithWorkDir(t.TempDir()), wasm.WithWorkerCommand(worker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return func(env map[string]string, inputs map[string][]byte, args ...string) (map[string][]byte, string) {
		t.Helper()
		out := t.TempDir()
		in := map[string]exec.Source{}
		for k, v := range inputs {
			in[k] = exec.Bytes(v)
		}
		res, err := e.Run(context.Background(), exec.Spec{Program: exec.Bytes(mod), Args: args, Env: env, Inputs: in,
			OutputDir: out, Seed: 7, Limits: exec.Limits{WallTime: 2 * time.Minute}})
		if err != nil {
			var stderr []byte
			if res != nil {
				stderr = res.Stderr
			}
			t.Fatalf("wasm %v: %v\n%s", args, err, stderr)
		}
		files := map[string][]byte{}
		for _, f := range res.Outputs {
			files[f.Name], _ = os.ReadFile(filepath.Join(out, f.Name))
		}
		return files, string(res.Stdout)
	}
}

// A market segment (no arguments, the shard at "input") trains from zero
// weights and writes weights.bin, natively and under the wasm executor,
// with byte-identical results, whether "input" is the shard file or a
// directory holding it, and whether the shard is GNS2 or the older GNS1.
func TestSegment(t *testing.T) {
	task, _ := model.NewTask(5, 8)
	s, _ := task.Shard(3, 300)
	shard := model.EncodeShard(s)
	w, err := model.Train(model.Zero(8), s, model.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := model.EncodeWeights(w)
	env := map[string]string{"GPUNODE_JOB": "job1", "GPUNODE_SEGMENT": "3", "GPUNODE_SEGMENTS": "8"}

	for _, layout := range []string{"file", "dir", "GNS1 file"} {
		shard := shard
		if layout == "GNS1 file" {
			shard = model.EncodeShardV1(s)
		}
		in, out := t.TempDir(), t.TempDir()
		p := filepath.Join(in, segmentInput)
		if layout == "dir" {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(p, "shard-003.bin")
		}
		if err := os.WriteFile(p, shard, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv(exec.EnvInputDir, in)
		t.Setenv(exec.EnvOutputDir, out)
		for k, v := range env {
			t.Setenv(k, v)
		}
		line, err := segment()
		if err != nil {
			t.Fatalf("native segment (%s): %v", layout, err)
		}
		if !strings.HasPrefix(line, "job job1 segment 3/8: 300 rows, dim 8,") {
			t.Errorf("native segment (%s) reported %q", layout, line)
		}
		got, err := os.ReadFile(filepath.Join(out, segmentOutput))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("native segment (%s) wrote %d bytes (%v); want the weights of model.Train from zero", layout, len(got), err)
		}
	}

	runWasm := wasmRunner(t)
	for _, name := range []string{segmentInput, segmentInput + "/shard-003.bin"} {
		files, stdout := runWasm(env, map[string][]byte{name: shard})
		if !bytes.Equal(files[segmentOutput], want) {
			t.Fatalf("wasm segment with input %q: weights differ from native (outputs %d files)", name, len(files))
		}
		if !strings.HasPrefix(stdout, "job job1 segment 3/8: 300 rows") {
			t.Errorf("wasm segment reported %q", stdout)
		}
	}
}

// A segment refuses what is not one shard: no input, a directory of two
// files, a file that is not a shard.
func TestSegmentBadInput(t *testing.T) {
	cases := map[string]func(in string){
		"no input": func(string) {},
		"two files": func(in string) {
			_ = os.Mkdir(filepath.Join(in, segmentInput), 0o755)
			_ = os.WriteFile(filepath.Join(in, segmentInput, "a"), nil, 0o644)
			_ = os.WriteFile(filepath.Join(in, segmentInput, "b"), nil, 0o644)
		},
		"not a shard": func(in string) { _ = os.WriteFile(filepath.Join(in, segmentInput), []byte("GNW1...."), 0o644) },
	}
	for name, setup := range cases {
		in, out := t.TempDir(), t.TempDir()
		setup(in)
		t.Setenv(exec.EnvInputDir, in)
		t.Setenv(exec.EnvOutputDir, out)
		if _, err := segment(); err == nil {
			t.Errorf("%s: segment succeeded", name)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("%s: segment wrote %d files", name, len(ents))
		}
	}
}
