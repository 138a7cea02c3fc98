package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ErrUnavailable: NVML cannot be used on this machine (no driver, or a
// binary built without cgo). The node then runs with CPU inventory only.
var ErrUnavailable = errors.New("gpu: NVML unavailable")

// GPU is one device's static description.
type GPU struct {
	Index                int    `json:"index"`
	UUID                 string `json:"uuid"`
	Name                 string `json:"name"`
	MemoryBytes          uint64 `json:"memoryBytes"`
	ComputeCapability    string `json:"computeCapability"` // "8.0"
	PCIeGen              int    `json:"pcieGen,omitempty"`
	PCIeWidth            int    `json:"pcieWidth,omitempty"`
	PowerLimitMilliwatts uint32 `json:"powerLimitMilliwatts,omitempty"`
	BusID                string `json:"busId,omitempty"`
}

// Telemetry is one device's current state. Fields the driver does not
// report are zero.
type Telemetry struct {
	UtilizationPercent       uint32 `json:"utilizationPercent"`
	MemoryUtilizationPercent uint32 `json:"memoryUtilizationPercent"`
	MemoryUsedBytes          uint64 `json:"memoryUsedBytes"`
	TemperatureC             uint32 `json:"temperatureC"`
	PowerMilliwatts          uint32 `json:"powerMilliwatts"`
	SMClockMHz               uint32 `json:"smClockMHz"`
	MemoryClockMHz           uint32 `json:"memoryClockMHz"`
}

// Device is a GPU with its latest telemetry.
type Device struct {
	GPU
	Telemetry Telemetry `json:"telemetry"`
}

// Detector enumerates the GPUs present now. Implementations: NVML (cgo
// builds) and anything tests supply.
type Detector interface {
	// Devices lists the GPUs that answer now, with telemetry. A device that
	// fails is left out (and may be reported in the error of a later call);
	// ErrUnavailable means there is no GPU support at all.
	Devices() ([]Device, error)
	// Driver describes the driver ("" if none).
	Driver() string
}

// Source says where an Inventory's hardware came from.
const (
	SourceNVML = "nvml"
	SourceOS   = "os"
)

// Inventory is the node's hardware as last detected.
type Inventory struct {
	Source  string    `json:"source"`           // SourceNVML or SourceOS
	Driver  string    `json:"driver,omitempty"` // driver version when NVML answers
	Note    string    `json:"note,omitempty"`   // why there are no GPUs, if so
	CPU     CPU       `json:"cpu"`
	GPUs    []Device  `json:"gpus"`
	Updated time.Time `json:"updated"`
}

// GPU returns the device with uuid.
func (inv Inventory) GPU(uuid string) (Device, bool) {
	for _, d := range inv.GPUs {
		if d.UUID == uuid {
			return d, true
		}
	}
	return Device{}, false
}

// Change is what a poll found different from the one before.
type Change struct {
	Added   []GPU
	Removed []GPU
}

// Clock gives the time inventories are stamped with.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

type monitorConfig struct {
	interval time.Duration
	clock    Clock
	logger   *slog.Logger
	onChange func(Change)
	cpu      *CPU
}

// Option configures NewMonitor.
type Option func(*monitorConfig) error

// WithInterval sets the poll interval. Default: 5s.
func WithInterval(d time.Duration) Option {
	return func(c *monitorConfig) error {
		if d <= 0 {
			return errors.New("gpu: interval must be positive")
		}
		c.interval = d
		return nil
	}
}

// WithClock sets the clock. Default: the system clock.
func WithClock(clk Clock) Option {
	return func(c *monitorConfig) error {
		c.clock = clk
		return nil
	}
}

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *monitorConfig) error {
		c.logger = l
		return nil
	}
}

// WithOnChange calls f (from the polling goroutine) when GPUs appear or
// vanish after the first poll. The node uses it to re-announce its offer.
func WithOnChange(f func(Change)) Option {
	return func(c *monitorConfig) error {
		c.onChange = f
		return nil
	}
}

// WithCPU fixes the CPU inventory instead of reading it from the OS.
func WithCPU(cpu CPU) Option {
	return func(c *monitorConfig) error {
		c.cpu = &cpu
		return nil
	}
}

