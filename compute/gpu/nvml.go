//go:build cgo

package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVMLDetector reads GPUs through an nvml.Interface: the real library
// (NewSystemDetector) or go-nvml's mocks in tests.
//
// NVML only enumerates devices at Init, so to notice GPUs that appear, the
// detector shuts NVML down and initialises it again every redetect calls,
// and at once after a device was lost or the count changed.
type NVMLDetector struct {
	lib      nvml.Interface
	redetect int

	mu     sync.Mutex // guards the fields below
	inited bool
	calls  int
	count  int
	driver string
	dirty  bool
}

// NewNVMLDetector wraps lib. redetect <= 0 means every 12 calls (a minute at
// the default poll interval).
func NewNVMLDetector(lib nvml.Interface, redetect int) *NVMLDetector {
	if redetect <= 0 {
		redetect = 12
	}
	return &NVMLDetector{lib: lib, redetect: redetect, count: -1}
}

// NewSystemDetector is the machine's NVML. Without the driver its Devices
// returns ErrUnavailable (dlopen fails: ERROR_LIBRARY_NOT_FOUND).
func NewSystemDetector() Detector { return NewNVMLDetector(nvml.New(), 0) }

// Driver implements Detector.
func (d *NVMLDetector) Driver() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.driver
}

// Close shuts NVML down.
func (d *NVMLDetector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inited {
		d.inited = false
		if ret := d.lib.Shutdown(); ret != nvml.SUCCESS {
			return fmt.Errorf("gpu: nvml shutdown: %v", ret)
		}
	}
	return nil
}

// Devices implements Detector.
func (d *NVMLDetector) Devices() (devs []Device, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A misbehaving driver binding must not take the node down.
	defer func() {
		if r := recover(); r != nil {
			devs, err = nil, fmt.Errorf("gpu: nvml panicked: %v", r)
			d.dirty = true
		}
	}()
	d.calls++
	if d.inited && (d.dirty || d.calls%d.redetect == 0) {
		d.lib.Shutdown()
		d.inited = false
	}
	if !d.inited {
		if ret := d.lib.Init(); ret != nvml.SUCCESS {
			d.driver = ""
			if ret == nvml.ERROR_LIBRARY_NOT_FOUND || ret == nvml.ERROR_DRIVER_NOT_LOADED || ret == nvml.ERROR_NO_PERMISSION {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, ret)
			}
			return nil, fmt.Errorf("gpu: nvml init: %v", ret)
		}
		d.inited, d.dirty = true, false
		if v, ret := d.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
			d.driver = v
		}
	}
	n, ret := d.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		d.dirty = true
		return nil, fmt.Errorf("gpu: nvml device count: %v", ret)
	}
	if d.count >= 0 && n != d.count {
		d.dirty = true
	}
	d.count = n
	var errs []error
	for i := range n {
		h, ret := d.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			d.dirty = true
			errs = append(errs, fmt.Errorf("gpu %d: %v", i, ret))
			continue
		}
		dev, err := readDevice(i, h)
		if err != nil {
			d.dirty = true
			errs = append(errs, fmt.Errorf("gpu %d: %w", i, err))
			continue
		}
		devs = append(devs, dev)
	}
	return devs, errors.Join(errs...)
}

// readDevice reads one device. UUID and name are required (a device that
// cannot give them is treated as lost); everything else is best effort
// because older boards and vGPUs lack some queries.
func readDevice(i int, h nvml.Device) (Device, error) {
	var dev Device
	var ret nvml.Return
	if dev.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		return dev, fmt.Errorf("uuid: %v", ret)
	}
	if dev.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		return dev, fmt.Errorf("name: %v", ret)
	}
	dev.Index = i
	if idx, ret := h.GetIndex(); ret == nvml.SUCCESS {
		dev.Index = idx
	}
	if mem, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
		dev.MemoryBytes = mem.Total
		dev.Telemetry.MemoryUsedBytes = mem.Used
	}
	if maj, mnr, ret := h.GetCudaComputeCapability(); ret == nvml.SUCCESS {
		dev.ComputeCapability = FormatCapability(maj, mnr)
	}
	if g, ret := h.GetMaxPcieLinkGeneration(); ret == nvml.SUCCESS {
		dev.PCIeGen = g
	}
	if w, ret := h.GetMaxPcieLinkWidth(); ret == nvml.SUCCESS {
		dev.PCIeWidth = w
	}
	if p, ret := h.GetPowerManagementLimit(); ret == nvml.SUCCESS {
		dev.PowerLimitMilliwatts = p
	}
	if pci, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
		dev.BusID = busID(pci.BusId[:])
	}
	if u, ret := h.GetUtilizationRates(); ret == nvml.SUCCESS {
		dev.Telemetry.UtilizationPercent = u.Gpu
		dev.Telemetry.MemoryUtilizationPercent = u.Memory
	}
	if t, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		dev.Telemetry.TemperatureC = t
	}
	if p, ret := h.GetPowerUsage(); ret == nvml.SUCCESS {
		dev.Telemetry.PowerMilliwatts = p
	}
	if c, ret := h.GetClockInfo(nvml.CLOCK_SM); ret == nvml.SUCCESS {
		dev.Telemetry.SMClockMHz = c
	}
	if c, ret := h.GetClockInfo(nvml.CLOCK_MEM); ret == nvml.SUCCESS {
		dev.Telemetry.MemoryClockMHz = c
	}
	return dev, nil
}

func busID[T ~int8 | ~uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
