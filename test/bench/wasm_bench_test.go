//go:build cgo

package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	cexec "github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/examples/train/ckernel"
	"github.com/gpunode/gpunode/examples/train/model"
)

// Training segment used by BenchmarkWasmTrain: large enough that the
// arithmetic, not module start-up, dominates (a 10 MB shard, 30 passes).
const (
	trainDim    = 64
	trainRows   = 20000
	trainEpochs = 30
)

// BenchmarkWasmTrain runs one training segment natively and under the wasm
// executor, from the same source each time, checks that every run gives
// the same weights bytes, and reports:
//
//	wasm/native        the C kernel (examples/train/ckernel): train-c.wasm
//	                   built by clang over native cgo, wall time (target <= 1.5)
//	cpu-wasm/native    the same in CPU time: this process's plus the wasm
//	                   worker's (steadier than wall time on a shared machine)
//	native-ms, wasm-ms its per-segment wall times (wasm includes inputs,
//	                   start-up and outputs, as a provider's segment does)
//	startup-ms         the same wasm run with 0 epochs: everything but the loop
//	go-wasm/native     the Go example (examples/train) as GOOS=wasip1 over
//	                   native Go; go-native-ms, go-wasm-ms its times
//	compile-ms         compiling train-c.wasm with an empty disk cache
//	cached-compile-ms  compiling it again in a fresh executor from the cache
//	go-compile-ms, go-cached-compile-ms the same for the Go module
//
// Each iteration runs native, wasm, wasm, native (ABBA) for the C kernel
// and for Go, so a change of machine load during an iteration weighs on
// both sides alike. All four kinds of run (C and Go, native and wasm) must
// give identical bytes: the C kernel is the Go algorithm operation for
// operation. The shard is GNS2 (model.EncodeShard), which every run uses
// in place (model.ViewShard, and its C twin in the wasm C kernel) after
// checking that features are finite and labels 0 or 1.
func BenchmarkWasmTrain(b *testing.B) {
	goModPath := exectest.Build(b, "github.com/gpunode/gpunode/examples/train", "wasip1", "wasm")
	defer exectest.Cleanup()
	goMod, err := os.ReadFile(goModPath)
	if err != nil {
		b.Fatal(err)
	}
	cMod := buildCKernel(b)

	task, err := model.NewTask(1, trainDim)
	if err != nil {
		b.Fatal(err)
	}
	shard, _ := task.Shard(0, trainRows)
	shardBytes := model.EncodeShard(shard)
	weightsBytes := model.EncodeWeights(model.Zero(trainDim))
	cfg := model.Config{Epochs: trainEpochs, LR: model.DefaultConfig.LR, BatchSize: model.DefaultConfig.BatchSize}

	// Cold and cached compilation, each in a fresh executor (fresh runtime).
	compile := func(cacheDir string, module []byte) time.Duration {
		e, err := wasm.New(wasm.WithCacheDir(cacheDir), wasm.WithWorkDir(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close(context.Background())
		d, err := e.Compile(context.Background(), module)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	cacheDir := b.TempDir()
	cold, cached := compile(cacheDir, cMod), compile(cacheDir, cMod)
	goCold, goCached := compile(cacheDir, goMod), compile(cacheDir, goMod)

	e, err := wasm.New(wasm.WithCacheDir(cacheDir), wasm.WithWorkDir(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	if e.InProcess() {
		b.Fatal("the executor runs modules in-process: TestMain must call wasm.RunWorkerIfRequested")
	}
	runWasm := func(module []byte, args ...string) []byte {
		out := b.TempDir()
		res, err := e.Run(context.Background(), cexec.Spec{
			Program:   cexec.Bytes(module),
			Args:      args,
			Inputs:    map[string]cexec.Source{"w.bin": cexec.Bytes(weightsBytes), "s.bin": cexec.Bytes(shardBytes)},
			OutputDir: out,
			Limits:    cexec.Limits{WallTime: 10 * time.Minute},
		})
		if err != nil {
			b.Fatalf("wasm run: %v\n%s", err, res.Stderr)
		}
		got, err := os.ReadFile(filepath.Join(out, "w.bin"))
		if err != nil {
			b.Fatal(err)
		}
		return got
	}
	runCWasm := func(epochs int) []byte {
		return runWasm(cMod, wasm.InputDir+"/w.bin", wasm.InputDir+"/s.bin", wasm.OutputDir+"/w.bin",
			strconv.Itoa(epochs), strconv.FormatFloat(cfg.LR, 'g', -1, 64), strconv.Itoa(cfg.BatchSize))
	}
	runGoWasm := func() []byte {
		return runWasm(goMod, "step", "-weights", "w.bin", "-shard-file", "s.bin", "-out", "w.bin",
			"-epochs", strconv.Itoa(trainEpochs))
	}
	// Native runs read the shard in place (model.ViewShard) and decode and
	// encode the weights, as the wasm programs do.
	runNative := func(train func(model.Weights, model.Shard, model.Config) (model.Weights, error)) []byte {
		w, err := model.DecodeWeights(weightsBytes)
		if err != nil {
			b.Fatal(err)
		}
		s, err := model.ViewShard(shardBytes)
		if err != nil {
			b.Fatal(err)
		}
		w2, err := train(w, s, cfg)
		if err != nil {
			b.Fatal(err)
		}
		return model.EncodeWeights(w2)
	}
	// Instantiate once so the loop measures warm runs, as a provider's
	// segments are.
	runCWasm(trainEpochs)
	runGoWasm()

	// span is the wall and CPU time of some runs; CPU time is this
	// process's plus what the executor's workers report.
	type span struct{ wall, cpu time.Duration }
	timed := func(sp *span, f func() []byte) []byte {
		w0, c0 := time.Now(), cpuTime()+e.WorkerCPUTime()
		out := f()
		sp.wall += time.Since(w0)
		sp.cpu += cpuTime() + e.WorkerCPUTime() - c0
		return out
	}
	var cNat, cWasm, startup, goNat, goWasm span
	cNative := func() []byte { return runNative(ckernel.Train) }
	cWasmRun := func() []byte { return runCWasm(trainEpochs) }
	goNative := func() []byte { return runNative(model.Train) }
	b.ResetTimer()
	for range b.N {
		results := [][]byte{ // C: ABBA, and Go: ABBA inside
			timed(&cNat, cNative),
			timed(&cWasm, cWasmRun),
			timed(&goNat, goNative),
			timed(&goWasm, runGoWasm),
			timed(&goWasm, runGoWasm),
			timed(&goNat, goNative),
			timed(&cWasm, cWasmRun),
			timed(&cNat, cNative),
		}
		for i, r := range results[1:] {
			if !bytes.Equal(r, results[0]) {
				b.Fatalf("run %d (of C native, C wasm, Go native, Go wasm, Go wasm, Go native, C wasm, C native) gives other weights than C native", i+1)
			}
		}
		if got := timed(&startup, func() []byte { return runCWasm(0) }); !bytes.Equal(got, weightsBytes) {
			b.Fatal("0 epochs changed the weights")
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(cWasm.wall)/float64(cNat.wall), "wasm/native")
	b.ReportMetric(float64(cWasm.cpu)/float64(cNat.cpu), "cpu-wasm/native")
	b.ReportMetric(ms(cNat.wall)/2/n, "native-ms")
	b.ReportMetric(ms(cWasm.wall)/2/n, "wasm-ms")
	b.ReportMetric(ms(startup.wall)/n, "startup-ms")
	b.ReportMetric(float64(goWasm.wall)/float64(goNat.wall), "go-wasm/native")
	b.ReportMetric(ms(goNat.wall)/2/n, "go-native-ms")
	b.ReportMetric(ms(goWasm.wall)/2/n, "go-wasm-ms")
	b.ReportMetric(ms(cold), "compile-ms")
	b.ReportMetric(ms(cached), "cached-compile-ms")
	b.ReportMetric(ms(goCold), "go-compile-ms")
	b.ReportMetric(ms(goCached), "go-cached-compile-ms")
}

// buildCKernel builds train-c.wasm from source through the Makefile's
// train-c-wasm rule (clang, see `make deps`). Without clang it falls back
// to the committed build, and says so.
func buildCKernel(b *testing.B) []byte {
	out := filepath.Join(b.TempDir(), "train-c.wasm")
	cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "train-c-wasm", "TRAIN_C_WASM="+out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Logf("building train-c.wasm from source failed (run `make deps`); using the committed build: %v\n%s", err, msg)
		return ckernel.Module
	}
	mod, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(mod, ckernel.Module) {
		b.Logf("the committed examples/train/ckernel/train-c.wasm differs from a fresh build: run `make train-c-wasm`")
	}
	return mod
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
