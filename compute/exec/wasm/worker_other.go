//go:build !linux

package wasm

import (
	osexec "os/exec"
	"time"
)

func setWorkerAttrs(*osexec.Cmd) {}

// processCPU is unknown here.
func processCPU() time.Duration { return 0 }
