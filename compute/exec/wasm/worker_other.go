//go:build !linux

package wasm

import osexec "os/exec"

func setWorkerAttrs(*osexec.Cmd) {}
