// Package wasm is the deterministic WebAssembly executor: it runs a wasip1
// module under wazero with inputs mounted read-only at /in, outputs written
// to /out, a fixed clock, a seeded random source, no network and no other
// host files, and enforces memory, wall-time and output limits.
//
// Two honest providers running the same module on the same inputs with the
// same args, env and seed produce byte-identical outputs: that is what makes
// replicated and spot-checked verification exact.
package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/gpunode/gpunode/compute/exec"
)

// Name is the executor's name in offers and job specs.
const Name = "wasm"

// Guest paths of the mounts.
const (
	InputDir  = "/in"
	OutputDir = "/out"
)

// Epoch is the wall-clock time a module sees when it starts. The clock then
// advances only as the module reads it or sleeps, so runs are reproducible.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxModuleSize caps a module's size in bytes.
const MaxModuleSize = 64 << 20

const pageSize = 65536

// Default limits, used where a Spec leaves a limit zero.
var DefaultLimits = exec.Limits{
	WallTime:    10 * time.Minute,
	MemoryBytes: 1 << 30,
	OutputBytes: 1 << 30,
}

type config struct {
	cacheDir string
	workDir  string
	limits   exec.Limits
	maxMem   uint64
	logger   *slog.Logger
}

// Option configures New.
type Option func(*config) error

// WithCacheDir keeps compiled modules in dir, so a module compiles once per
// machine rather than once per process. Default: no disk cache.
func WithCacheDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("wasm: empty cache dir")
		}
		c.cacheDir = dir
		return nil
	}
}

// WithWorkDir is where per-run input directories are made. Default:
// os.TempDir().
func WithWorkDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("wasm: empty work dir")
		}
		c.workDir = dir
		return nil
	}
}

// WithDefaultLimits sets the limits used where a Spec leaves them zero.
// Default: DefaultLimits.
func WithDefaultLimits(l exec.Limits) Option {
	return func(c *config) error {
		if l.WallTime <= 0 || l.MemoryBytes == 0 || l.OutputBytes <= 0 {
			return errors.New("wasm: default limits must all be positive")
		}
		c.limits = l
		return nil
	}
}

// WithMaxMemory caps any run's memory whatever its spec asks (rounded down
// to whole 64 KiB pages). Default: 4 GiB, the wasm32 maximum.
func WithMaxMemory(bytes uint64) Option {
	return func(c *config) error {
		if bytes < pageSize {
			return errors.New("wasm: max memory below one page")
		}
		c.maxMem = bytes
		return nil
	}
}

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// Executor runs wasip1 modules. It is safe for concurrent use.
type Executor struct {
	cfg     config
	rt      wazero.Runtime
	cache   wazero.CompilationCache
	modules *moduleCache
	log     *slog.Logger
}

var _ exec.Executor = (*Executor)(nil)

// New starts a wazero runtime with WASI preview 1. Close releases it.
func New(opts ...Option) (*Executor, error) {
	cfg := config{workDir: os.TempDir(), limits: DefaultLimits, maxMem: 1 << 32}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(min(cfg.maxMem/pageSize, 65536)))
	e := &Executor{cfg: cfg, log: cfg.logger.With("executor", Name), modules: newModuleCache(8)}
	if cfg.cacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.cacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		e.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	ctx := context.Background()
	e.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		_ = e.rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	return e, nil
}

// Name implements exec.Executor.
func (e *Executor) Name() string { return Name }

