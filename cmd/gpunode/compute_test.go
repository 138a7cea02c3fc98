package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/compute"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/gpu"
)

func TestPrintHardware(t *testing.T) {
	cpu := gpu.CPU{Model: "Test CPU", LogicalCores: 8, MemoryBytes: 16 << 30}
	var b bytes.Buffer
	if err := printHardware(&b, compute.Hardware{Source: gpu.SourceOS, Note: "gpu: NVML unavailable: ERROR_LIBRARY_NOT_FOUND",
		CPU: cpu, GPUs: []compute.GPUStatus{}, Executors: []string{"process", "wasm"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Test CPU, 8 logical cores, 16.0 GiB memory", "No NVIDIA GPU or driver found", "ERROR_LIBRARY_NOT_FOUND", "process, wasm"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no-GPU output lacks %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	dev := func(i int, uuid string) gpu.Device {
		return gpu.Device{GPU: gpu.GPU{Index: i, UUID: uuid, Name: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30,
			ComputeCapability: "8.0", PCIeGen: 4, PCIeWidth: 16, PowerLimitMilliwatts: 400000},
			Telemetry: gpu.Telemetry{UtilizationPercent: 37, MemoryUsedBytes: 1 << 30, TemperatureC: 41, PowerMilliwatts: 123000, SMClockMHz: 1410}}
	}
	if err := printHardware(&b, compute.Hardware{Source: gpu.SourceNVML, Driver: "550.54", CPU: cpu, FreeGPUs: 1,
		GPUs: []compute.GPUStatus{{Device: dev(0, "GPU-aaa"), Lease: "lease-7", Job: "seg-3"}, {Device: dev(1, "GPU-bbb")}}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"NVIDIA 550.54", "2, 1 free", "A100-SXM4-40GB", "40.0 GiB", "gen4 x16", "37%", "41 C", "123 W / 400 W", "1410 MHz", "lease-7", "seg-3", "GPU-bbb"} {
		if !strings.Contains(out, want) {
			t.Errorf("GPU output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "No NVIDIA GPU") {
		t.Errorf("GPU output says there is no GPU:\n%s", out)
	}
}

func TestPrintRuntimes(t *testing.T) {
	var b bytes.Buffer
	if err := printRuntimes(&b, nil); err != nil || !strings.Contains(b.String(), "No runtimes allowlisted") {
		t.Errorf("empty allowlist output = %q, %v", b.String(), err)
	}
	b.Reset()
	rts := []process.Runtime{{Name: "cuda", Command: []string{"/opt/m", "{in}", "{args}"}, Env: map[string]string{"TOKEN": "secret", "A": "1"}, Description: "matmul"}}
	if err := printRuntimes(&b, rts); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"cuda", "/opt/m {in} {args}", "A,TOKEN", "matmul"} {
		if !strings.Contains(out, want) {
			t.Errorf("runtimes output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("the table shows an env value:\n%s", out)
	}
}

func TestBytesIEC(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 40 << 30: "40.0 GiB", 1536 << 20: "1.5 GiB"} {
		if got := bytesIEC(n); got != want {
			t.Errorf("bytesIEC(%d) = %q, want %q", n, got, want)
		}
	}
}
