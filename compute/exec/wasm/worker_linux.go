package wasm

import (
	osexec "os/exec"
	"syscall"
)

// setWorkerAttrs makes a worker die with the node.
func setWorkerAttrs(cmd *osexec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
