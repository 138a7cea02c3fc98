package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/compute"
	"github.com/gpunode/gpunode/compute/bench"
	"github.com/gpunode/gpunode/compute/exec/process"
	"github.com/gpunode/gpunode/compute/gpu"
	"github.com/gpunode/gpunode/protocol"
)

// noDriver is a machine without the NVIDIA driver.
type noDriver struct{}

func (noDriver) Devices() ([]gpu.Device, error) {
	return nil, fmt.Errorf("%w: ERROR_LIBRARY_NOT_FOUND", gpu.ErrUnavailable)
}
func (noDriver) Driver() string { return "" }

// withDetector makes daemons started by the test use det.
func withDetector(t *testing.T, det func() gpu.Detector) {
	prev := newDetector
	newDetector = det
	t.Cleanup(func() { newDetector = prev })
}

// startTestDaemon starts a daemon on loopback with a fresh home holding
// runtimesTOML as its allowlist (none if empty).
func startTestDaemon(t *testing.T, runtimesTOML string, roles ...Role) (*Daemon, *api.Client) {
	t.Helper()
	home := Home(filepath.Join(t.TempDir(), "home"))
	if err := os.MkdirAll(string(home), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := InitKey(home.KeyFile()); err != nil {
		t.Fatal(err)
	}
	if runtimesTOML != "" {
		if err := os.WriteFile(home.RuntimesFile(), []byte(runtimesTOML), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := StartDaemon(t.Context(), daemonTestConfig(home, roles...))
	if err != nil {
		t.Fatalf("StartDaemon: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	c, err := api.ClientForDataDir(string(home))
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func daemonTestConfig(home Home, roles ...Role) DaemonConfig {
	log := slog.New(slog.DiscardHandler)
	return DaemonConfig{
		Home:      home,
		P2P:       Config{Network: "computetest", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableQUIC: true, Logger: log},
		Roles:     roles,
		APIListen: "127.0.0.1:0",
		Logger:    log,
	}
}

func getHardware(t *testing.T, c *api.Client) compute.Hardware {
	t.Helper()
	var hw compute.Hardware
	if err := c.Do(t.Context(), http.MethodGet, "/gpus", nil, &hw); err != nil {
		t.Fatalf("GET /gpus: %v", err)
	}
	return hw
}

// challengeClass is small so the native kernel answers quickly under the
// race detector; the server answers any size up to its maximum.
var challengeClass = bench.Class{Name: "tiny", N: 32, MaxTime: time.Minute}

// challenge runs a hardware challenge from a fresh loopback node against d.
func challenge(t *testing.T, d *Daemon) (*bench.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key, err := InitKey(filepath.Join(t.TempDir(), KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemonTestConfig("").P2P
	v, err := New(ctx, cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Connect(ctx, d.Node().AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ver := bench.NewVerifier(v.Host(), protocol.StreamProtocol(d.Node().Network(), bench.ProtocolName), key, d.Node().ChainID(),
		bench.WithClasses([]bench.Class{challengeClass}))
	return ver.Challenge(ctx, d.PeerID(), challengeClass.Name)
}

// TestDaemonComputeNoDriver: without the NVIDIA driver the daemon runs
// with CPU inventory, serves it and an empty allowlist, and a node that is
// not a provider does not answer hardware challenges.
func TestDaemonComputeNoDriver(t *testing.T) {
	withDetector(t, func() gpu.Detector { return noDriver{} })
	d, c := startTestDaemon(t, "", RoleRenter)

	hw := getHardware(t, c)
	if hw.Source != gpu.SourceOS || len(hw.GPUs) != 0 || hw.FreeGPUs != 0 {
		t.Errorf("hardware = source %q, %d GPUs, %d free; want os, 0, 0", hw.Source, len(hw.GPUs), hw.FreeGPUs)
	}
	if !strings.Contains(hw.Note, "NVML unavailable") {
		t.Errorf("note = %q, want it to say NVML is unavailable", hw.Note)
	}
	if hw.CPU.LogicalCores < 1 || hw.CPU.Model == "" {
		t.Errorf("CPU inventory = %+v, want cores and a model", hw.CPU)
	}
	if strings.Join(hw.Executors, ",") != "process,wasm" {
		t.Errorf("executors = %v, want process and wasm", hw.Executors)
	}
	var rts []process.Runtime
	if err := c.Do(t.Context(), http.MethodGet, "/runtimes", nil, &rts); err != nil {
		t.Fatal(err)
	}
	if len(rts) != 0 {
		t.Errorf("runtimes without runtimes.toml = %v, want none", rts)
	}
	if d.Compute() == nil {
		t.Fatal("Compute() = nil on a running daemon")
	}
	if _, err := challenge(t, d); err == nil {
		t.Error("a renter-only node answered a hardware challenge")
	}
}

// TestDaemonRefusesBadRuntimes: a malformed allowlist stops the daemon
// from starting, with an error naming the file.
func TestDaemonRefusesBadRuntimes(t *testing.T) {
	withDetector(t, func() gpu.Detector { return noDriver{} })
	for name, toml := range map[string]string{
		"relative program": "[runtimes.x]\ncommand = [\"sh\"]\n",
		"unknown key":      "[runtimes.x]\ncommand = [\"/bin/sh\"]\nuser = \"root\"\n",
		"not toml":         "[runtimes.x\n",
	} {
		t.Run(name, func(t *testing.T) {
			home := Home(filepath.Join(t.TempDir(), "home"))
			if err := os.MkdirAll(string(home), 0o700); err != nil {
				t.Fatal(err)
			}
			if _, err := InitKey(home.KeyFile()); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(home.RuntimesFile(), []byte(toml), 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := StartDaemon(t.Context(), daemonTestConfig(home, RoleProvider))
			if err == nil {
				d.Close()
				t.Fatal("daemon started with a bad runtimes.toml")
			}
			if !errors.Is(err, ErrRuntimes) || !strings.Contains(err.Error(), RuntimesFileName) {
				t.Errorf("error = %v, want ErrRuntimes naming %s", err, RuntimesFileName)
			}
		})
	}
}

// waitEvent reads events until one of type typ satisfies match.
func waitEvent(t *testing.T, evs <-chan api.Event, typ string, match func(json.RawMessage) bool) json.RawMessage {
	t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("event stream ended before %s", typ)
			}
			if ev.Type == typ && (match == nil || match(ev.Data)) {
				return ev.Data
			}
		case <-timeout.C:
			t.Fatalf("no %s event within 60s", typ)
		}
	}
}
