//go:build cgo

package gpu_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/gpunode/gpunode/compute/gpu"
)

// a100s is go-nvml's 8x A100 mock with the telemetry queries the mock leaves
// out filled in (device i reports i% utilisation, 30+i degrees, ...).
func a100s() *dgxa100.Server {
	s := dgxa100.New()
	for i, d := range s.Devices {
		dev := d.(*dgxa100.Device)
		i := uint32(i)
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 10 + i, Memory: 5 + i}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 30 + i, nvml.SUCCESS }
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 100000 + i*1000, nvml.SUCCESS }
		dev.GetPowerManagementLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
		dev.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_SM {
				return 1410, nvml.SUCCESS
			}
			return 1215, nvml.SUCCESS
		}
		dev.GetMaxPcieLinkGenerationFunc = func() (int, nvml.Return) { return 4, nvml.SUCCESS }
		dev.GetMaxPcieLinkWidthFunc = func() (int, nvml.Return) { return 16, nvml.SUCCESS }
	}
	return s
}

// flaky wraps an nvml.Interface: devices in lost answer ERROR_GPU_IS_LOST,
// and initErr (if set) makes Init fail.
type flaky struct {
	nvml.Interface
	mu      sync.Mutex
	lost    map[int]bool
	initErr nvml.Return
	inits   int
}

func (f *flaky) Init() nvml.Return {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inits++
	if f.initErr != 0 {
		return f.initErr
	}
	return f.Interface.Init()
}

func (f *flaky) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost[i] {
		return nil, nvml.ERROR_GPU_IS_LOST
	}
	return f.Interface.DeviceGetHandleByIndex(i)
}

