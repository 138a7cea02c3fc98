//go:build !cgo

package gpu_test

import (
	"errors"
	"testing"

	"github.com/gpunode/gpunode/compute/gpu"
)

func TestNoCgoDetector(t *testing.T) {
	m, err := gpu.NewMonitor(gpu.NewSystemDetector())
	if err != nil {
		t.Fatal(err)
	}
	inv := m.Poll()
	if inv.Source != gpu.SourceOS || len(inv.GPUs) != 0 || inv.CPU.LogicalCores < 1 {
		t.Fatalf("inventory %+v; want CPU only", inv)
	}
	if _, err := gpu.NewSystemDetector().Devices(); !errors.Is(err, gpu.ErrUnavailable) {
		t.Fatalf("Devices error %v; want ErrUnavailable", err)
	}
}
