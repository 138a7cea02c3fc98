//go:build linux

package process_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpunode/gpunode/compute/exec"
	"github.com/gpunode/gpunode/compute/exec/exectest"
	"github.com/gpunode/gpunode/compute/exec/process"
)

func TestMain(m *testing.M) {
	code := m.Run()
	exectest.Cleanup()
	os.Exit(code)
}

// newExec allowlists the conformance program as runtime "testprog". When the
// tests run as root the program runs as nobody, as a provider's node should.
func newExec(t *testing.T, opts ...process.Option) *process.Executor {
	t.Helper()
	bin := exectest.Build(t, exectest.TestProgram, "linux", "amd64")
	work, err := os.MkdirTemp("", "process-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	base := []process.Option{
		process.WithWorkDir(work),
		process.WithPollInterval(20 * time.Millisecond),
		process.WithRuntimes(process.Runtime{Name: "testprog", Command: []string{bin, "{args}"}}),
	}
	if os.Geteuid() == 0 {
		base = append(base, process.WithCredential(65534, 65534))
	}
	e, err := process.New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConformance(t *testing.T) {
	e := newExec(t)
	exectest.Run(t, exectest.Harness{
		Exec: e,
		Spec: func(t *testing.T, args ...string) exec.Spec {
			return exec.Spec{Runtime: "testprog", Args: args}
		},
		MemoryLimit: 64 << 20,
	})
}

func TestRefusesRuntimeNotAllowlisted(t *testing.T) {
	e := newExec(t)
	out := t.TempDir()
	for _, name := range []string{"", "python", "/bin/sh", "testprog "} {
		res, err := e.Run(context.Background(), exec.Spec{Runtime: name, OutputDir: out})
		if !errors.Is(err, exec.ErrNotAllowed) || res != nil {
			t.Errorf("runtime %q: Run = %v, %v; want ErrNotAllowed and no result", name, res, err)
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatal("a refused run left files behind")
	}
}

// A program that starts a child that starts a grandchild is stopped at the
// time limit, and the grandchild is gone too.
func TestKillsGrandchildrenOnTimeout(t *testing.T) {
	e := newExec(t)
	res, err := e.Run(context.Background(), exec.Spec{
		Runtime: "testprog", Args: []string{"tree"}, OutputDir: t.TempDir(),
		Limits: exec.Limits{WallTime: 500 * time.Millisecond},
	})
	if !errors.Is(err, exec.ErrTimeout) {
		t.Fatalf("Run error = %v; want ErrTimeout", err)
	}
	pids := map[string]int{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			pids[k], _ = strconv.Atoi(v)
		}
	}
	if pids["child"] == 0 || pids["grandchild"] == 0 {
		t.Fatalf("stdout %q lacks the child and grandchild pids", res.Stdout)
	}
	for _, who := range []string{"child", "grandchild"} {
		waitGone(t, who, pids[who])
	}
}

// waitGone waits until pid no longer runs (gone, or a zombie waiting for a
// reaper that is not ours).
func waitGone(t *testing.T, who string, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %d still running: %s", who, pid, b)
		}
		<-tick.C
	}
}

func TestDevicesPinned(t *testing.T) {
	e := newExec(t)
	res, err := e.Run(context.Background(), exec.Spec{
		Runtime: "testprog", Args: []string{"echo"}, OutputDir: t.TempDir(),
		Devices: []string{"0", "3"},
		Env:     map[string]string{"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, // the executor's value wins
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Stdout), "CUDA_VISIBLE_DEVICES=0,3|NVIDIA_VISIBLE_DEVICES=0,3") {
		t.Fatalf("stdout %q; want GPUs 0,3 pinned", res.Stdout)
	}
	res, err = e.Run(context.Background(), exec.Spec{Runtime: "testprog", Args: []string{"echo"}, OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Stdout), "CUDA_VISIBLE_DEVICES=|NVIDIA_VISIBLE_DEVICES=void") {
		t.Fatalf("stdout %q; want no GPU visible", res.Stdout)
	}
}

func TestExpand(t *testing.T) {
	rt := process.Runtime{Name: "torch", Command: []string{"/usr/bin/python3", "{work}/train.py", "--data={in}/d", "{args}", "--out", "{out}"}}
	got := process.Expand(rt, "/w/in", "/w/out", "/w", []string{"-e", "3"})
	want := []string{"/usr/bin/python3", "/w/train.py", "--data=/w/in/d", "-e", "3", "--out", "/w/out"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Expand = %q; want %q", got, want)
	}
	got = process.Expand(process.Runtime{Command: []string{"/bin/true"}}, "", "", "", []string{"x"})
	if !reflect.DeepEqual(got, []string{"/bin/true", "x"}) {
		t.Fatalf("Expand without {args} = %q; want args appended", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, rs := range [][]process.Runtime{
		{{Name: "", Command: []string{"/bin/true"}}},
		{{Name: "a"}},
		{{Name: "a", Command: []string{"true"}}},
		{{Name: "a", Command: []string{"/bin/true"}}, {Name: "a", Command: []string{"/bin/false"}}},
	} {
		if _, err := process.New(process.WithRuntimes(rs...)); err == nil {
			t.Errorf("New(WithRuntimes(%+v)) succeeded", rs)
		}
	}
	e, err := process.New(process.WithRuntimes(process.Runtime{Name: "b", Command: []string{"/bin/b"}}, process.Runtime{Name: "a", Command: []string{"/bin/a"}}))
	if err != nil {
		t.Fatal(err)
	}
	if rs := e.Runtimes(); len(rs) != 2 || rs[0].Name != "a" || rs[1].Name != "b" {
		t.Fatalf("Runtimes = %+v; want a, b", rs)
	}
}

// Running as root, the executor drops to the credential with no
// supplementary groups.
func TestCredentialDropsGroups(t *testing.T) {
	e := newExec(t)
	res, err := e.Run(context.Background(), exec.Spec{Runtime: "testprog", Args: []string{"ids"}, OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	want := "uid " + strconv.Itoa(os.Getuid()) + " " // not root: runs as the node's user
	if os.Geteuid() == 0 {
		want = "uid 65534 gid 65534 groups []"
	}
	if got := strings.TrimSpace(string(res.Stdout)); !strings.HasPrefix(got, want) {
		t.Fatalf("ids = %q; want prefix %q", got, want)
	}
}
