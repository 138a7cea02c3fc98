//go:build unix

package ledger

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process used so far. The
// benchmark reports throughput per CPU second too, which stays meaningful on
// a machine shared with other work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
