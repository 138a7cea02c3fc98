package exec

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
)

// Materialize writes inputs under dir (which must exist) and then makes the
// files 0444 and the directories 0555, so that a program not running as root
// cannot change them. limit caps the total bytes written (0: no cap).
func Materialize(dir string, inputs map[string]Source, limit int64) error {
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		if err := ValidPath(name); err != nil {
			return err
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var total int64
	var dirs []string
	for _, name := range names {
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("exec: materialize %s: %w", name, err)
		}
		n, err := copySource(dst, inputs[name], limit-total, limit > 0)
		if err != nil {
			return fmt.Errorf("exec: materialize %s: %w", name, err)
		}
		total += n
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return os.Chmod(p, 0o444)
	})
	if err != nil {
		return fmt.Errorf("exec: materialize: %w", err)
	}
	// Deepest first, so a parent is still writable while its children change.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], 0o555); err != nil {
			return fmt.Errorf("exec: materialize: %w", err)
		}
	}
	return nil
}

// ErrInputTooLarge: the inputs exceed the cap given to Materialize.
var ErrInputTooLarge = fmt.Errorf("%w: inputs too large", ErrInvalidSpec)

func copySource(dst string, src Source, remaining int64, capped bool) (int64, error) {
	r, err := src.Open()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	var n int64
	if capped {
		n, err = io.Copy(f, io.LimitReader(r, remaining+1))
		if err == nil && n > remaining {
			err = ErrInputTooLarge
		}
	} else {
		n, err = io.Copy(f, r)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// MakeWritable undoes Materialize's permissions under dir so that it can be
// removed.
func MakeWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
}

// CollectOutputs lists the regular files under dir, sorted by name, and
// checks their total size against limit (0: no limit). Anything that is not
// a regular file or directory (a symlink, a device) is an error: outputs are
// plain files.
func CollectOutputs(dir string, limit int64) ([]File, int64, error) {
	var files []File
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("exec: output %q is not a regular file", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, File{Name: filepath.ToSlash(rel), Size: info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, total, fmt.Errorf("exec: collect outputs: %w", err)
	}
	if limit > 0 && total > limit {
		return files, total, fmt.Errorf("%w: %d bytes of output files, limit %d", ErrOutputLimit, total, limit)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, total, nil
}

// Quota counts bytes a program emits against one limit shared by its output
// streams and files. When the limit is first crossed it calls onExceed once
// (executors stop the program there).
type Quota struct {
	limit    int64
	used     atomic.Int64
	once     sync.Once
	onExceed func()
}

// NewQuota makes a quota of limit bytes (limit <= 0: unlimited).
func NewQuota(limit int64, onExceed func()) *Quota {
	return &Quota{limit: limit, onExceed: onExceed}
}

// Take charges n bytes; it reports false (and fires onExceed) if that goes
// over the limit.
func (q *Quota) Take(n int64) bool {
	u := q.used.Add(n)
	if q.limit > 0 && u > q.limit {
		q.once.Do(func() {
			if q.onExceed != nil {
				q.onExceed()
			}
		})
		return false
	}
	return true
}

// Exceeded reports whether the limit was crossed.
func (q *Quota) Exceeded() bool { return q.limit > 0 && q.used.Load() > q.limit }

// Used is the number of bytes charged so far.
func (q *Quota) Used() int64 { return q.used.Load() }

// Capture is an io.Writer that keeps what is written, charging a Quota; once
// the quota is exceeded further writes fail.
type Capture struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
	q   *Quota
}

// NewCapture returns a capture charging q.
func NewCapture(q *Quota) *Capture { return &Capture{q: q} }

// Write implements io.Writer.
func (c *Capture) Write(p []byte) (int, error) {
	if !c.q.Take(int64(len(p))) {
		return 0, ErrOutputLimit
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// Bytes returns a copy of what was captured.
func (c *Capture) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}
