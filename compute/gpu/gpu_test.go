package gpu_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gpunode/gpunode/compute/gpu"
)

// fakeDetector reports n GPUs, counting calls.
type fakeDetector struct {
	n     atomic.Int32
	calls atomic.Int32
	err   error
}

func (f *fakeDetector) Devices() ([]gpu.Device, error) {
	f.calls.Add(1)
	var out []gpu.Device
	for i := range int(f.n.Load()) {
		out = append(out, gpu.Device{GPU: gpu.GPU{Index: i, UUID: string(rune('a' + i)), Name: "fake"}})
	}
	return out, f.err
}

func (f *fakeDetector) Driver() string { return "fake" }

type realNow struct{}

func (realNow) Now() time.Time { return time.Now() }

func TestRunPollsOnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		det := &fakeDetector{}
		det.n.Store(2)
		m, err := gpu.NewMonitor(det, gpu.WithInterval(5*time.Second), gpu.WithClock(realNow{}),
			gpu.WithCPU(gpu.CPU{LogicalCores: 1}), gpu.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		if n := len(m.Inventory().GPUs); n != 2 {
			t.Fatalf("%d GPUs at start; want 2", n)
		}
		det.n.Store(1)
		time.Sleep(5 * time.Second) // virtual time inside the bubble
		synctest.Wait()
		inv := m.Inventory()
		if len(inv.GPUs) != 1 || det.calls.Load() != 2 {
			t.Fatalf("after one interval: %d GPUs, %d polls; want 1 and 2", len(inv.GPUs), det.calls.Load())
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestDetectorErrorKeepsNodeRunning(t *testing.T) {
	det := &fakeDetector{err: errors.New("driver hiccup")}
	det.n.Store(1)
	var log bytes.Buffer
	m, err := gpu.NewMonitor(det, gpu.WithCPU(gpu.CPU{LogicalCores: 1}), gpu.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	inv := m.Poll()
	if inv.Source != gpu.SourceNVML || len(inv.GPUs) != 1 || inv.Note != "driver hiccup" {
		t.Fatalf("inventory %+v; want the GPU that answered and the problem noted", inv)
	}
	m.Poll()
	if n := bytes.Count(log.Bytes(), []byte("GPU detection problem")); n != 1 {
		t.Fatalf("logged the same problem %d times; want once", n)
	}
}

func TestAllocator(t *testing.T) {
	devs := make([]gpu.Device, 4)
	for i := range devs {
		devs[i] = gpu.Device{GPU: gpu.GPU{Index: 3 - i, UUID: string(rune('a' + 3 - i)), MemoryBytes: uint64(i) << 30}}
	}
	a := gpu.NewAllocator()
	al, err := a.Allocate("L1", 2, devs, nil)
	if err != nil || len(al.Indices) != 2 || al.Indices[0] != 0 || al.Indices[1] != 1 {
		t.Fatalf("Allocate L1 = %+v, %v; want GPUs 0 and 1", al, err)
	}
	if _, err := a.Allocate("L1", 1, devs, nil); !errors.Is(err, gpu.ErrLeaseExists) {
		t.Fatalf("second allocation for L1: %v; want ErrLeaseExists", err)
	}
	if _, err := a.Allocate("L2", 3, devs, nil); !errors.Is(err, gpu.ErrInsufficient) {
		t.Fatalf("L2 wants 3 of 2 free: %v; want ErrInsufficient", err)
	}
	if a.Free(devs) != 2 {
		t.Fatalf("free = %d; want 2 (a failed allocation takes nothing)", a.Free(devs))
	}
	big := func(d gpu.Device) bool { return d.MemoryBytes >= 1<<30 }
	if al, err := a.Allocate("L3", 1, devs, big); err != nil || al.Indices[0] != 2 {
		t.Fatalf("L3 with filter: %+v, %v; want GPU 2", al, err)
	}
	if owner, ok := a.Owner("c"); !ok || owner != "L3" {
		t.Fatalf("owner of c = %q, %v", owner, ok)
	}
	a.Release("L1")
	a.Release("unknown")
	if got := a.Allocations(); len(got) != 1 || got[0].Lease != "L3" {
		t.Fatalf("allocations = %+v; want only L3", got)
	}
	if al, err := a.Allocate("L4", 0, devs, nil); err != nil || len(al.UUIDs) != 0 {
		t.Fatalf("zero-GPU allocation = %+v, %v", al, err)
	}
}

func TestParseProc(t *testing.T) {
	cpuinfo := []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: other\n")
	if got := gpu.ParseCPUModel(cpuinfo); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Errorf("ParseCPUModel = %q", got)
	}
	for _, c := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"MemTotal:       16384 kB\nMemFree: 1 kB\n", 16384 * 1024, true},
		{"MemFree: 1 kB\n", 0, false},
		{"MemTotal: x kB\n", 0, false},
		{"MemTotal:\n", 0, false},
	} {
		got, ok := gpu.ParseMemTotal([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("ParseMemTotal(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if cpu := gpu.ReadCPU(); cpu.LogicalCores < 1 || cpu.MemoryBytes == 0 {
		t.Errorf("ReadCPU = %+v; want cores and memory from this Linux host", cpu)
	}
}

func FuzzParseMemTotal(f *testing.F) {
	f.Add([]byte("MemTotal:       16384 kB\n"))
	f.Add([]byte("MemTotal: 99999999999999999999 kB"))
	f.Add([]byte(":::"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := gpu.ParseMemTotal(b)
		if !ok && n != 0 {
			t.Fatalf("failed parse returned %d", n)
		}
		gpu.ParseCPUModel(b)
	})
}
