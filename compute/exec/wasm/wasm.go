// Package wasm is the deterministic WebAssembly executor: it runs a wasip1
// module under wazero with inputs mounted read-only at /in, outputs written
// to /out, a fixed clock, a seeded random source, no network and no other
// host files, and enforces memory, wall-time and output limits.
//
// Two honest providers running the same module on the same inputs with the
// same args, env and seed produce byte-identical outputs: that is what makes
// replicated and spot-checked verification exact.
//
// # Usage
//
// Call RunWorkerIfRequested first thing in main (and in TestMain of test
// binaries that run modules): modules run in worker processes, re-executions
// of the binary, which are killed to enforce the wall-time limit and
// cancellation (see worker.go for why). Then New(WithCacheDir(dir), ...) and
// Run a Spec whose Program is the module. Without the call the executor runs
// modules in-process, correctly but far slower on loops.
package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/experimental"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

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
	cacheDir    string
	workDir     string
	limits      exec.Limits
	maxMem      uint64
	logger      *slog.Logger
	inProcess   bool
	idleWorkers int
	workerCmd   string
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

// WithInProcess runs modules in the node's own process instead of worker
// processes. Simpler, but the compiled code then checks for cancellation at
// every loop iteration, which is much slower (see RunWorkerIfRequested).
// It is the default when the binary never called RunWorkerIfRequested.
func WithInProcess() Option {
	return func(c *config) error {
		c.inProcess = true
		return nil
	}
}

// WithWorkerCommand runs workers from the binary at path (which must call
// RunWorkerIfRequested) instead of re-executing this one. Tests use it to
// keep workers out of the race detector; a provider may use a separate,
// smaller binary.
func WithWorkerCommand(path string) Option {
	return func(c *config) error {
		if path == "" {
			return errors.New("wasm: empty worker command")
		}
		c.workerCmd = path
		return nil
	}
}

// WithWorkers sets how many idle worker processes are kept. Default: 4.
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return errors.New("wasm: negative worker count")
		}
		c.idleWorkers = n
		return nil
	}
}

// Executor runs wasip1 modules. It is safe for concurrent use.
type Executor struct {
	cfg       config
	en        *engine // in-process runs, and Compile
	workers   *pool   // nil in in-process mode
	log       *slog.Logger
	workerCPU atomic.Int64 // ns, see WorkerCPUTime
}

var _ exec.Executor = (*Executor)(nil)

// New makes an executor. Close releases it.
func New(opts ...Option) (*Executor, error) {
	cfg := config{workDir: os.TempDir(), limits: DefaultLimits, maxMem: 1 << 32, idleWorkers: 4}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	e := &Executor{cfg: cfg, log: cfg.logger.With("executor", Name)}
	if !cfg.inProcess && cfg.workerCmd == "" && !workerHook.Load() {
		e.log.Warn("wasm: this binary does not call wasm.RunWorkerIfRequested; running modules in-process (slower)")
		e.cfg.inProcess = true
	}
	if !e.cfg.inProcess && e.cfg.cacheDir == "" {
		// Workers are separate processes: without a shared disk cache each
		// would compile every module itself.
		e.cfg.cacheDir = filepath.Join(e.cfg.workDir, "wasm-cache")
	}
	en, err := newEngine(e.cfg.cacheDir, e.cfg.maxMem, e.cfg.inProcess)
	if err != nil {
		return nil, err
	}
	e.en = en
	if !e.cfg.inProcess {
		e.workers = &pool{max: cfg.idleWorkers}
	}
	return e, nil
}

// Name implements exec.Executor.
func (e *Executor) Name() string { return Name }

// InProcess reports whether modules run in this process (no workers).
func (e *Executor) InProcess() bool { return e.cfg.inProcess }

// Close stops idle workers and the runtime.
func (e *Executor) Close(ctx context.Context) error {
	if e.workers != nil {
		e.workers.close()
	}
	return e.en.close(ctx)
}

// WorkerCPUTime is the CPU time worker processes have spent on this
// executor's runs that ended normally (exited, trapped or hit the memory
// or output limit), each counted from the module's start to its end and
// so without compilation. It is zero for in-process runs, whose time is
// this process's own, and where the platform does not say (it does on
// Linux).
func (e *Executor) WorkerCPUTime() time.Duration { return time.Duration(e.workerCPU.Load()) }

// Compile compiles module the way runs will (or loads it from the disk
// cache) and reports how long that took. Run compiles on its own; Compile
// warms the disk cache and measures it.
func (e *Executor) Compile(ctx context.Context, module []byte) (time.Duration, error) {
	start := time.Now()
	cm, err := e.en.rt.CompileModule(ctx, module)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", exec.ErrBadProgram, err)
	}
	d := time.Since(start)
	return d, cm.Close(ctx)
}

// Warm compiles module where runs will run it (in a worker, unless the
// executor runs in process), so the compiled code is in the disk cache and
// the next runs start at once instead of each compiling it. A module that
// does not compile is an error wrapping exec.ErrBadProgram.
func (e *Executor) Warm(ctx context.Context, module []byte) error {
	req := request{CompileOnly: true, MemoryBytes: e.limits(exec.Limits{}).MemoryBytes}
	var o outcome
	if e.cfg.inProcess {
		o = e.en.run(ctx, module, req, 0, nil)
	} else {
		o = e.runInWorker(ctx, 0, module, req)
	}
	return o.err()
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
	req := request{Args: spec.Args, Env: spec.Env, InputDir: inDir, OutputDir: spec.OutputDir,
		Seed: spec.Seed, MemoryBytes: lim.MemoryBytes, OutputBytes: lim.OutputBytes}

	var o outcome
	if e.cfg.inProcess {
		o = e.en.run(ctx, module, req, lim.WallTime, nil)
	} else {
		o = e.runInWorker(ctx, lim.WallTime, module, req)
	}
	if o.Kind == outBad {
		return nil, o.err()
	}
	res := &exec.Result{ExitCode: o.ExitCode, Stdout: o.Stdout, Stderr: o.Stderr, Elapsed: time.Duration(o.Elapsed)}
	if err := o.err(); err != nil {
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

// memLimiter allocates linear memory and refuses to grow it past limit,
// remembering that it did so the run fails with ErrMemoryLimit rather than
// whatever the module does when memory.grow fails.
//
// Where it can (64-bit Linux, see mem_mmap.go) a memory is one mapping
// reserved at its maximum size and made accessible as it grows, with
// transparent huge pages: growing never copies, and filling fresh memory
// faults once per 2 MiB instead of once per 4 KiB, which is most of the
// start-up of a module that reads megabytes of input. Elsewhere, or if the
// mapping fails, it is a Go slice that grows by copying.
type memLimiter struct {
	limit    uint64
	exceeded atomic.Bool
	asked    atomic.Uint64
}

func (m *memLimiter) Allocate(capacity, max uint64) experimental.LinearMemory {
	if lm := m.mapMemory(min(max, m.limit)); lm != nil {
		return lm
	}
	return &sliceMemory{l: m, buf: make([]byte, 0, min(capacity, m.limit))}
}

// refuse records that the module asked for size bytes, over the limit.
func (m *memLimiter) refuse(size uint64) bool {
	if size <= m.limit {
		return false
	}
	m.exceeded.Store(true)
	m.asked.Store(size)
	return true
}

// sliceMemory is linear memory in a Go slice.
type sliceMemory struct {
	l   *memLimiter
	buf []byte
}

func (lm *sliceMemory) Reallocate(size uint64) []byte {
	if lm.l.refuse(size) {
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

func (lm *sliceMemory) Free() { lm.buf = nil }

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
