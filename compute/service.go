package compute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/gpu"
)

// Sentinel errors of Submit and Cancel.
var (
	ErrQueueFull       = errors.New("compute: queue full")
	ErrUnknownExecutor = errors.New("compute: executor not offered")
	ErrDuplicateJob    = errors.New("compute: job already queued or running")
	ErrTooManyGPUs     = errors.New("compute: job needs more GPUs than this node has")
	ErrUnknownJob      = errors.New("compute: no such queued or running job")
	ErrStopped         = errors.New("compute: service stopped")
)

// Job is one segment of a lease to run.
type Job struct {
	ID       string    `json:"id"`       // unique per segment
	Lease    string    `json:"lease"`    // the lease it belongs to
	Executor string    `json:"executor"` // "wasm" or "process"
	GPUs     int       `json:"gpus"`     // GPUs to allocate and pin
	Spec     exec.Spec `json:"-"`        // OutputDir may be empty: the service makes one
}

// EventKind names a step of a job's life.
type EventKind string

// Event kinds, in the order a job goes through them.
const (
	EventQueued   EventKind = "queued"
	EventStarted  EventKind = "started"
	EventFinished EventKind = "finished" // Receipt says whether it succeeded
)

// Event is one step of one job.
type Event struct {
	Kind    EventKind `json:"kind"`
	JobID   string    `json:"job"`
	Lease   string    `json:"lease"`
	Time    time.Time `json:"time"`
	Devices []string  `json:"devices,omitempty"` // GPU UUIDs (Started)
	Receipt *Receipt  `json:"receipt,omitempty"` // Finished
}

// Receipt is what a finished job reports.
type Receipt struct {
	JobID      string        `json:"job"`
	Lease      string        `json:"lease"`
	Executor   string        `json:"executor"`
	Runtime    string        `json:"runtime,omitempty"` // process runtime name
	Devices    []string      `json:"devices,omitempty"` // GPU UUIDs
	ExitCode   int           `json:"exitCode"`
	OK         bool          `json:"ok"`
	Error      string        `json:"error,omitempty"`
	Outputs    []exec.File   `json:"outputs,omitempty"`
	OutputDir  string        `json:"outputDir,omitempty"` // host dir holding Outputs, if kept
	OutputCID  string        `json:"outputCid,omitempty"` // from the OutputStore
	Stderr     string        `json:"stderr,omitempty"`    // tail, for diagnosis
	QueuedAt   time.Time     `json:"queuedAt"`
	StartedAt  time.Time     `json:"startedAt,omitzero"`
	FinishedAt time.Time     `json:"finishedAt"`
	Elapsed    time.Duration `json:"elapsed"`
}

// OutputStore takes a successful job's output files (under dir) into the
// node's content store and returns the root CID. The node implements it
// over storage; compute does not import the store.
type OutputStore interface {
	PutOutputs(ctx context.Context, dir string, files []exec.File) (cid string, err error)
}

// Inventory gives the GPUs present now; *gpu.Monitor implements it.
type Inventory interface {
	Inventory() gpu.Inventory
}

// Clock stamps events and receipts.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

type config struct {
	executors map[string]exec.Executor
	inventory Inventory
	queueSize int
	cpuSlots  int
	clock     Clock
	store     OutputStore
	events    func(Event)
	workDir   string
	logger    *slog.Logger
}

// Option configures New.
type Option func(*config) error

// WithExecutors offers executors, keyed by their Name.
func WithExecutors(es ...exec.Executor) Option {
	return func(c *config) error {
		for _, e := range es {
			if _, dup := c.executors[e.Name()]; dup {
				return fmt.Errorf("compute: executor %q given twice", e.Name())
			}
			c.executors[e.Name()] = e
		}
		return nil
	}
}

// WithInventory sets where GPUs come from. Default: no GPUs.
func WithInventory(inv Inventory) Option {
	return func(c *config) error { c.inventory = inv; return nil }
}

// WithQueueSize bounds the jobs waiting to start. Default: 64.
func WithQueueSize(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return errors.New("compute: queue size must be positive")
		}
		c.queueSize = n
		return nil
	}
}