// Monitor polls a Detector and keeps the latest Inventory.
type Monitor struct {
	det      Detector
	cfg      monitorConfig
	log      *slog.Logger
	cpu      CPU
	onChange func(Change)

	mu       sync.Mutex // guards inv, lastNote
	inv      Inventory
	lastNote string
	havePoll bool
}

// NewMonitor makes a monitor over det. Call Poll or Run before reading
// Inventory.
func NewMonitor(det Detector, opts ...Option) (*Monitor, error) {
	cfg := monitorConfig{interval: 5 * time.Second, clock: realClock{}}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if det == nil {
		return nil, errors.New("gpu: nil detector")
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	m := &Monitor{det: det, cfg: cfg, log: cfg.logger.With("subsystem", "gpu"), onChange: cfg.onChange}
	if cfg.cpu != nil {
		m.cpu = *cfg.cpu
	} else {
		m.cpu = ReadCPU()
	}
	return m, nil
}

// Poll detects once, stores and returns the new inventory. Errors never
// stop the node: a detector that fails reports no GPUs, with the reason in
// Inventory.Note, logged when it first appears or changes.
func (m *Monitor) Poll() Inventory {
	devs, err := m.det.Devices()
	now := m.cfg.clock.Now()
	inv := Inventory{Source: SourceNVML, Driver: m.det.Driver(), CPU: m.cpu, GPUs: devs, Updated: now}
	note := ""
	if err != nil {
		note = err.Error()
		if errors.Is(err, ErrUnavailable) {
			inv.Source = SourceOS
			inv.Driver = ""
			inv.GPUs = nil
		}
	}
	if inv.GPUs == nil {
		inv.GPUs = []Device{}
	}
	slices.SortFunc(inv.GPUs, func(a, b Device) int { return a.Index - b.Index })
	inv.Note = note

	m.mu.Lock()
	prev, had := m.inv, m.havePoll
	m.inv, m.havePoll = inv, true
	noteChanged := note != m.lastNote
	m.lastNote = note
	m.mu.Unlock()

	if noteChanged {
		switch {
		case errors.Is(err, ErrUnavailable):
			m.log.Info("no GPU support, offering CPU and memory only", "reason", note, "cpus", m.cpu.LogicalCores, "memory", m.cpu.MemoryBytes)
		case err != nil:
			m.log.Warn("GPU detection problem", "err", note)
		default:
			m.log.Info("GPU detection recovered")
		}
	}
	ch := diff(prev.GPUs, inv.GPUs)
	if !had {
		for _, d := range inv.GPUs {
			m.log.Info("GPU found", "index", d.Index, "name", d.Name, "uuid", d.UUID, "memory", d.MemoryBytes)
		}
	} else {
		for _, g := range ch.Added {
			m.log.Info("GPU appeared", "index", g.Index, "name", g.Name, "uuid", g.UUID)
		}
		for _, g := range ch.Removed {
			m.log.Warn("GPU vanished", "index", g.Index, "name", g.Name, "uuid", g.UUID)
		}
	}
	if m.onChange != nil && had && (len(ch.Added) > 0 || len(ch.Removed) > 0) {
		m.onChange(ch)
	}
	return inv
}

// Inventory returns the latest inventory (polling once if never polled).
func (m *Monitor) Inventory() Inventory {
	m.mu.Lock()
	inv, ok := m.inv, m.havePoll
	m.mu.Unlock()
	if !ok {
		return m.Poll()
	}
	inv.GPUs = slices.Clone(inv.GPUs)
	return inv
}

// Run polls every interval until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	m.Poll()
	t := time.NewTicker(m.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			m.Poll()
		}
	}
}

func diff(prev, cur []Device) Change {
	var ch Change
	had := map[string]bool{}
	for _, d := range prev {
		had[d.UUID] = true
	}
	has := map[string]bool{}
	for _, d := range cur {
		has[d.UUID] = true
		if !had[d.UUID] {
			ch.Added = append(ch.Added, d.GPU)
		}
	}
	for _, d := range prev {
		if !has[d.UUID] {
			ch.Removed = append(ch.Removed, d.GPU)
		}
	}
	return ch
}

// FormatCapability renders a CUDA compute capability.
func FormatCapability(major, minor int) string { return fmt.Sprintf("%d.%d", major, minor) }