// Close stops the runtime; running modules are closed.
func (e *Executor) Close(ctx context.Context) error {
	e.modules.closeAll(ctx)
	err := e.rt.Close(ctx)
	if e.cache != nil {
		if cerr := e.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// Compile compiles module (or loads it from the disk cache) and reports how
// long that took. Run compiles on its own; Compile exists to warm the cache
// and to measure it.
func (e *Executor) Compile(ctx context.Context, module []byte) (time.Duration, error) {
	start := time.Now()
	cm, err := e.rt.CompileModule(ctx, module)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", exec.ErrBadProgram, err)
	}
	d := time.Since(start)
	return d, cm.Close(ctx)
}

func (e *Executor) limits(l exec.Limits) exec.Limits {
	if l.WallTime <= 0 {
		l.WallTime = e.cfg.limits.WallTime
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = e.cfg.limits.MemoryBytes
	}
	l.MemoryBytes = min(l.MemoryBytes, e.cfg.maxMem)
	if l.OutputBytes <= 0 {
		l.OutputBytes = e.cfg.limits.OutputBytes
	}
	return l
}

// Run implements exec.Executor.
func (e *Executor) Run(ctx context.Context, spec exec.Spec) (*exec.Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Program == nil {
		return nil, fmt.Errorf("%w: no program", exec.ErrInvalidSpec)
	}
	lim := e.limits(spec.Limits)
	module, err := readModule(spec.Program)
	if err != nil {
		return nil, err
	}
	cm, release, err := e.modules.acquire(ctx, e.rt, module)
	if err != nil {
		return nil, fmt.Errorf("%w: compile: %v", exec.ErrBadProgram, err)
	}
	defer release()
	if _, ok := cm.ExportedFunctions()["_start"]; !ok {
		return nil, fmt.Errorf("%w: module exports no _start (not a wasip1 command)", exec.ErrBadProgram)
	}
	mems := cm.ImportedMemories()
	for _, m := range cm.ExportedMemories() {
		mems = append(mems, m)
	}
	for _, m := range mems {
		if uint64(m.Min())*pageSize > lim.MemoryBytes {
			return nil, fmt.Errorf("%w: module needs %d bytes at start, limit %d", exec.ErrMemoryLimit, uint64(m.Min())*pageSize, lim.MemoryBytes)
		}
	}

	inDir, err := os.MkdirTemp(e.cfg.workDir, "wasm-in-")
	if err != nil {
		return nil, fmt.Errorf("wasm: work dir: %w", err)
	}
	defer func() {
		exec.MakeWritable(inDir)
		_ = os.RemoveAll(inDir)
	}()
	if err := exec.Materialize(inDir, spec.Inputs, 0); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runCtx, cancelTimeout := context.WithTimeoutCause(runCtx, lim.WallTime, exec.ErrTimeout)
	defer cancelTimeout()
	quota := exec.NewQuota(lim.OutputBytes, func() { cancel(exec.ErrOutputLimit) })
	stdout, stderr := exec.NewCapture(quota), exec.NewCapture(quota)
	mem := &memLimiter{limit: lim.MemoryBytes}
	clock := &detClock{}

	fsc := wazero.NewFSConfig().(sysfs.FSConfig).
		WithSysFSMount(&sysfs.ReadFS{FS: sysfs.DirFS(inDir)}, InputDir).(sysfs.FSConfig).
		WithSysFSMount(&outputFS{FS: sysfs.DirFS(spec.OutputDir), quota: quota}, OutputDir)
	env := map[string]string{}
	for k, v := range spec.Env {
		env[k] = v
	}
	env[exec.EnvInputDir] = InputDir
	env[exec.EnvOutputDir] = OutputDir
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], spec.Seed)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{"program"}, spec.Args...)...).
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
	mod, runErr := e.rt.InstantiateModule(experimental.WithMemoryAllocator(runCtx, mem), cm, mc)
	elapsed := time.Since(start)
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	res := &exec.Result{ExitCode: 0, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Elapsed: elapsed}

	if err := e.classify(runCtx, ctx, runErr, mem, quota, res); err != nil {
		e.log.Debug("run failed", "err", err, "exit", res.ExitCode)
		return res, err
	}
	streams := int64(len(res.Stdout) + len(res.Stderr))
	files, _, err := exec.CollectOutputs(spec.OutputDir, lim.OutputBytes-streams)
	res.Outputs = files
	if err != nil {
		return res, err
	}
	return res, nil
}

// classify turns wazero's outcome into the executor's errors. The order
// matters: a limit that stopped the module explains its exit better than the
// exit code it died with.
func (e *Executor) classify(runCtx, parent context.Context, runErr error, mem *memLimiter, quota *exec.Quota, res *exec.Result) error {
	if runErr == nil {
		return nil
	}
	var exitErr *sys.ExitError
	isExit := errors.As(runErr, &exitErr)
	if isExit {
		res.ExitCode = int(exitErr.ExitCode())
		if exitErr.ExitCode() == 0 {
			return nil
		}
	} else {
		res.ExitCode = -1
	}
	switch {
	case quota.Exceeded():
		res.ExitCode = -1
		return fmt.Errorf("%w (limit %d bytes)", exec.ErrOutputLimit, quota.Used())
	case mem.exceeded.Load():
		return fmt.Errorf("%w: module asked for %d bytes, limit %d", exec.ErrMemoryLimit, mem.asked.Load(), mem.limit)
	case parent.Err() != nil:
		res.ExitCode = -1
		return fmt.Errorf("%w: %v", exec.ErrCanceled, context.Cause(parent))
	case errors.Is(context.Cause(runCtx), exec.ErrTimeout):
		res.ExitCode = -1
		return fmt.Errorf("%w: stopped after %s", exec.ErrTimeout, res.Elapsed.Round(time.Millisecond))
	case isExit:
		return fmt.Errorf("%w: exit status %d", exec.ErrExit, res.ExitCode)
	default:
		return fmt.Errorf("%w: trap: %v", exec.ErrExit, runErr)
	}
}

