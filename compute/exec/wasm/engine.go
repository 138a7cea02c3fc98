package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/gpunode/gpunode/compute/exec"
)

// engine is a wazero runtime with WASI and a compiled-module cache: the part
// that runs a module, shared by the in-process executor and the worker
// process.
type engine struct {
	rt      wazero.Runtime
	cache   wazero.CompilationCache
	modules *moduleCache
}

// newEngine starts a runtime. interruptible makes compiled code check for
// cancellation at every loop header (wazero's WithCloseOnContextDone), which
// lets ctx stop a spinning module in-process but costs an exit to Go per loop
// iteration: an order of magnitude on tight loops. Workers run without it and
// are stopped by killing their process instead.
func newEngine(cacheDir string, maxMem uint64, interruptible bool) (*engine, error) {
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(interruptible).
		WithMemoryLimitPages(uint32(min(maxMem/pageSize, 65536)))
	en := &engine{modules: newModuleCache(8)}
	if cacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		en.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	ctx := context.Background()
	en.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, en.rt); err != nil {
		_ = en.rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	return en, nil
}

func (en *engine) close(ctx context.Context) error {
	en.modules.closeAll(ctx)
	err := en.rt.Close(ctx)
	if en.cache != nil {
		if cerr := en.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// request is one run, as the executor hands it to an engine (directly or
// through a worker's pipe).
type request struct {
	ModulePath  string            `json:"modulePath,omitempty"` // worker: file holding the module
	Args        []string          `json:"args"`
	Env         map[string]string `json:"env"`
	InputDir    string            `json:"inputDir"`
	OutputDir   string            `json:"outputDir"`
	Seed        uint64            `json:"seed"`
	MemoryBytes uint64            `json:"memoryBytes"`
	OutputBytes int64             `json:"outputBytes"`
	// CompileOnly compiles the module (filling the disk cache) and runs
	// nothing (Executor.Warm).
	CompileOnly bool `json:"compileOnly,omitempty"`
}

// Outcome kinds.
const (
	outOK       = ""
	outExit     = "exit"
	outTrap     = "trap"
	outBad      = "bad"
	outMemory   = "memory"
	outOutput   = "output"
	outCanceled = "canceled"
	outTimeout  = "timeout"
	outStarted  = "started" // worker to executor: compiled, now running
)

// outcome is what an engine reports about a run.
type outcome struct {
	Kind     string `json:"kind"`
	Msg      string `json:"msg,omitempty"`
	ExitCode int    `json:"exitCode"`
	Stdout   []byte `json:"stdout,omitempty"`
	Stderr   []byte `json:"stderr,omitempty"`
	Elapsed  int64  `json:"elapsed"` // ns
	// CPU is the CPU time the worker process used from the module's start
	// to its end (ns; 0 in-process and where processCPU is unknown).
	CPU int64 `json:"cpu,omitempty"`
}

// err turns an outcome into the executor's error (nil on success).
func (o outcome) err() error {
	switch o.Kind {
	case outOK:
		return nil
	case outBad:
		return fmt.Errorf("%w: %s", exec.ErrBadProgram, o.Msg)
	case outMemory:
		return fmt.Errorf("%w: %s", exec.ErrMemoryLimit, o.Msg)
	case outOutput:
		return fmt.Errorf("%w: %s", exec.ErrOutputLimit, o.Msg)
	case outCanceled:
		return fmt.Errorf("%w: %s", exec.ErrCanceled, o.Msg)
	case outTimeout:
		return fmt.Errorf("%w: %s", exec.ErrTimeout, o.Msg)
	case outTrap:
		return fmt.Errorf("%w: trap: %s", exec.ErrExit, o.Msg)
	default:
		return fmt.Errorf("%w: exit status %d", exec.ErrExit, o.ExitCode)
	}
}

// run executes module for req. Compilation is not counted against the
// wall-time limit: wall (if positive) starts when the module is about to
// start, and so does onStart (if non-nil). ctx stops the module only if the
// engine is interruptible.
func (en *engine) run(ctx context.Context, module []byte, req request, wall time.Duration, onStart func()) outcome {
	cm, release, err := en.modules.acquire(ctx, en.rt, module)
	if err != nil {
		return outcome{Kind: outBad, Msg: "compile: " + err.Error(), ExitCode: -1}
	}
	defer release()
	if _, ok := cm.ExportedFunctions()["_start"]; !ok {
		return outcome{Kind: outBad, Msg: "module exports no _start (not a wasip1 command)", ExitCode: -1}
	}
	if req.CompileOnly {
		return outcome{Kind: outOK}
	}
	mems := cm.ImportedMemories()
	for _, m := range cm.ExportedMemories() {
		mems = append(mems, m)
	}
	for _, m := range mems {
		if need := uint64(m.Min()) * pageSize; need > req.MemoryBytes {
			return outcome{Kind: outMemory, Msg: fmt.Sprintf("module needs %d bytes at start, limit %d", need, req.MemoryBytes), ExitCode: -1}
		}
	}

	if wall > 0 {
		var cancelWall context.CancelFunc
		ctx, cancelWall = context.WithTimeoutCause(ctx, wall, exec.ErrTimeout)
		defer cancelWall()
	}
	if onStart != nil {
		onStart()
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	quota := exec.NewQuota(req.OutputBytes, func() { cancel(exec.ErrOutputLimit) })
	stdout, stderr := exec.NewCapture(quota), exec.NewCapture(quota)
	mem := &memLimiter{limit: req.MemoryBytes}
	clock := &detClock{}

	fsc := wazero.NewFSConfig().(sysfs.FSConfig).
		WithSysFSMount(&sysfs.ReadFS{FS: sysfs.DirFS(req.InputDir)}, InputDir).(sysfs.FSConfig).
		WithSysFSMount(&outputFS{FS: sysfs.DirFS(req.OutputDir), quota: quota}, OutputDir)
	env := map[string]string{}
	for k, v := range req.Env {
		env[k] = v
	}
	env[exec.EnvInputDir] = InputDir
	env[exec.EnvOutputDir] = OutputDir
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], req.Seed)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{"program"}, req.Args...)...).
		WithStdin(bytes.NewReader(nil)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithFSConfig(fsc).
		WithRandSource(rand.NewChaCha8(seed)).
		WithWalltime(clock.walltime, 1000).
		WithNanotime(clock.nanotime, 1000).
		WithNanosleep(clock.nanosleep).
		WithOsyield(func() {}).
		WithStartFunctions("_start")
	for _, kv := range exec.SortedEnv(env) {
		k, v, _ := cutEnv(kv)
		mc = mc.WithEnv(k, v)
	}

	start := time.Now()
	mod, runErr := en.rt.InstantiateModule(experimental.WithMemoryAllocator(runCtx, mem), cm, mc)
	elapsed := time.Since(start)
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	o := outcome{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Elapsed: int64(elapsed)}
	classify(&o, runErr, runCtx, ctx, mem, quota)
	return o
}

