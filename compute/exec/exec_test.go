package exec_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/compute/exec"
)

func TestValidPath(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"a/b.bin", true}, {"deep/er/x", true},
		{"", false}, {".", false}, {"..", false}, {"../x", false}, {"a/../b", false},
		{"/abs", false}, {"a//b", false}, {"a/", false}, {"./a", false}, {`a\b`, false},
	} {
		err := exec.ValidPath(c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidPath(%q) = %v; want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, exec.ErrInvalidSpec) {
			t.Errorf("ValidPath(%q) error %v is not ErrInvalidSpec", c.name, err)
		}
	}
}

func TestMaterializeAndCollect(t *testing.T) {
	dir := t.TempDir()
	in := map[string]exec.Source{"a.txt": exec.Bytes([]byte("alpha")), "sub/b.txt": exec.Bytes([]byte("beta"))}
	if err := exec.Materialize(dir, in, 0); err != nil {
		t.Fatal(err)
	}
	defer exec.MakeWritable(dir)
	st, err := os.Stat(filepath.Join(dir, "sub", "b.txt"))
	if err != nil || st.Mode().Perm() != 0o444 {
		t.Fatalf("input mode %v (err %v); want 0444", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "sub")); st.Mode().Perm() != 0o555 {
		t.Fatalf("input dir mode %v; want 0555", st.Mode())
	}
	files, total, err := exec.CollectOutputs(dir, 0)
	if err != nil || total != 9 || len(files) != 2 || files[0].Name != "a.txt" || files[1].Name != "sub/b.txt" {
		t.Fatalf("CollectOutputs = %+v, %d, %v", files, total, err)
	}
	if _, _, err := exec.CollectOutputs(dir, 8); !errors.Is(err, exec.ErrOutputLimit) {
		t.Fatalf("9 bytes against a limit of 8: %v", err)
	}

	capped := t.TempDir()
	if err := exec.Materialize(capped, map[string]exec.Source{"x": exec.Bytes(make([]byte, 10))}, 5); !errors.Is(err, exec.ErrInputTooLarge) {
		t.Fatalf("input over the cap: %v", err)
	}
	missing := exec.HostFile(filepath.Join(t.TempDir(), "nope"))
	if err := exec.Materialize(t.TempDir(), map[string]exec.Source{"x": missing}, 0); err == nil {
		t.Fatal("missing host file materialised")
	}
}

func TestCollectRejectsLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := exec.CollectOutputs(dir, 0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlink output: %v", err)
	}
}

func TestQuotaAndCapture(t *testing.T) {
	fired := 0
	q := exec.NewQuota(10, func() { fired++ })
	c := exec.NewCapture(q)
	if n, err := c.Write([]byte("12345678")); n != 8 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := c.Write([]byte("abc")); !errors.Is(err, exec.ErrOutputLimit) {
		t.Fatalf("write past the quota: %v", err)
	}
	q.Take(5)
	if !q.Exceeded() || fired != 1 || string(c.Bytes()) != "12345678" {
		t.Fatalf("exceeded %v, fired %d, captured %q", q.Exceeded(), fired, c.Bytes())
	}
	if exec.NewQuota(0, nil).Take(1<<40) != true {
		t.Fatal("zero quota is unlimited")
	}
}

func TestSpecValidate(t *testing.T) {
	out := t.TempDir()
	good := exec.Spec{OutputDir: out, Env: map[string]string{"A": "1"}, Args: []string{"x"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]exec.Spec{
		"no output dir": {},
		"bad env":       {OutputDir: out, Env: map[string]string{"A=B": "1"}},
		"NUL arg":       {OutputDir: out, Args: []string{"a\x00b"}},
		"nil source":    {OutputDir: out, Inputs: map[string]exec.Source{"a": nil}},
		"negative":      {OutputDir: out, Limits: exec.Limits{WallTime: -1}},
	} {
		if err := s.Validate(); !errors.Is(err, exec.ErrInvalidSpec) {
			t.Errorf("%s: %v; want ErrInvalidSpec", name, err)
		}
	}
	if got := exec.SortedEnv(map[string]string{"B": "2", "A": "1"}); strings.Join(got, ",") != "A=1,B=2" {
		t.Fatalf("SortedEnv = %v", got)
	}
}
