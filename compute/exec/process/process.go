//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpunode/gpunode/compute/exec"
)

// Name is the executor's name in offers and job specs.
const Name = "process"

// DefaultLimits are used where a Spec leaves a limit zero.
var DefaultLimits = exec.Limits{
	WallTime:    time.Hour,
	MemoryBytes: 0, // no cap unless the provider or the spec sets one
	OutputBytes: 4 << 30,
}

type config struct {
	runtimes map[string]Runtime
	workDir  string
	limits   exec.Limits
	cred     *syscall.Credential
	poll     time.Duration
	logger   *slog.Logger
}

// Option configures New.
type Option func(*config) error

// WithRuntimes allowlists runtimes. Names must be unique and commands
// non-empty with an absolute program path.
func WithRuntimes(rs ...Runtime) Option {
	return func(c *config) error {
		for _, r := range rs {
			if r.Name == "" || len(r.Command) == 0 {
				return fmt.Errorf("process: runtime %q: empty name or command", r.Name)
			}
			if !filepath.IsAbs(r.Command[0]) {
				return fmt.Errorf("process: runtime %q: program %q is not an absolute path", r.Name, r.Command[0])
			}
			if _, dup := c.runtimes[r.Name]; dup {
				return fmt.Errorf("process: runtime %q listed twice", r.Name)
			}
			c.runtimes[r.Name] = r
		}
		return nil
	}
}

// WithWorkDir is where per-run work directories are made. Default:
// os.TempDir(). With WithCredential it must be traversable by that user.
func WithWorkDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("process: empty work dir")
		}
		c.workDir = dir
		return nil
	}
}

// WithDefaultLimits sets the limits used where a Spec leaves them zero.
func WithDefaultLimits(l exec.Limits) Option {
	return func(c *config) error {
		if l.WallTime <= 0 || l.OutputBytes <= 0 {
			return errors.New("process: default wall time and output limits must be positive")
		}
		c.limits = l
		return nil
	}
}

// WithCredential runs programs as uid/gid. A node running as root should
// set it: root ignores file permissions, so without it a program could
// change its inputs and read anything on the host.
func WithCredential(uid, gid uint32) Option {
	return func(c *config) error {
		// No supplementary groups: the program must not keep root's.
		c.cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
		return nil
	}
}

// WithPollInterval sets how often memory and output sizes are sampled.
// Default: 100ms.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("process: poll interval must be positive")
		}
		c.poll = d
		return nil
	}
}

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// Executor runs allowlisted runtimes. It is safe for concurrent use.
type Executor struct {
	cfg config
	log *slog.Logger
}

var _ exec.Executor = (*Executor)(nil)

// New makes an executor; with no WithRuntimes it refuses everything.
func New(opts ...Option) (*Executor, error) {
	cfg := config{runtimes: map[string]Runtime{}, workDir: os.TempDir(), limits: DefaultLimits, poll: 100 * time.Millisecond}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	e := &Executor{cfg: cfg, log: cfg.logger.With("executor", Name)}
	if cfg.cred == nil && os.Geteuid() == 0 && len(cfg.runtimes) > 0 {
		e.log.Warn("process executor runs jobs as root: inputs are not protected from the program; set a credential")
	}
	return e, nil
}

// Name implements exec.Executor.
func (e *Executor) Name() string { return Name }

// Runtimes lists the allowlist, sorted by name.
func (e *Executor) Runtimes() []Runtime {
	out := make([]Runtime, 0, len(e.cfg.runtimes))
	for _, r := range e.cfg.runtimes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Executor) names() string {
	var ns []string
	for _, r := range e.Runtimes() {
		ns = append(ns, r.Name)
	}
	if len(ns) == 0 {
		return "none"
	}
	return strings.Join(ns, ", ")
}

func (e *Executor) limits(l exec.Limits) exec.Limits {
	if l.WallTime <= 0 {
		l.WallTime = e.cfg.limits.WallTime
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = e.cfg.limits.MemoryBytes
	}
	if l.OutputBytes <= 0 {
		l.OutputBytes = e.cfg.limits.OutputBytes
	}
	return l
}

// stop reasons, in the order they explain a failure best.
type stopReason int

const (
	notStopped stopReason = iota
	stopOutput
	stopMemory
	stopTimeout
	stopCanceled
)

