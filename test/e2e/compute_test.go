package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type hardwareJSON struct {
	Source string `json:"source"`
	Note   string `json:"note"`
	CPU    struct {
		Model        string `json:"model"`
		LogicalCores int    `json:"logicalCores"`
		MemoryBytes  uint64 `json:"memoryBytes"`
	} `json:"cpu"`
	GPUs []struct {
		Index int    `json:"index"`
		UUID  string `json:"uuid"`
		Name  string `json:"name"`
	} `json:"gpus"`
	FreeGPUs  int      `json:"freeGpus"`
	Executors []string `json:"executors"`
}

type runtimeJSON struct {
	Name        string            `json:"name"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env"`
	Description string            `json:"description"`
}

// TestGPUsAndRuntimes: a running provider answers `gpunode gpus` and
// `gpunode runtimes`, as JSON and as text, with its hardware (whatever this
// machine has: GPUs through NVML, or CPU and memory with the reason) and
// the allowlist from its runtimes.toml.
func TestGPUsAndRuntimes(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	mustGpunode(t, "init", "--home", home, "--network", "e2e")
	const toml = `[runtimes.echo]
command = ["/bin/echo", "{args}"]
description = "prints its arguments"
env = { LANG = "C" }
`
	if err := os.WriteFile(filepath.Join(home, "runtimes.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, home, "--role", "provider")

	out := mustGpunode(t, "gpus", "--home", home, "--json")
	var hw hardwareJSON
	if err := json.Unmarshal([]byte(out), &hw); err != nil {
		t.Fatalf("gpus --json: %v\n%s", err, out)
	}
	if hw.CPU.LogicalCores < 1 || hw.CPU.MemoryBytes == 0 {
		t.Errorf("CPU inventory = %+v, want cores and memory", hw.CPU)
	}
	if !contains(hw.Executors, "wasm") || !contains(hw.Executors, "process") {
		t.Errorf("executors = %v, want wasm and process", hw.Executors)
	}
	text := mustGpunode(t, "gpus", "--home", home)
	switch hw.Source {
	case "os":
		if len(hw.GPUs) != 0 || hw.Note == "" {
			t.Errorf("no-driver inventory = %d GPUs, note %q; want none, with the reason", len(hw.GPUs), hw.Note)
		}
		if !strings.Contains(text, "No NVIDIA GPU or driver found") {
			t.Errorf("gpus text does not say no GPU was found:\n%s", text)
		}
		if !strings.Contains(d.logs.String(), "no GPU support") {
			t.Errorf("daemon log does not say it runs without GPUs:\n%s", d.logs.String())
		}
	case "nvml":
		for _, g := range hw.GPUs {
			if !strings.Contains(text, g.UUID) {
				t.Errorf("gpus text lacks GPU %s:\n%s", g.UUID, text)
			}
		}
	default:
		t.Errorf("source = %q, want os or nvml", hw.Source)
	}

	out = mustGpunode(t, "runtimes", "--home", home, "--json")
	var rts []runtimeJSON
	if err := json.Unmarshal([]byte(out), &rts); err != nil {
		t.Fatalf("runtimes --json: %v\n%s", err, out)
	}
	if len(rts) != 1 || rts[0].Name != "echo" || strings.Join(rts[0].Command, " ") != "/bin/echo {args}" ||
		rts[0].Env["LANG"] != "C" || rts[0].Description != "prints its arguments" {
		t.Errorf("runtimes = %+v, want the echo runtime of runtimes.toml", rts)
	}
	text = mustGpunode(t, "runtimes", "--home", home)
	for _, want := range []string{"NAME", "echo", "/bin/echo {args}", "prints its arguments"} {
		if !strings.Contains(text, want) {
			t.Errorf("runtimes text lacks %q:\n%s", want, text)
		}
	}
	d.stop(t)

	// A bad allowlist keeps the daemon from starting, and says why.
	if err := os.WriteFile(filepath.Join(home, "runtimes.toml"), []byte("[runtimes.x]\ncommand = [\"sh\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := gpunode(t, "run", "--home", home, "--listen", "/ip4/127.0.0.1/tcp/0", "--api-listen", "127.0.0.1:0"); err == nil ||
		!strings.Contains(err.Error(), "runtimes.toml") {
		t.Errorf("gpunode run with a bad runtimes.toml = %v, want a failure naming the file", err)
	}
}
