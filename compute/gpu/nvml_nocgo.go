//go:build !cgo

package gpu

import "fmt"

// NewSystemDetector, in a binary built without cgo, cannot load NVML: its
// Devices always reports ErrUnavailable and the node offers CPU only.
func NewSystemDetector() Detector { return noNVML{} }

type noNVML struct{}

func (noNVML) Devices() ([]Device, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrUnavailable)
}

func (noNVML) Driver() string { return "" }