// Run implements exec.Executor.
func (e *Executor) Run(ctx context.Context, spec exec.Spec) (*exec.Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	rt, ok := e.cfg.runtimes[spec.Runtime]
	if !ok {
		return nil, fmt.Errorf("%w: %q (allowed: %s)", exec.ErrNotAllowed, spec.Runtime, e.names())
	}
	lim := e.limits(spec.Limits)

	work, err := os.MkdirTemp(e.cfg.workDir, "job-")
	if err != nil {
		return nil, fmt.Errorf("process: work dir: %w", err)
	}
	defer func() {
		exec.MakeWritable(work)
		_ = os.RemoveAll(work)
	}()
	in, out, tmp := filepath.Join(work, "in"), filepath.Join(work, "out"), filepath.Join(work, "tmp")
	for _, d := range []string{in, out, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("process: work dir: %w", err)
		}
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, fmt.Errorf("process: work dir: %w", err)
	}
	if err := exec.Materialize(in, spec.Inputs, 0); err != nil {
		return nil, err
	}
	stdoutF, err := os.Create(filepath.Join(work, "stdout"))
	if err != nil {
		return nil, fmt.Errorf("process: stdout: %w", err)
	}
	defer stdoutF.Close()
	stderrF, err := os.Create(filepath.Join(work, "stderr"))
	if err != nil {
		return nil, fmt.Errorf("process: stderr: %w", err)
	}
	defer stderrF.Close()
	if c := e.cfg.cred; c != nil {
		for _, d := range []string{out, tmp} {
			if err := os.Chown(d, int(c.Uid), int(c.Gid)); err != nil {
				return nil, fmt.Errorf("process: give work dir to uid %d: %w", c.Uid, err)
			}
		}
	}

	argv := Expand(rt, in, out, work, spec.Args)
	env := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": tmp}
	for k, v := range rt.Env {
		env[k] = v
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	env[exec.EnvInputDir] = in
	env[exec.EnvOutputDir] = out
	devs := strings.Join(spec.Devices, ",")
	env["CUDA_VISIBLE_DEVICES"] = devs
	if devs == "" {
		devs = "void" // the container toolkit's "no GPU"
	}
	env["NVIDIA_VISIBLE_DEVICES"] = devs

	cmd := osexec.Command(argv[0], argv[1:]...)
	cmd.Dir = work
	cmd.Env = exec.SortedEnv(env)
	cmd.Stdin = nil
	cmd.Stdout = stdoutF
	cmd.Stderr = stderrF
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: e.cfg.cred,
	}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("process: start %s: %w", argv[0], err)
	}
	pgid := cmd.Process.Pid
	setLimits(pgid, lim, e.log)
	killGroup := func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
	// Whatever happens, nothing the program started outlives the run.
	defer killGroup()

	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	timer := time.NewTimer(lim.WallTime)
	defer timer.Stop()
	ticker := time.NewTicker(e.cfg.poll)
	defer ticker.Stop()

	reason := notStopped
	var waitErr error
	var peakRSS uint64
loop:
	for {
		select {
		case waitErr = <-waitDone:
			break loop
		case <-ctx.Done():
			reason = stopCanceled
		case <-timer.C:
			reason = stopTimeout
		case <-ticker.C:
			if lim.MemoryBytes > 0 {
				rss := groupRSS(pgid)
				peakRSS = max(peakRSS, rss)
				if rss > lim.MemoryBytes {
					reason = stopMemory
				}
			}
			if reason == notStopped && dirSize(out)+fileSize(stdoutF)+fileSize(stderrF) > lim.OutputBytes {
				reason = stopOutput
			}
		}
		if reason != notStopped {
			killGroup()
			waitErr = <-waitDone
			break
		}
	}
	elapsed := time.Since(start)
	killGroup()

	res := &exec.Result{ExitCode: cmd.ProcessState.ExitCode(), Elapsed: elapsed}
	streamLimit := lim.OutputBytes
	res.Stdout = readCapped(stdoutF, streamLimit)
	res.Stderr = readCapped(stderrF, streamLimit-int64(len(res.Stdout)))
	streams := fileSize(stdoutF) + fileSize(stderrF)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)

	switch {
	case reason == stopCanceled:
		return res, fmt.Errorf("%w: %v", exec.ErrCanceled, context.Cause(ctx))
	case reason == stopTimeout:
		return res, fmt.Errorf("%w: stopped after %s", exec.ErrTimeout, elapsed.Round(time.Millisecond))
	case reason == stopMemory:
		return res, fmt.Errorf("%w: process group used more than %d bytes", exec.ErrMemoryLimit, lim.MemoryBytes)
	case reason == stopOutput || streams > lim.OutputBytes || (ws.Signaled() && ws.Signal() == syscall.SIGXFSZ):
		return res, fmt.Errorf("%w (limit %d bytes)", exec.ErrOutputLimit, lim.OutputBytes)
	case waitErr != nil:
		var ee *osexec.ExitError
		if !errors.As(waitErr, &ee) {
			return res, fmt.Errorf("process: wait: %w", waitErr)
		}
		if ws.Signaled() {
			return res, fmt.Errorf("%w: killed by %s", exec.ErrExit, ws.Signal())
		}
		return res, fmt.Errorf("%w: exit status %d", exec.ErrExit, res.ExitCode)
	}
	if _, _, err := exec.CollectOutputs(out, lim.OutputBytes-streams); err != nil {
		return res, err
	}
	if err := moveTree(out, spec.OutputDir); err != nil {
		return res, fmt.Errorf("process: move outputs: %w", err)
	}
	files, _, err := exec.CollectOutputs(spec.OutputDir, 0)
	res.Outputs = files
	return res, err
}

// setLimits applies rlimits to the started program; its children inherit
// them. There is a short window between exec and this call; the poller
// covers memory and output anyway. Address-space limits are deliberately not
// used: CUDA reserves far more virtual memory than it uses.
func setLimits(pid int, lim exec.Limits, log *slog.Logger) {
	set := func(res int, v uint64) {
		if err := unix.Prlimit(pid, res, &unix.Rlimit{Cur: v, Max: v}, nil); err != nil {
			log.Debug("prlimit", "resource", res, "err", err)
		}
	}
	set(unix.RLIMIT_CORE, 0)
	if lim.OutputBytes > 0 {
		set(unix.RLIMIT_FSIZE, uint64(lim.OutputBytes))
	}
}

func fileSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

func readCapped(f *os.File, limit int64) []byte {
	if limit <= 0 {
		return nil
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, limit))
	return b
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// moveTree moves the regular files under src into dst, keeping their
// relative paths.
func moveTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.Rename(p, target); err == nil {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
