package compute_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute"
	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/gpu"
)

// gated is an executor whose runs block until the test releases them.
type gated struct {
	mu      sync.Mutex
	started map[string]exec.Spec // by first arg
	release map[string]chan error
	startCh chan string
}

func newGated() *gated {
	return &gated{started: map[string]exec.Spec{}, release: map[string]chan error{}, startCh: make(chan string, 16)}
}

func (g *gated) Name() string { return "wasm" }

func (g *gated) gate(id string) chan error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release[id] == nil {
		g.release[id] = make(chan error, 1)
	}
	return g.release[id]
}

func (g *gated) Run(ctx context.Context, spec exec.Spec) (*exec.Result, error) {
	id := spec.Args[0]
	g.mu.Lock()
	g.started[id] = spec
	g.mu.Unlock()
	g.startCh <- id
	select {
	case err := <-g.gate(id):
		if err != nil {
			return &exec.Result{ExitCode: 3, Stderr: []byte("boom")}, err
		}
		if err := os.WriteFile(filepath.Join(spec.OutputDir, "out.txt"), []byte(id), 0o644); err != nil {
			return nil, err
		}
		return &exec.Result{Outputs: []exec.File{{Name: "out.txt", Size: int64(len(id))}}}, nil
	case <-ctx.Done():
		return &exec.Result{ExitCode: -1}, exec.ErrCanceled
	}
}

var quiet = slog.New(slog.DiscardHandler)

type fixedInventory struct{ inv gpu.Inventory }

func (f fixedInventory) Inventory() gpu.Inventory { return f.inv }

func gpus(n int) fixedInventory {
	inv := gpu.Inventory{Source: gpu.SourceNVML, CPU: gpu.CPU{LogicalCores: 8}}
	for i := range n {
		inv.GPUs = append(inv.GPUs, gpu.Device{GPU: gpu.GPU{Index: i, UUID: "GPU-" + string(rune('a'+i)), Name: "A100"}})
	}
	return fixedInventory{inv}
}

// events collects a service's events; next finds one by kind and job, in
// whatever order the jobs' goroutines produced them.
type events struct {
	ch      chan compute.Event
	pending *[]compute.Event
}

func newEvents() events {
	return events{ch: make(chan compute.Event, 64), pending: new([]compute.Event)}
}

func (e events) add(ev compute.Event) { e.ch <- ev }

func (e events) next(t *testing.T, kind compute.EventKind, job string) compute.Event {
	t.Helper()
	match := func(ev compute.Event) bool { return ev.Kind == kind && ev.JobID == job }
	if i := slices.IndexFunc(*e.pending, match); i >= 0 {
		ev := (*e.pending)[i]
		*e.pending = slices.Delete(*e.pending, i, i+1)
		return ev
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-e.ch:
			if match(ev) {
				return ev
			}
			*e.pending = append(*e.pending, ev)
		case <-deadline:
			t.Fatalf("no %s event for %s", kind, job)
		}
	}
}

type memStore struct{}

func (memStore) PutOutputs(_ context.Context, dir string, files []exec.File) (string, error) {
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return "cid-of-" + b.String(), nil
}