// WithCPUSlots bounds how many jobs run at once in total, GPU or not.
// Default: runtime.NumCPU().
func WithCPUSlots(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return errors.New("compute: CPU slots must be positive")
		}
		c.cpuSlots = n
		return nil
	}
}

// WithClock sets the clock. Default: the system clock.
func WithClock(clk Clock) Option { return func(c *config) error { c.clock = clk; return nil } }

// WithOutputStore stores successful outputs and fills Receipt.OutputCID;
// the service then removes output directories it made.
func WithOutputStore(s OutputStore) Option { return func(c *config) error { c.store = s; return nil } }

// WithEvents receives every event. f runs on the service's goroutines and
// must not block (forward to a buffered channel).
func WithEvents(f func(Event)) Option { return func(c *config) error { c.events = f; return nil } }

// WithWorkDir is where output directories are made for jobs that bring
// none. Default: os.TempDir().
func WithWorkDir(dir string) Option { return func(c *config) error { c.workDir = dir; return nil } }

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.logger = l; return nil } }

type noInventory struct{}

func (noInventory) Inventory() gpu.Inventory { return gpu.Inventory{Source: gpu.SourceOS} }

// job is a queued or running Job.
type job struct {
	Job
	queuedAt  time.Time
	startedAt time.Time
	devices   []string
	madeDir   bool
	cancel    context.CancelFunc // set when running
}

// Service runs jobs. Submit, Cancel, Hardware, Jobs and Runtimes are safe
// to call from any goroutine, before or during Run.
type Service struct {
	cfg   config
	log   *slog.Logger
	alloc *gpu.Allocator
	wake  chan struct{}

	mu      sync.Mutex // guards queue, running, stopped
	queue   []*job
	running map[string]*job
	stopped bool
	wg      sync.WaitGroup // running jobs
}

// New makes a service. It runs nothing until Run.
func New(opts ...Option) (*Service, error) {
	cfg := config{executors: map[string]exec.Executor{}, inventory: noInventory{}, queueSize: 64,
		cpuSlots: runtime.NumCPU(), clock: systemClock{}, workDir: os.TempDir()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.logger.With("subsystem", "compute"), alloc: gpu.NewAllocator(),
		wake: make(chan struct{}, 1), running: map[string]*job{}}, nil
}

func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Kick makes the scheduler look again, e.g. after GPUs appeared
// (gpu.WithOnChange).
func (s *Service) Kick() { s.kick() }

func (s *Service) emit(ev Event) {
	if s.cfg.events != nil {
		s.cfg.events(ev)
	}
}

// Submit queues j. It fails at once, changing nothing, if the queue is
// full, the executor is not offered, the ID is in use, or the node could
// never give the job its GPUs.
func (s *Service) Submit(j Job) error {
	if j.ID == "" || j.GPUs < 0 {
		return fmt.Errorf("compute: job needs an ID and a GPU count >= 0")
	}
	if _, ok := s.cfg.executors[j.Executor]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownExecutor, j.Executor)
	}
	if have := len(s.cfg.inventory.Inventory().GPUs); j.GPUs > have {
		return fmt.Errorf("%w: wants %d, has %d", ErrTooManyGPUs, j.GPUs, have)
	}
	now := s.cfg.clock.Now()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	if _, ok := s.running[j.ID]; ok || slices.ContainsFunc(s.queue, func(q *job) bool { return q.ID == j.ID }) {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrDuplicateJob, j.ID)
	}
	if len(s.queue) >= s.cfg.queueSize {
		s.mu.Unlock()
		return fmt.Errorf("%w (%d jobs waiting)", ErrQueueFull, s.cfg.queueSize)
	}
	s.queue = append(s.queue, &job{Job: j, queuedAt: now})
	s.mu.Unlock()
	s.emit(Event{Kind: EventQueued, JobID: j.ID, Lease: j.Lease, Time: now})
	s.kick()
	return nil
}

