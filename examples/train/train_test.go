package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
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
	defer e.Close(context.Background())
	runWasm := func(inputs map[string][]byte, args ...string) (map[string][]byte, string) {
		t.Helper()
		out := t.TempDir()
		in := map[string]exec.Source{}
		for k, v := range inputs {
			in[k] = exec.Bytes(v)
		}
		res, err := e.Run(context.Background(), exec.Spec{Program: exec.Bytes(mod), Args: args, Inputs: in, OutputDir: out, Limits: exec.Limits{WallTime: 2 * time.Minute}})
		if err != nil {
			t.Fatalf("wasm %v: %v\n%s", args, err, res.Stderr)
		}
		files := map[string][]byte{}
		for _, f := range res.Outputs {
			files[f.Name], _ = os.ReadFile(filepath.Join(out, f.Name))
		}
		return files, string(res.Stdout)
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
