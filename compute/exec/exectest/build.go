package exectest

import (
	"fmt"
	"go/build"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestProgram is the import path of the conformance program.
const TestProgram = "github.com/gpunode/gpunode/compute/exec/exectest/testprog"

var builds struct {
	sync.Mutex // guards dir and done
	dir        string
	done       map[string]string
}

// Build compiles the Go package pkg for goos/goarch (for example "wasip1",
// "wasm") once per test binary and returns the path of the result. Call
// Cleanup from TestMain to remove the build directory.
func Build(tb testing.TB, pkg, goos, goarch string) string {
	tb.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := pkg + " " + goos + "/" + goarch
	if p, ok := builds.done[key]; ok {
		return p
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "gpunode-exectest-")
		if err != nil {
			tb.Fatal(err)
		}
		// Other users (a process executor dropping privileges) must be able
		// to run what is built here.
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		builds.dir = d
		builds.done = map[string]string{}
	}
	out := filepath.Join(builds.dir, fmt.Sprintf("%s-%s-%d", filepath.Base(pkg), goos+goarch, len(builds.done)))
	cmd := osexec.Command(goTool(), "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s for %s/%s: %v\n%s", pkg, goos, goarch, err, b)
	}
	builds.done[key] = out
	return out
}

// Cleanup removes what Build made. Call it from TestMain after m.Run.
func Cleanup() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir = ""
		builds.done = nil
	}
}

func goTool() string {
	if p, err := osexec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(build.Default.GOROOT, "bin", "go")
}