func (f *flaky) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newMonitor(t *testing.T, det gpu.Detector, log *bytes.Buffer, opts ...gpu.Option) *gpu.Monitor {
	t.Helper()
	base := []gpu.Option{
		gpu.WithClock(fixedClock{t0}),
		gpu.WithCPU(gpu.CPU{Model: "test cpu", LogicalCores: 4, MemoryBytes: 8 << 30}),
		gpu.WithLogger(slog.New(slog.NewTextHandler(log, nil))),
	}
	m, err := gpu.NewMonitor(det, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDGXA100Inventory(t *testing.T) {
	var log bytes.Buffer
	m := newMonitor(t, gpu.NewNVMLDetector(a100s(), 0), &log)
	inv := m.Poll()
	if inv.Source != gpu.SourceNVML || inv.Note != "" || inv.Driver == "" {
		t.Fatalf("source %q note %q driver %q; want nvml, no note, a driver", inv.Source, inv.Note, inv.Driver)
	}
	if len(inv.GPUs) != 8 {
		t.Fatalf("%d GPUs; want 8", len(inv.GPUs))
	}
	uuids := map[string]bool{}
	for i, d := range inv.GPUs {
		if d.Index != i || !strings.Contains(d.Name, "A100") || d.MemoryBytes != 40<<30 || d.ComputeCapability != "8.0" {
			t.Errorf("gpu %d = %+v; want an A100 40GB, compute 8.0", i, d.GPU)
		}
		if d.PCIeGen != 4 || d.PCIeWidth != 16 || d.PowerLimitMilliwatts != 400000 {
			t.Errorf("gpu %d PCIe/power = %d x%d %dmW", i, d.PCIeGen, d.PCIeWidth, d.PowerLimitMilliwatts)
		}
		want := gpu.Telemetry{UtilizationPercent: 10 + uint32(i), MemoryUtilizationPercent: 5 + uint32(i), TemperatureC: 30 + uint32(i),
			PowerMilliwatts: 100000 + uint32(i)*1000, SMClockMHz: 1410, MemoryClockMHz: 1215}
		if d.Telemetry != want {
			t.Errorf("gpu %d telemetry = %+v; want %+v", i, d.Telemetry, want)
		}
		uuids[d.UUID] = true
	}
	if len(uuids) != 8 {
		t.Fatalf("UUIDs not distinct: %v", uuids)
	}
	if !inv.Updated.Equal(t0) {
		t.Fatalf("updated %v; want the injected clock's %v", inv.Updated, t0)
	}
	if got := strings.Count(log.String(), "GPU found"); got != 8 {
		t.Fatalf("logged %d GPUs found; want 8:\n%s", got, log.String())
	}
}

func TestDeviceVanishesAndReturns(t *testing.T) {
	var log bytes.Buffer
	lib := &flaky{Interface: a100s(), lost: map[int]bool{}}
	var changes []gpu.Change
	m := newMonitor(t, gpu.NewNVMLDetector(lib, 100), &log, gpu.WithOnChange(func(c gpu.Change) { changes = append(changes, c) }))
	before := m.Poll()
	lostUUID := before.GPUs[3].UUID

	lib.set(func() { lib.lost[3] = true })
	inv := m.Poll()
	if len(inv.GPUs) != 7 {
		t.Fatalf("%d GPUs after losing one; want 7", len(inv.GPUs))
	}
	if _, ok := inv.GPU(lostUUID); ok {
		t.Fatal("lost GPU still in inventory")
	}
	if !strings.Contains(inv.Note, "GPU_IS_LOST") && !strings.Contains(inv.Note, "lost") {
		t.Errorf("note %q does not say a GPU was lost", inv.Note)
	}
	if len(changes) != 1 || len(changes[0].Removed) != 1 || changes[0].Removed[0].UUID != lostUUID {
		t.Fatalf("changes = %+v; want GPU 3 removed", changes)
	}
	if !strings.Contains(log.String(), "GPU vanished") {
		t.Errorf("log lacks the vanished GPU:\n%s", log.String())
	}

	initsBefore := lib.inits
	lib.set(func() { lib.lost[3] = false })
	inv = m.Poll()
	if lib.inits == initsBefore {
		t.Error("NVML was not re-initialised after a device was lost")
	}
	if len(inv.GPUs) != 8 || inv.Note != "" {
		t.Fatalf("after recovery: %d GPUs, note %q; want 8 and none", len(inv.GPUs), inv.Note)
	}
	if len(changes) != 2 || len(changes[1].Added) != 1 || changes[1].Added[0].UUID != lostUUID {
		t.Fatalf("changes = %+v; want GPU 3 added back", changes)
	}
}

func TestNoDriverFallsBackToCPU(t *testing.T) {
	var log bytes.Buffer
	lib := &flaky{Interface: a100s(), initErr: nvml.ERROR_LIBRARY_NOT_FOUND}
	m := newMonitor(t, gpu.NewNVMLDetector(lib, 0), &log)
	for range 3 {
		inv := m.Poll()
		if inv.Source != gpu.SourceOS || len(inv.GPUs) != 0 || inv.CPU.LogicalCores != 4 || inv.CPU.MemoryBytes != 8<<30 {
			t.Fatalf("inventory %+v; want OS source, no GPUs, the CPU", inv)
		}
		if !strings.Contains(inv.Note, "NVML unavailable") {
			t.Fatalf("note %q", inv.Note)
		}
	}
	if n := strings.Count(log.String(), "no GPU support"); n != 1 {
		t.Fatalf("said %d times that there is no GPU support; want once:\n%s", n, log.String())
	}
	// The driver gets installed: the next poll finds the GPUs.
	lib.set(func() { lib.initErr = 0 })
	if inv := m.Poll(); inv.Source != gpu.SourceNVML || len(inv.GPUs) != 8 {
		t.Fatalf("after the driver appeared: %s with %d GPUs", inv.Source, len(inv.GPUs))
	}
}

// On this machine (no NVIDIA driver in CI) the real detector reports
// ErrUnavailable; on a machine with GPUs it lists them. Either way, no panic
// and the monitor runs.
func TestSystemDetector(t *testing.T) {
	det := gpu.NewSystemDetector()
	devs, err := det.Devices()
	if err != nil && !errors.Is(err, gpu.ErrUnavailable) {
		t.Fatalf("Devices error %v; want nil or ErrUnavailable", err)
	}
	for _, d := range devs {
		if d.UUID == "" {
			t.Errorf("device without UUID: %+v", d)
		}
	}
	var log bytes.Buffer
	m := newMonitor(t, det, &log)
	inv := m.Inventory()
	if (err != nil) != (inv.Source == gpu.SourceOS) {
		t.Fatalf("inventory source %q with detector error %v", inv.Source, err)
	}
}

// A binding that panics (a mock missing a query) is reported, not fatal.
func TestPanickingBindingIsAnError(t *testing.T) {
	det := gpu.NewNVMLDetector(dgxa100.New(), 0) // telemetry funcs unset: the mock panics
	devs, err := det.Devices()
	if err == nil || devs != nil {
		t.Fatalf("Devices = %d devices, %v; want an error", len(devs), err)
	}
}
