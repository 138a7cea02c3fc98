package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/examples/train/model"
)

// TestMain lets the wasm executor re-execute this test binary as its worker
// process. It is the package's only TestMain: add setup for other benchmarks
// here rather than a second one.
func TestMain(m *testing.M) {
	wasm.RunWorkerIfRequested()
	os.Exit(m.Run())
}

// Training segment used by BenchmarkWasmTrain: large enough that the
// arithmetic, not module start-up, dominates.
const (
	trainDim    = 64
	trainRows   = 20000
	trainEpochs = 10
)

// BenchmarkWasmTrain runs one training segment natively and as the wasip1
// build of examples/train under the wasm executor, checks both give the
// same weights bytes, and reports:
//
//	wasm/native        wasm time over native time for the segment (target <= 1.5)
//	native-ms, wasm-ms per-segment times (wasm includes inputs, start-up, outputs)
//	compile-ms         compiling the module with an empty disk cache
//	cached-compile-ms  compiling it again in a fresh executor from the disk cache
func BenchmarkWasmTrain(b *testing.B) {
	modPath := exectest.Build(b, "github.com/gpunode/gpunode/examples/train", "wasip1", "wasm")
	defer exectest.Cleanup()
	module, err := os.ReadFile(modPath)
	if err != nil {
		b.Fatal(err)
	}
	task, err := model.NewTask(1, trainDim)
	if err != nil {
		b.Fatal(err)
	}
	shard, _ := task.Shard(0, trainRows)
	shardBytes := model.EncodeShard(shard)
	weightsBytes := model.EncodeWeights(model.Zero(trainDim))
	cfg := model.Config{Epochs: trainEpochs, LR: model.DefaultConfig.LR, BatchSize: model.DefaultConfig.BatchSize}

	// Cold and cached compilation, each in a fresh executor (fresh runtime).
	cacheDir := b.TempDir()
	compile := func() time.Duration {
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
	cold := compile()
	cached := compile()

	e, err := wasm.New(wasm.WithCacheDir(cacheDir), wasm.WithWorkDir(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	runWasm := func() []byte {
		out := b.TempDir()
		res, err := e.Run(context.Background(), exec.Spec{
			Program: exec.Bytes(module),
			Args: []string{"step", "-weights", "w.bin", "-shard-file", "s.bin", "-out", "w.bin",
				"-epochs", itoa(trainEpochs)},
			Inputs:    map[string]exec.Source{"w.bin": exec.Bytes(weightsBytes), "s.bin": exec.Bytes(shardBytes)},
			OutputDir: out,
			Limits:    exec.Limits{WallTime: 10 * time.Minute},
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
	runNative := func() []byte {
		w, err := model.DecodeWeights(weightsBytes)
		if err != nil {
			b.Fatal(err)
		}
		s, err := model.DecodeShard(shardBytes)
		if err != nil {
			b.Fatal(err)
		}
		w2, err := model.Train(w, s, cfg)
		if err != nil {
			b.Fatal(err)
		}
		return model.EncodeWeights(w2)
	}
	runWasm() // instantiate once so the loop measures warm runs, as a provider's segments are

	var nativeT, wasmT time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		nat := runNative()
		t1 := time.Now()
		was := runWasm()
		t2 := time.Now()
		nativeT += t1.Sub(t0)
		wasmT += t2.Sub(t1)
		if !bytes.Equal(nat, was) {
			b.Fatal("native and wasm weights differ")
		}
	}
	b.ReportMetric(float64(wasmT)/float64(nativeT), "wasm/native")
	b.ReportMetric(ms(nativeT)/float64(b.N), "native-ms")
	b.ReportMetric(ms(wasmT)/float64(b.N), "wasm-ms")
	b.ReportMetric(ms(cold), "compile-ms")
	b.ReportMetric(ms(cached), "cached-compile-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for ; n > 0; n /= 10 {
		i--
		buf[i] = byte('0' + n%10)
	}
	return string(buf[i:])
}