// classify fills o.Kind from wazero's result. The order matters: a limit
// that stopped the module explains its exit better than the status it died
// with.
func classify(o *outcome, runErr error, runCtx, parent context.Context, mem *memLimiter, quota *exec.Quota) {
	if runErr == nil {
		return
	}
	var exitErr *sys.ExitError
	isExit := errors.As(runErr, &exitErr)
	if isExit {
		o.ExitCode = int(exitErr.ExitCode())
		if o.ExitCode == 0 {
			return
		}
	} else {
		o.ExitCode = -1
	}
	elapsed := time.Duration(o.Elapsed).Round(time.Millisecond)
	switch {
	case quota.Exceeded():
		o.Kind, o.Msg, o.ExitCode = outOutput, fmt.Sprintf("%d bytes written", quota.Used()), -1
	case mem.exceeded.Load():
		o.Kind, o.Msg = outMemory, fmt.Sprintf("module asked for %d bytes, limit %d", mem.asked.Load(), mem.limit)
	case errors.Is(context.Cause(parent), exec.ErrTimeout):
		o.Kind, o.Msg, o.ExitCode = outTimeout, "stopped after "+elapsed.String(), -1
	case parent.Err() != nil:
		o.Kind, o.Msg, o.ExitCode = outCanceled, context.Cause(parent).Error(), -1
	case isExit:
		o.Kind = outExit
	default:
		o.Kind, o.Msg = outTrap, runErr.Error()
	}
}