// Cancel removes a queued job or stops a running one; either way a
// Finished event with a failed receipt follows.
func (s *Service) Cancel(id string) error {
	s.mu.Lock()
	if r, ok := s.running[id]; ok {
		r.cancel()
		s.mu.Unlock()
		return nil
	}
	i := slices.IndexFunc(s.queue, func(q *job) bool { return q.ID == id })
	if i < 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	j := s.queue[i]
	s.queue = slices.Delete(s.queue, i, i+1)
	s.mu.Unlock()
	now := s.cfg.clock.Now()
	s.emit(Event{Kind: EventFinished, JobID: j.ID, Lease: j.Lease, Time: now, Receipt: &Receipt{
		JobID: j.ID, Lease: j.Lease, Executor: j.Executor, Runtime: j.Spec.Runtime, ExitCode: -1,
		Error: "canceled before it started", QueuedAt: j.queuedAt, FinishedAt: now}})
	return nil
}

// Run schedules jobs until ctx is done, then cancels running jobs, waits for
// them, and fails what is still queued.
func (s *Service) Run(ctx context.Context) error {
	for {
		s.schedule(ctx)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.stopped = true
			queued := s.queue
			s.queue = nil
			for _, r := range s.running {
				r.cancel()
			}
			s.mu.Unlock()
			s.wg.Wait()
			now := s.cfg.clock.Now()
			for _, j := range queued {
				s.emit(Event{Kind: EventFinished, JobID: j.ID, Lease: j.Lease, Time: now, Receipt: &Receipt{
					JobID: j.ID, Lease: j.Lease, Executor: j.Executor, ExitCode: -1, Error: "node stopping",
					QueuedAt: j.queuedAt, FinishedAt: now}})
			}
			return ctx.Err()
		case <-s.wake:
		}
	}
}

// schedule starts every queued job that fits, in queue order. A job that
// does not fit (not enough free GPUs) does not hold back smaller ones
// behind it.
func (s *Service) schedule(ctx context.Context) {
	present := s.cfg.inventory.Inventory().GPUs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	for i := 0; i < len(s.queue) && len(s.running) < s.cfg.cpuSlots; {
		j := s.queue[i]
		al, err := s.alloc.Allocate(j.ID, j.GPUs, present, nil)
		if err != nil {
			i++
			continue
		}
		s.queue = slices.Delete(s.queue, i, i+1)
		j.devices = al.UUIDs
		jctx, cancel := context.WithCancel(ctx)
		j.cancel = cancel
		j.startedAt = s.cfg.clock.Now()
		s.running[j.ID] = j
		s.wg.Add(1)
		go s.runJob(jctx, j)
	}
}

func (s *Service) runJob(ctx context.Context, j *job) {
	defer s.wg.Done()
	defer j.cancel()
	s.emit(Event{Kind: EventStarted, JobID: j.ID, Lease: j.Lease, Time: j.startedAt, Devices: j.devices})
	rc := s.execute(ctx, j)
	s.mu.Lock()
	delete(s.running, j.ID)
	s.mu.Unlock()
	s.alloc.Release(j.ID)
	s.emit(Event{Kind: EventFinished, JobID: j.ID, Lease: j.Lease, Time: rc.FinishedAt, Receipt: rc})
	s.kick()
}

func (s *Service) execute(ctx context.Context, j *job) *Receipt {
	rc := &Receipt{JobID: j.ID, Lease: j.Lease, Executor: j.Executor, Runtime: j.Spec.Runtime,
		Devices: j.devices, QueuedAt: j.queuedAt, StartedAt: j.startedAt, ExitCode: -1}
	finish := func(err error) *Receipt {
		rc.FinishedAt = s.cfg.clock.Now()
		rc.Elapsed = rc.FinishedAt.Sub(rc.StartedAt)
		if err != nil {
			rc.Error = err.Error()
			s.log.Info("job failed", "job", j.ID, "lease", j.Lease, "err", err)
		} else {
			rc.OK = true
		}
		return rc
	}
	spec := j.Spec
	spec.Devices = j.devices
	if spec.OutputDir == "" {
		d, err := os.MkdirTemp(s.cfg.workDir, "out-")
		if err != nil {
			return finish(fmt.Errorf("compute: output dir: %w", err))
		}
		spec.OutputDir, j.madeDir = d, true
	}
	rc.OutputDir = spec.OutputDir
	res, err := s.cfg.executors[j.Executor].Run(ctx, spec)
	if res != nil {
		rc.ExitCode = res.ExitCode
		rc.Outputs = res.Outputs
		rc.Stderr = tail(res.Stderr, 2048)
	}
	if err != nil {
		s.dropDir(j, rc)
		return finish(err)
	}
	if s.cfg.store != nil {
		cid, err := s.cfg.store.PutOutputs(ctx, spec.OutputDir, res.Outputs)
		if err != nil {
			s.dropDir(j, rc)
			return finish(fmt.Errorf("compute: store outputs: %w", err))
		}
		rc.OutputCID = cid
		s.dropDir(j, rc)
	}
	return finish(nil)
}

