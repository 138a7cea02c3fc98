package simledger

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestMain trades memory for speed: the simulated nodes make much
// short-lived garbage (messages, CBOR, signatures, per-block states), and
// the suite must stay fast under -race on two cores (with the default GC
// target it took about 1.6 times as long).
func TestMain(m *testing.M) {
	debug.SetGCPercent(800)
	os.Exit(m.Run())
}
