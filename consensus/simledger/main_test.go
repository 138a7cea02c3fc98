package simledger

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestMain trades memory for speed: every block copies the ledger's shard
// tables (copy-on-write), which makes much short-lived garbage, and the
// suite must stay fast under -race on two cores.
func TestMain(m *testing.M) {
	debug.SetGCPercent(800)
	os.Exit(m.Run())
}