// dropDir removes an output directory the service made once its content is
// stored or useless.
func (s *Service) dropDir(j *job, rc *Receipt) {
	if j.madeDir {
		_ = os.RemoveAll(rc.OutputDir)
		rc.OutputDir = ""
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// JobStatus is a queued or running job.
type JobStatus struct {
	ID       string    `json:"id"`
	Lease    string    `json:"lease"`
	Executor string    `json:"executor"`
	State    string    `json:"state"` // "queued" or "running"
	GPUs     int       `json:"gpus"`
	Devices  []string  `json:"devices,omitempty"`
	QueuedAt time.Time `json:"queuedAt"`
}

// Jobs lists running jobs then queued ones in queue order.
func (s *Service) Jobs() []JobStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []JobStatus
	for _, j := range s.running {
		out = append(out, JobStatus{ID: j.ID, Lease: j.Lease, Executor: j.Executor, State: "running", GPUs: j.GPUs, Devices: j.devices, QueuedAt: j.queuedAt})
	}
	slices.SortFunc(out, func(a, b JobStatus) int { return a.QueuedAt.Compare(b.QueuedAt) })
	for _, j := range s.queue {
		out = append(out, JobStatus{ID: j.ID, Lease: j.Lease, Executor: j.Executor, State: "queued", GPUs: j.GPUs, QueuedAt: j.queuedAt})
	}
	return out
}

// GPUStatus is one GPU with its telemetry and the job holding it.
type GPUStatus struct {
	gpu.Device
	Lease string `json:"lease,omitempty"`
	Job   string `json:"job,omitempty"`
}

// Hardware is what `gpunode gpus` shows.
type Hardware struct {
	Source    string      `json:"source"`
	Driver    string      `json:"driver,omitempty"`
	Note      string      `json:"note,omitempty"`
	CPU       gpu.CPU     `json:"cpu"`
	GPUs      []GPUStatus `json:"gpus"`
	FreeGPUs  int         `json:"freeGpus"`
	Executors []string    `json:"executors"`
	Queued    int         `json:"queued"`
	Running   int         `json:"running"`
	Updated   time.Time   `json:"updated"`
}

// Hardware returns inventory, live telemetry and allocation.
func (s *Service) Hardware() Hardware {
	inv := s.cfg.inventory.Inventory()
	hw := Hardware{Source: inv.Source, Driver: inv.Driver, Note: inv.Note, CPU: inv.CPU, Updated: inv.Updated, GPUs: []GPUStatus{}}
	s.mu.Lock()
	for _, d := range inv.GPUs {
		st := GPUStatus{Device: d}
		if id, ok := s.alloc.Owner(d.UUID); ok {
			st.Job = id
			if j := s.running[id]; j != nil {
				st.Lease = j.Lease
			}
		} else {
			hw.FreeGPUs++
		}
		hw.GPUs = append(hw.GPUs, st)
	}
	hw.Queued, hw.Running = len(s.queue), len(s.running)
	s.mu.Unlock()
	for name := range s.cfg.executors {
		hw.Executors = append(hw.Executors, name)
	}
	slices.Sort(hw.Executors)
	return hw
}

// runtimeLister is what the process executor offers for `gpunode runtimes`.
type runtimeLister interface{ Runtimes() []process.Runtime }

// Runtimes lists the process executor's allowlist (empty without one).
func (s *Service) Runtimes() []process.Runtime {
	out := []process.Runtime{}
	for _, e := range s.cfg.executors {
		if rl, ok := e.(runtimeLister); ok {
			out = append(out, rl.Runtimes()...)
		}
	}
	slices.SortFunc(out, func(a, b process.Runtime) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
