package node

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/gpunode/gpunode/compute/exec/process"
)

// RuntimesFileName is the provider's allowlist of native runtimes in the
// home. Without it the process executor refuses every runtime.
const RuntimesFileName = "runtimes.toml"

// ErrRuntimes: runtimes.toml is malformed; the daemon does not start.
var ErrRuntimes = errors.New("node: bad runtimes file")

// maxRuntimesFile bounds runtimes.toml; an allowlist is a few lines.
const maxRuntimesFile = 1 << 20

// RuntimesFile is the path of the runtime allowlist.
func (h Home) RuntimesFile() string { return filepath.Join(string(h), RuntimesFileName) }

// runtimesDoc is runtimes.toml:
//
//	[runtimes.NAME]
//	command = ["/abs/program", "--in", "{in}", "--out", "{out}", "{args}"]
//	description = "what it is"
//	env = { KEY = "value" }
type runtimesDoc struct {
	Runtimes map[string]runtimeEntry `toml:"runtimes"`
}

type runtimeEntry struct {
	Command     []string          `toml:"command"`
	Env         map[string]string `toml:"env"`
	Description string            `toml:"description"`
}

// ParseRuntimes decodes a runtimes.toml allowlist, sorted by name. Unknown
// keys, empty commands, relative program paths and malformed names or
// environment keys are errors (wrapping ErrRuntimes).
func ParseRuntimes(b []byte) ([]process.Runtime, error) {
	if len(b) > maxRuntimesFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrRuntimes, maxRuntimesFile)
	}
	var doc runtimesDoc
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRuntimes, err)
	}
	out := make([]process.Runtime, 0, len(doc.Runtimes))
	for name, e := range doc.Runtimes {
		if err := validRuntimeName(name); err != nil {
			return nil, err
		}
		if len(e.Command) == 0 || e.Command[0] == "" {
			return nil, fmt.Errorf("%w: runtime %q: command is empty", ErrRuntimes, name)
		}
		if !filepath.IsAbs(e.Command[0]) {
			return nil, fmt.Errorf("%w: runtime %q: program %q is not an absolute path", ErrRuntimes, name, e.Command[0])
		}
		for k := range e.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return nil, fmt.Errorf("%w: runtime %q: bad environment key %q", ErrRuntimes, name, k)
			}
		}
		for _, v := range append(slices.Clone(e.Command), envValues(e.Env)...) {
			if strings.ContainsRune(v, 0) {
				return nil, fmt.Errorf("%w: runtime %q: NUL byte in command or env", ErrRuntimes, name)
			}
		}
		out = append(out, process.Runtime{Name: name, Command: e.Command, Env: e.Env, Description: e.Description})
	}
	slices.SortFunc(out, func(a, b process.Runtime) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func envValues(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, v := range env {
		out = append(out, v)
	}
	return out
}

// validRuntimeName: names appear in job specs and offers, so keep them to
// a plain identifier.
func validRuntimeName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: runtime name %q must be 1 to 64 characters", ErrRuntimes, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: runtime name %q: only letters, digits, '-', '_' and '.'", ErrRuntimes, name)
		}
	}
	return nil
}

// LoadRuntimes reads the allowlist at path; a missing file is an empty
// allowlist.
func LoadRuntimes(path string) ([]process.Runtime, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []process.Runtime{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: read %s: %w", path, err)
	}
	rs, err := ParseRuntimes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}