func start(t *testing.T, opts ...compute.Option) (*compute.Service, events) {
	t.Helper()
	ev := newEvents()
	s, err := compute.New(append([]compute.Option{compute.WithEvents(ev.add), compute.WithWorkDir(t.TempDir()), compute.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, ev
}

func job(id string, n int) compute.Job {
	return compute.Job{ID: id, Lease: "lease-" + id, Executor: "wasm", GPUs: n, Spec: exec.Spec{Args: []string{id}}}
}

func TestConcurrencyByFreeGPUs(t *testing.T) {
	g := newGated()
	s, ev := start(t, compute.WithExecutors(g), compute.WithInventory(gpus(2)), compute.WithOutputStore(memStore{}))
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Submit(job(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := ev.next(t, compute.EventStarted, "a"), ev.next(t, compute.EventStarted, "b")
	if len(a.Devices) != 1 || len(b.Devices) != 1 || a.Devices[0] == b.Devices[0] {
		t.Fatalf("devices %v and %v; want one distinct GPU each", a.Devices, b.Devices)
	}
	seen := map[string]bool{<-g.startCh: true, <-g.startCh: true}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("executor started %v; want a and b", seen)
	}
	hw := s.Hardware()
	if hw.FreeGPUs != 0 || hw.Running != 2 || hw.Queued != 1 {
		t.Fatalf("hardware %+v; want 0 free, 2 running, 1 queued", hw)
	}
	if hw.GPUs[0].Lease == "" || hw.GPUs[1].Lease == "" {
		t.Fatalf("GPU allocation not shown: %+v", hw.GPUs)
	}
	g.mu.Lock()
	if got := g.started["a"].Devices; !slices.Equal(got, a.Devices) {
		t.Errorf("spec devices %v; want %v", got, a.Devices)
	}
	g.mu.Unlock()

	g.gate("a") <- nil
	fin := ev.next(t, compute.EventFinished, "a")
	rc := fin.Receipt
	if !rc.OK || rc.OutputCID != "cid-of-a" || len(rc.Outputs) != 1 || rc.Executor != "wasm" || rc.Lease != "lease-a" {
		t.Fatalf("receipt %+v", rc)
	}
	if rc.OutputDir != "" {
		t.Errorf("output dir %q kept after storing", rc.OutputDir)
	}
	c := ev.next(t, compute.EventStarted, "c")
	if !slices.Equal(c.Devices, a.Devices) {
		t.Fatalf("c got %v; want a's freed GPU %v", c.Devices, a.Devices)
	}
	g.gate("b") <- errors.New("exploded")
	rc = ev.next(t, compute.EventFinished, "b").Receipt
	if rc.OK || rc.ExitCode != 3 || !strings.Contains(rc.Error, "exploded") || rc.Stderr != "boom" {
		t.Fatalf("failed receipt %+v", rc)
	}
	g.gate("c") <- nil
	ev.next(t, compute.EventFinished, "c")
	if hw := s.Hardware(); hw.FreeGPUs != 2 || hw.Running != 0 {
		t.Fatalf("after all jobs: %+v", hw)
	}
}

func TestSubmitRefusals(t *testing.T) {
	g := newGated()
	s, ev := start(t, compute.WithExecutors(g), compute.WithInventory(gpus(1)), compute.WithQueueSize(1))
	if err := s.Submit(job("big", 2)); !errors.Is(err, compute.ErrTooManyGPUs) {
		t.Errorf("2 GPUs on a 1-GPU node: %v", err)
	}
	j := job("x", 0)
	j.Executor = "process"
	if err := s.Submit(j); !errors.Is(err, compute.ErrUnknownExecutor) {
		t.Errorf("unknown executor: %v", err)
	}
	if err := s.Submit(job("run", 1)); err != nil {
		t.Fatal(err)
	}
	ev.next(t, compute.EventStarted, "run")
	if err := s.Submit(job("run", 1)); !errors.Is(err, compute.ErrDuplicateJob) {
		t.Errorf("duplicate: %v", err)
	}
	if err := s.Submit(job("wait", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Submit(job("overflow", 1)); !errors.Is(err, compute.ErrQueueFull) {
		t.Errorf("queue of 1 holding 1: %v", err)
	}
	if jobs := s.Jobs(); len(jobs) != 2 || jobs[0].State != "running" || jobs[1].ID != "wait" {
		t.Fatalf("jobs %+v", jobs)
	}
	// Cancel the queued job, then the running one.
	if err := s.Cancel("wait"); err != nil {
		t.Fatal(err)
	}
	if rc := ev.next(t, compute.EventFinished, "wait").Receipt; rc.OK || rc.Error == "" {
		t.Fatalf("canceled queued job receipt %+v", rc)
	}
	if err := s.Cancel("run"); err != nil {
		t.Fatal(err)
	}
	if rc := ev.next(t, compute.EventFinished, "run").Receipt; rc.OK || !strings.Contains(rc.Error, "canceled") {
		t.Fatalf("canceled running job receipt %+v", rc)
	}
	if err := s.Cancel("nope"); !errors.Is(err, compute.ErrUnknownJob) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestStopCancelsRunningJobs(t *testing.T) {
	g := newGated()
	ev := newEvents()
	s, err := compute.New(compute.WithExecutors(g), compute.WithEvents(ev.add), compute.WithWorkDir(t.TempDir()), compute.WithCPUSlots(1), compute.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	_ = s.Submit(job("r", 0))
	_ = s.Submit(job("q", 0)) // waits: one CPU slot
	ev.next(t, compute.EventStarted, "r")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if rc := ev.next(t, compute.EventFinished, "r").Receipt; rc.OK {
		t.Fatal("running job succeeded after stop")
	}
	if rc := ev.next(t, compute.EventFinished, "q").Receipt; rc.OK || rc.Error != "node stopping" {
		t.Fatalf("queued job receipt %+v", rc)
	}
	if err := s.Submit(job("late", 0)); !errors.Is(err, compute.ErrStopped) {
		t.Fatalf("submit after stop: %v", err)
	}
}

// With the real process executor: a job's receipt lists its outputs and the
// GPU it was pinned to; Runtimes lists the allowlist.
func TestProcessJobEndToEnd(t *testing.T) {
	pe, err := process.New(process.WithWorkDir(t.TempDir()), process.WithLogger(quiet), process.WithRuntimes(process.Runtime{
		Name: "sh-echo", Command: []string{"/bin/sh", "-c", `echo "$CUDA_VISIBLE_DEVICES" > "$GPUNODE_OUTPUT_DIR/gpus.txt"`},
		Description: "test runtime",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s, ev := start(t, compute.WithExecutors(pe), compute.WithInventory(gpus(3)))
	if rs := s.Runtimes(); len(rs) != 1 || rs[0].Name != "sh-echo" {
		t.Fatalf("runtimes %+v", rs)
	}
	if err := s.Submit(compute.Job{ID: "p1", Lease: "L", Executor: "process", GPUs: 2, Spec: exec.Spec{Runtime: "sh-echo"}}); err != nil {
		t.Fatal(err)
	}
	rc := ev.next(t, compute.EventFinished, "p1").Receipt
	if !rc.OK || len(rc.Outputs) != 1 || rc.Runtime != "sh-echo" || len(rc.Devices) != 2 {
		t.Fatalf("receipt %+v", rc)
	}
	b, err := os.ReadFile(filepath.Join(rc.OutputDir, "gpus.txt"))
	if err != nil || strings.TrimSpace(string(b)) != strings.Join(rc.Devices, ",") {
		t.Fatalf("program saw GPUs %q (err %v); want %v", b, err, rc.Devices)
	}
}
