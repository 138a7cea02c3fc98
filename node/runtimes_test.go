package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/compute/exec/process"
)

const exampleRuntimes = `
# The provider's allowlist of native runtimes.
[runtimes.cuda-matmul]
command = ["/opt/gpunode/matmul", "--in", "{in}", "--out", "{out}", "{args}"]
description = "CUDA matrix multiply"
env = { OMP_NUM_THREADS = "4" }

[runtimes.py]
command = ["/usr/bin/python3", "{in}/main.py"]
`

func TestParseRuntimes(t *testing.T) {
	rts, err := ParseRuntimes([]byte(exampleRuntimes))
	if err != nil {
		t.Fatal(err)
	}
	if len(rts) != 2 || rts[0].Name != "cuda-matmul" || rts[1].Name != "py" {
		t.Fatalf("runtimes = %+v, want cuda-matmul then py", rts)
	}
	m := rts[0]
	if strings.Join(m.Command, " ") != "/opt/gpunode/matmul --in {in} --out {out} {args}" ||
		m.Env["OMP_NUM_THREADS"] != "4" || m.Description != "CUDA matrix multiply" {
		t.Errorf("cuda-matmul = %+v", m)
	}
	if _, err := process.New(process.WithRuntimes(rts...)); err != nil {
		t.Errorf("process executor refuses parsed runtimes: %v", err)
	}
	if rts, err := ParseRuntimes(nil); err != nil || len(rts) != 0 {
		t.Errorf("empty file = %v, %v; want no runtimes", rts, err)
	}
}

func TestParseRuntimesRejects(t *testing.T) {
	for name, in := range map[string]string{
		"relative program": `[runtimes.a]` + "\n" + `command = ["python3"]`,
		"empty command":    `[runtimes.a]` + "\n" + `command = []`,
		"no command":       `[runtimes.a]` + "\n" + `description = "x"`,
		"unknown key":      `[runtimes.a]` + "\n" + `command = ["/bin/true"]` + "\n" + `uid = 0`,
		"unknown table":    `[process]` + "\n" + `uid = 0`,
		"bad name":         `[runtimes."a b"]` + "\n" + `command = ["/bin/true"]`,
		"bad env key":      `[runtimes.a]` + "\n" + `command = ["/bin/true"]` + "\n" + `env = { "A=B" = "c" }`,
		"NUL in command":   `[runtimes.a]` + "\n" + `command = ["/bin/true", "x\u0000y"]`,
		"wrong type":       `[runtimes.a]` + "\n" + `command = "/bin/true"`,
		"syntax":           `[runtimes.a`,
	} {
		if rts, err := ParseRuntimes([]byte(in)); !errors.Is(err, ErrRuntimes) {
			t.Errorf("%s: ParseRuntimes = %v, %v; want ErrRuntimes", name, rts, err)
		}
	}
}

func TestLoadRuntimes(t *testing.T) {
	dir := t.TempDir()
	rts, err := LoadRuntimes(filepath.Join(dir, RuntimesFileName))
	if err != nil || rts == nil || len(rts) != 0 {
		t.Fatalf("missing file = %v, %v; want an empty allowlist", rts, err)
	}
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte("[runtimes.a]\ncommand = [\"x\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRuntimes(path); !errors.Is(err, ErrRuntimes) || !strings.Contains(err.Error(), path) {
		t.Errorf("bad file: %v, want ErrRuntimes naming the path", err)
	}
}

// FuzzParseRuntimes: any input either fails with ErrRuntimes or yields an
// allowlist the process executor accepts.
func FuzzParseRuntimes(f *testing.F) {
	f.Add([]byte(exampleRuntimes))
	f.Add([]byte(""))
	f.Add([]byte("[runtimes.a]\ncommand = [\"/bin/true\", \"{args}\"]\nenv = { K = \"v\" }\n"))
	f.Add([]byte("[runtimes.a]\ncommand = [\"rel\"]\n"))
	f.Add([]byte("runtimes = 3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rts, err := ParseRuntimes(b)
		if err != nil {
			if !errors.Is(err, ErrRuntimes) {
				t.Fatalf("error %v does not wrap ErrRuntimes", err)
			}
			return
		}
		if _, err := process.New(process.WithRuntimes(rts...)); err != nil {
			t.Fatalf("parsed allowlist refused by the executor: %v", err)
		}
		for _, r := range rts {
			if validRuntimeName(r.Name) != nil {
				t.Fatalf("accepted bad name %q", r.Name)
			}
		}
	})
}
