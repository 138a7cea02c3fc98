package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Environment variables every executor sets for the program.
const (
	EnvInputDir  = "GPUNODE_INPUT_DIR"
	EnvOutputDir = "GPUNODE_OUTPUT_DIR"
)

// Sentinel errors. Executors wrap them with the failed operation.
var (
	// ErrInvalidSpec: the spec is malformed; nothing was run.
	ErrInvalidSpec = errors.New("exec: invalid spec")
	// ErrNotAllowed: the runtime is not on the provider's allowlist.
	ErrNotAllowed = errors.New("exec: runtime not allowlisted")
	// ErrBadProgram: the program could not be loaded (for example a wasm
	// module that does not compile or has no _start).
	ErrBadProgram = errors.New("exec: bad program")
	// ErrTimeout: the wall-time limit expired and the program was stopped.
	ErrTimeout = errors.New("exec: wall-time limit exceeded")
	// ErrCanceled: the caller's context ended and the program was stopped.
	ErrCanceled = errors.New("exec: canceled")
	// ErrMemoryLimit: the program tried to use more memory than allowed.
	ErrMemoryLimit = errors.New("exec: memory limit exceeded")
	// ErrOutputLimit: outputs (files plus stdout and stderr) exceeded the limit.
	ErrOutputLimit = errors.New("exec: output size limit exceeded")
	// ErrExit: the program ran and exited with a non-zero status.
	ErrExit = errors.New("exec: program exited with non-zero status")
)

// Executor runs one job segment. Run blocks until the program ends, a limit
// stops it or ctx is done; it must return promptly after ctx is done and must
// leave nothing running behind.
type Executor interface {
	// Name is the executor's name as it appears in offers and job specs
	// ("wasm", "process").
	Name() string
	// Run executes spec. On success the error is nil and Result.ExitCode is
	// zero. If the program ran, the Result is non-nil even with an error.
	Run(ctx context.Context, spec Spec) (*Result, error)
}

// Source is the content of one input. Open is called once per run.
type Source interface {
	Open() (io.ReadCloser, error)
}

// Bytes is an input held in memory.
func Bytes(b []byte) Source { return bytesSource(b) }

type bytesSource []byte

func (b bytesSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}

// HostFile is an input read from a file on the host.
func HostFile(name string) Source { return fileSource(name) }

type fileSource string

func (f fileSource) Open() (io.ReadCloser, error) { return os.Open(string(f)) }

// SourceFunc adapts a function to Source, for example a block-store reader.
type SourceFunc func() (io.ReadCloser, error)

// Open calls f.
func (f SourceFunc) Open() (io.ReadCloser, error) { return f() }

// Limits bound one run. A zero field means the executor's default.
type Limits struct {
	// WallTime stops the program after this long.
	WallTime time.Duration
	// MemoryBytes caps the program's memory (linear memory for wasm, address
	// space for a process).
	MemoryBytes uint64
	// OutputBytes caps the total of output files plus captured stdout and
	// stderr.
	OutputBytes int64
}

// Spec describes one run.
type Spec struct {
	// Program is the wasm module (wasm executor only).
	Program Source
	// Runtime names an allowlisted runtime (process executor only).
	Runtime string
	// Args are the program's arguments after its name.
	Args []string
	// Env is the program's environment, on top of the variables the executor
	// sets itself (which win).
	Env map[string]string
	// Inputs maps a slash-separated relative path under the input directory
	// to its content.
	Inputs map[string]Source
	// OutputDir is an existing empty host directory that receives the
	// program's output files.
	OutputDir string
	// Devices are the GPU indices or UUIDs allocated to this run (process
	// executor: exported as CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES).
	Devices []string
	// Seed seeds the program's random source (wasm executor), so that two
	// honest providers produce the same bytes.
	Seed uint64
	// Limits bound the run.
	Limits Limits
}

// Validate checks the parts of the spec every executor relies on.
func (s *Spec) Validate() error {
	if s.OutputDir == "" {
		return fmt.Errorf("%w: no output directory", ErrInvalidSpec)
	}
	st, err := os.Stat(s.OutputDir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("%w: output directory %q is not a directory", ErrInvalidSpec, s.OutputDir)
	}
	for name, src := range s.Inputs {
		if err := ValidPath(name); err != nil {
			return err
		}
		if src == nil {
			return fmt.Errorf("%w: input %q has no source", ErrInvalidSpec, name)
		}
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: bad environment variable name %q", ErrInvalidSpec, k)
		}
	}
	for _, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%w: argument contains NUL", ErrInvalidSpec)
		}
	}
	if s.Limits.WallTime < 0 || s.Limits.OutputBytes < 0 {
		return fmt.Errorf("%w: negative limit", ErrInvalidSpec)
	}
	return nil
}

// ValidPath reports whether name can be an input path: relative,
// slash-separated, no "." or ".." elements, no empty elements.
func ValidPath(name string) error {
	if name == "" || name == "." || !fs.ValidPath(name) || strings.Contains(name, "\\") {
		return fmt.Errorf("%w: bad input path %q", ErrInvalidSpec, name)
	}
	if path.Clean(name) != name {
		return fmt.Errorf("%w: bad input path %q", ErrInvalidSpec, name)
	}
	return nil
}

// SortedEnv returns env as KEY=VALUE strings sorted by key, so that the
// program sees the same environment on every provider.
func SortedEnv(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + env[k]
	}
	return out
}

// File is one output file.
type File struct {
	// Name is the slash-separated path relative to Spec.OutputDir.
	Name string `json:"name"`
	// Size in bytes.
	Size int64 `json:"size"`
}

// Result is what a run produced.
type Result struct {
	// ExitCode is the program's exit status (0 on success, -1 if it was
	// stopped before it exited).
	ExitCode int `json:"exitCode"`
	// Outputs lists the regular files in Spec.OutputDir, sorted by name.
	Outputs []File `json:"outputs"`
	// Stdout and Stderr are the captured streams (cut at the output limit).
	Stdout []byte `json:"stdout,omitempty"`
	Stderr []byte `json:"stderr,omitempty"`
	// Elapsed is the wall time the run took.
	Elapsed time.Duration `json:"elapsed"`
}
