package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/compute"
	"github.com/gpunode/gpunode/compute/bench"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/exec/wasm"
	"github.com/gpunode/gpunode/compute/gpu"
	"github.com/gpunode/gpunode/protocol"
)

// Directories of the compute subsystem inside the home.
const (
	WasmCacheDirName = "wasm-cache" // compiled wasm modules, shared by workers
	WorkDirName      = "work"       // per-run scratch and job output directories
)

// WasmCacheDir is where compiled wasm modules are kept across restarts.
func (h Home) WasmCacheDir() string { return filepath.Join(string(h), WasmCacheDirName) }

// WorkDir is where jobs get their scratch and output directories.
func (h Home) WorkDir() string { return filepath.Join(string(h), WorkDirName) }

// newDetector makes the GPU detector the daemon polls. Tests swap in one
// over go-nvml's mock; it is not an option because only tests need it.
var newDetector = gpu.NewSystemDetector

// gpuPollInterval is how often the daemon refreshes GPU telemetry and
// re-detects devices.
const gpuPollInterval = 5 * time.Second

// Event types the compute subsystem publishes on the API event stream.
const (
	EventComputePrefix = "compute." // + compute.EventKind: compute.queued, compute.started, compute.finished
	EventGPUsChanged   = "gpus.changed"
)

// computeParts is the daemon's compute subsystem: what it started and must
// stop. Fields are set once in startCompute and read-only afterwards.
type computeParts struct {
	detector gpu.Detector
	monitor  *gpu.Monitor
	wasm     *wasm.Executor
	process  *process.Executor
	service  *compute.Service
	serving  bool // the hardware-challenge handler is registered
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the monitor and service goroutines
}

// startCompute starts GPU monitoring, the executors and the job service,
// registers their API routes and, for a provider, serves the hardware
// challenge. A bad runtimes.toml stops the daemon from starting.
func (d *Daemon) startCompute() (err error) {
	home := d.cfg.Home
	rts, err := LoadRuntimes(home.RuntimesFile())
	if err != nil {
		return err
	}
	for _, dir := range []string{home.WasmCacheDir(), home.WorkDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("node: create %s: %w", dir, err)
		}
	}
	c := &computeParts{}
	d.compute = c
	log := d.log.With("subsystem", "compute")

	c.detector = newDetector()
	// The monitor exists before the service it wakes, so the callback reads
	// the service through c once it is set.
	c.monitor, err = gpu.NewMonitor(c.detector,
		gpu.WithInterval(gpuPollInterval),
		gpu.WithLogger(d.log),
		gpu.WithOnChange(func(ch gpu.Change) {
			d.events.Publish(EventGPUsChanged, ch)
			if m := d.marketRef.Load(); m != nil && HasRole(d.cfg.Roles, RoleProvider) {
				pc := d.providerConfig()
				m.SetInventory(pc.Hardware, pc.CPUs, pc.Memory, pc.Prices)
			}
			if c.service != nil {
				c.service.Kick()
			}
		}))
	if err != nil {
		return err
	}
	// First poll now, so the log says at start-up what hardware there is
	// and the API never serves an empty inventory.
	c.monitor.Poll()

	wopts := []wasm.Option{wasm.WithCacheDir(home.WasmCacheDir()), wasm.WithWorkDir(home.WorkDir()), wasm.WithLogger(d.log)}
	if d.cfg.WasmWorker != "" {
		wopts = append(wopts, wasm.WithWorkerCommand(d.cfg.WasmWorker))
	}
	if c.wasm, err = wasm.New(wopts...); err != nil {
		return fmt.Errorf("node: wasm executor: %w", err)
	}
	if c.process, err = process.New(process.WithRuntimes(rts...), process.WithWorkDir(home.WorkDir()), process.WithLogger(d.log)); err != nil {
		return fmt.Errorf("node: process executor: %w", err)
	}
	if len(rts) > 0 && os.Geteuid() == 0 {
		log.Warn("allowlisted runtimes run as root: they can read and change anything on this host", "runtimes", len(rts))
	}
	if c.service, err = compute.New(
		compute.WithExecutors(c.wasm, c.process),
		compute.WithInventory(c.monitor),
		compute.WithWorkDir(home.WorkDir()),
		compute.WithLogger(d.log),
		compute.WithEvents(func(ev compute.Event) { d.events.Publish(EventComputePrefix+string(ev.Kind), ev) }),
	); err != nil {
		return err
	}
	for _, r := range []api.Route{
		{Method: http.MethodGet, Path: "/gpus", Handler: api.JSON(func(*http.Request, struct{}) (compute.Hardware, error) {
			return c.service.Hardware(), nil
		})},
		// Runtime env may hold credentials: token required.
		{Method: http.MethodGet, Path: "/runtimes", Auth: true, Handler: api.JSON(func(*http.Request, struct{}) ([]process.Runtime, error) {
			return c.service.Runtimes(), nil
		})},
	} {
		if err := d.api.Handle(r); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go func() { defer c.wg.Done(); _ = c.monitor.Run(ctx) }()
	go func() { defer c.wg.Done(); _ = c.service.Run(ctx) }()

	if HasRole(d.cfg.Roles, RoleProvider) {
		bench.Serve(d.node.Host(), protocol.StreamProtocol(d.node.Network(), bench.ProtocolName),
			bench.WithServerLogger(d.log))
		c.serving = true
	}
	inv := c.monitor.Inventory()
	log.Info("compute ready", "source", inv.Source, "gpus", len(inv.GPUs), "runtimes", len(rts),
		"challenge", c.serving)
	return nil
}

// Compute is the node's job service (nil before StartDaemon returns).
func (d *Daemon) Compute() *compute.Service {
	if d.compute == nil {
		return nil
	}
	return d.compute.service
}

// closeCompute stops what startCompute started: the challenge handler,
// the service (which cancels running jobs and waits for them), the
// monitor, the executors and the detector.
func (d *Daemon) closeCompute() error {
	c := d.compute
	if c == nil {
		return nil
	}
	if c.serving {
		d.node.RemoveStreamHandler(bench.ProtocolName)
	}
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	var errs []error
	if c.wasm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, c.wasm.Close(ctx))
		cancel()
	}
	if cl, ok := c.detector.(io.Closer); ok {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}
