//go:build cgo

package node

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/compute"
	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/gpu"
)

// a100s is go-nvml's 8x A100 mock with the telemetry queries the mock
// leaves out answered (device i at 10+i % utilisation, 30+i degrees).
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
		dev.GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 1410, nvml.SUCCESS }
		dev.GetMaxPcieLinkGenerationFunc = func() (int, nvml.Return) { return 4, nvml.SUCCESS }
		dev.GetMaxPcieLinkWidthFunc = func() (int, nvml.Return) { return 16, nvml.SUCCESS }
	}
	return s
}

// TestDaemonComputeA100s: with the dgxa100 mock as the detector, the
// daemon serves 8 A100s with telemetry, lists its runtimes.toml, runs an
// allowlisted job on 2 pinned GPUs with its events on the API stream and
// the allocation visible in /gpus while it runs, and answers a hardware
// challenge as a provider.
func TestDaemonComputeA100s(t *testing.T) {
	withDetector(t, func() gpu.Detector { return gpu.NewNVMLDetector(a100s(), 0) })
	gate := filepath.Join(t.TempDir(), "go")
	const toml = `
[runtimes.pinned]
command = ["/bin/sh", "-c", "echo \"$CUDA_VISIBLE_DEVICES\" > {out}/devices; while [ ! -e \"$1\" ]; do sleep 0.01; done", "sh", "{args}"]
description = "reports its GPUs, then waits for the test"
env = { GREETING = "hi" }
`
	d, c := startTestDaemon(t, toml, RoleProvider)

	hw := getHardware(t, c)
	if hw.Source != gpu.SourceNVML || len(hw.GPUs) != 8 || hw.FreeGPUs != 8 || hw.Driver == "" {
		t.Fatalf("hardware = source %q driver %q, %d GPUs, %d free; want nvml, 8 A100s all free",
			hw.Source, hw.Driver, len(hw.GPUs), hw.FreeGPUs)
	}
	for i, g := range hw.GPUs {
		if g.Index != i || !strings.Contains(g.Name, "A100") || g.UUID == "" || g.MemoryBytes == 0 {
			t.Errorf("GPU %d = %+v, want A100 number %d with UUID and memory", i, g.GPU, i)
		}
		if g.Telemetry.UtilizationPercent != 10+uint32(i) || g.Telemetry.TemperatureC != 30+uint32(i) || g.Telemetry.PowerMilliwatts == 0 {
			t.Errorf("GPU %d telemetry = %+v, want the mock's", i, g.Telemetry)
		}
	}

	var rts []process.Runtime
	if err := c.Do(t.Context(), http.MethodGet, "/runtimes", nil, &rts); err != nil {
		t.Fatal(err)
	}
	if len(rts) != 1 || rts[0].Name != "pinned" || rts[0].Command[0] != "/bin/sh" || rts[0].Env["GREETING"] != "hi" {
		t.Fatalf("runtimes = %+v, want the one in runtimes.toml", rts)
	}
	// The allowlist may hold secrets in env: no token, no answer.
	anon, err := api.NewClient(c.BaseURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	var apiErr *api.Error
	if err := anon.Do(t.Context(), http.MethodGet, "/runtimes", nil, &rts); !asAPIError(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("GET /runtimes without token = %v, want 401", err)
	}

	evs, err := c.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Compute().Submit(compute.Job{ID: "seg-1", Lease: "lease-1", Executor: process.Name, GPUs: 2,
		Spec: exec.Spec{Runtime: "pinned", Args: []string{gate}}}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, evs, EventComputePrefix+string(compute.EventStarted), func(b json.RawMessage) bool {
		var ev compute.Event
		return json.Unmarshal(b, &ev) == nil && ev.JobID == "seg-1" && len(ev.Devices) == 2
	})
	hw = getHardware(t, c)
	var held []int
	for _, g := range hw.GPUs {
		if g.Job == "seg-1" && g.Lease == "lease-1" {
			held = append(held, g.Index)
		}
	}
	if !slices.Equal(held, []int{0, 1}) || hw.FreeGPUs != 6 || hw.Running != 1 {
		t.Errorf("while running: GPUs held by the job %v, %d free, %d running; want [0 1], 6, 1", held, hw.FreeGPUs, hw.Running)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := waitEvent(t, evs, EventComputePrefix+string(compute.EventFinished), func(b json.RawMessage) bool {
		var ev compute.Event
		return json.Unmarshal(b, &ev) == nil && ev.JobID == "seg-1"
	})
	var fin compute.Event
	if err := json.Unmarshal(data, &fin); err != nil {
		t.Fatal(err)
	}
	if fin.Receipt == nil || !fin.Receipt.OK || fin.Receipt.Runtime != "pinned" || len(fin.Receipt.Outputs) != 1 {
		t.Fatalf("receipt = %+v, want a successful run of pinned with one output", fin.Receipt)
	}
	devs, err := os.ReadFile(filepath.Join(fin.Receipt.OutputDir, "devices"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(devs)), hw.GPUs[0].UUID+","+hw.GPUs[1].UUID; got != want {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want %q", got, want)
	}
	if hw := getHardware(t, c); hw.FreeGPUs != 8 || hw.Running != 0 {
		t.Errorf("after the job: %d free, %d running; want 8, 0", hw.FreeGPUs, hw.Running)
	}

	res, err := challenge(t, d)
	if err != nil {
		t.Fatalf("challenge against a provider: %v", err)
	}
	if res.Err != nil || res.Attestation.Verdict != "pass" {
		t.Errorf("challenge verdict %q (%v), want pass", res.Attestation.Verdict, res.Err)
	}
}

func asAPIError(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}
