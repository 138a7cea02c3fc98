package sim

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestMain trades memory for speed: the simulator allocates many short-lived
// events, and the suite must stay fast under -race on two cores.
func TestMain(m *testing.M) {
	debug.SetGCPercent(400)
	os.Exit(m.Run())
}