func cutEnv(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

func readModule(src exec.Source) ([]byte, error) {
	r, err := src.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: open program: %v", exec.ErrBadProgram, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read program: %v", exec.ErrBadProgram, err)
	}
	if len(b) > MaxModuleSize {
		return nil, fmt.Errorf("%w: module larger than %d bytes", exec.ErrBadProgram, MaxModuleSize)
	}
	return b, nil
}

// detClock is the module's only view of time: it starts at Epoch and moves
// forward by a fixed step per read and by exactly the requested amount per
// sleep, so the sequence of times a module sees depends only on what it does.
type detClock struct {
	ns atomic.Int64 // nanoseconds since Epoch
}

const clockStep = 1000 // ns per read

func (c *detClock) nanotime() int64 { return c.ns.Add(clockStep) }

func (c *detClock) walltime() (int64, int32) {
	t := Epoch.Add(time.Duration(c.ns.Add(clockStep)))
	return t.Unix(), int32(t.Nanosecond())
}

func (c *detClock) nanosleep(ns int64) {
	if ns > 0 {
		c.ns.Add(ns)
	}
}

// memLimiter backs linear memory with a Go slice and refuses to grow past
// limit, remembering that it did so the run fails with ErrMemoryLimit rather
// than whatever the module does when memory.grow fails.
type memLimiter struct {
	limit    uint64
	exceeded atomic.Bool
	asked    atomic.Uint64
}

func (m *memLimiter) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &linearMemory{l: m, buf: make([]byte, 0, min(capacity, m.limit))}
}

type linearMemory struct {
	l   *memLimiter
	buf []byte
}

func (lm *linearMemory) Reallocate(size uint64) []byte {
	if size > lm.l.limit {
		lm.l.exceeded.Store(true)
		lm.l.asked.Store(size)
		return nil
	}
	if size <= uint64(cap(lm.buf)) {
		lm.buf = lm.buf[:size]
		return lm.buf
	}
	newCap := min(max(size, 2*uint64(cap(lm.buf))), lm.l.limit)
	nb := make([]byte, size, newCap)
	copy(nb, lm.buf)
	lm.buf = nb
	return nb
}

func (lm *linearMemory) Free() { lm.buf = nil }

// outputFS is the /out mount: the host directory, with every byte written
// charged to the run's output quota, and no links, so a module cannot plant
// a symlink to a host file and read it back.
type outputFS struct {
	experimentalsys.FS
	quota *exec.Quota
}

func (o *outputFS) OpenFile(path string, flag experimentalsys.Oflag, perm os.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	f, errno := o.FS.OpenFile(path, flag, perm)
	if errno != 0 {
		return nil, errno
	}
	return &outputFile{File: f, quota: o.quota}, 0
}

func (o *outputFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }
func (o *outputFS) Link(string, string) experimentalsys.Errno    { return experimentalsys.EPERM }

type outputFile struct {
	experimentalsys.File
	quota *exec.Quota
}

func (f *outputFile) Write(p []byte) (int, experimentalsys.Errno) {
	if !f.quota.Take(int64(len(p))) {
		return 0, experimentalsys.EIO
	}
	return f.File.Write(p)
}

func (f *outputFile) Pwrite(p []byte, off int64) (int, experimentalsys.Errno) {
	if !f.quota.Take(int64(len(p))) {
		return 0, experimentalsys.EIO
	}
	return f.File.Pwrite(p, off)
}

func (f *outputFile) Truncate(size int64) experimentalsys.Errno {
	st, errno := f.File.Stat()
	if errno != 0 {
		return errno
	}
	if grow := size - st.Size; grow > 0 && !f.quota.Take(grow) {
		return experimentalsys.EIO
	}
	return f.File.Truncate(size)
}
