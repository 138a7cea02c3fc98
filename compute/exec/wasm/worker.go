package wasm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Worker processes.
//
// wazero can only stop a spinning module in-process if every loop of the
// compiled code calls back into Go, which makes tight numeric loops about
// 20-30 times slower. So by default modules run in worker processes (this
// same binary, re-executed) compiled without those checks, and a run that
// must stop (time limit, cancellation) is stopped by killing its worker. A
// worker runs one module at a time and is reused while its runs end
// normally, keeping compiled modules in memory.
//
// The binary must call RunWorkerIfRequested at the top of main (and of
// TestMain in tests that run the executor); an executor in a binary that
// does not falls back to in-process mode.

const (
	workerEnv      = "GPUNODE_WASM_WORKER"
	workerCacheEnv = "GPUNODE_WASM_WORKER_CACHE"
	workerMemEnv   = "GPUNODE_WASM_WORKER_MAXMEM"
)

var workerHook atomic.Bool

// RunWorkerIfRequested turns this process into a wasm worker if it was
// started as one (it then never returns); otherwise it returns at once and
// records that workers are available. Call it first thing in main, and in
// TestMain of test binaries that use the executor.
func RunWorkerIfRequested() {
	if os.Getenv(workerEnv) != "1" {
		workerHook.Store(true)
		return
	}
	maxMem, _ := strconv.ParseUint(os.Getenv(workerMemEnv), 10, 64)
	if maxMem == 0 {
		maxMem = 1 << 32
	}
	os.Exit(serveWorker(os.Stdin, os.Stdout, os.Getenv(workerCacheEnv), maxMem))
}

// serveWorker answers requests (one JSON value each) until its input ends.
func serveWorker(in io.Reader, out io.Writer, cacheDir string, maxMem uint64) int {
	en, err := newEngine(cacheDir, maxMem, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasm worker:", err)
		return 1
	}
	dec := json.NewDecoder(bufio.NewReader(in))
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "wasm worker: request:", err)
			return 1
		}
		var o outcome
		module, err := os.ReadFile(req.ModulePath)
		if err != nil {
			o = outcome{Kind: outBad, Msg: "read module: " + err.Error(), ExitCode: -1}
		} else {
			var cpu0 time.Duration
			o = en.run(context.Background(), module, req, 0, func() {
				// Tell the executor compilation is over: its wall-time
				// limit starts now.
				_ = enc.Encode(outcome{Kind: outStarted})
				_ = bw.Flush()
				cpu0 = processCPU()
			})
			if cpu0 > 0 {
				o.CPU = int64(processCPU() - cpu0)
			}
		}
		if err := enc.Encode(o); err != nil {
			return 1
		}
		if err := bw.Flush(); err != nil {
			return 1
		}
	}
}

// worker is one worker process seen from the executor.
type worker struct {
	cmd  *osexec.Cmd
	in   io.WriteCloser
	enc  *json.Encoder
	dec  *json.Decoder
	errs *tailBuffer
}

func (e *Executor) startWorker() (*worker, error) {
	self := e.cfg.workerCmd
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("wasm: find own binary for a worker: %w", err)
		}
	}
	cmd := osexec.Command(self)
	cmd.Env = append(os.Environ(), workerEnv+"=1", workerCacheEnv+"="+e.cfg.cacheDir,
		workerMemEnv+"="+strconv.FormatUint(e.cfg.maxMem, 10))
	setWorkerAttrs(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: cmd, in: in, enc: json.NewEncoder(in), dec: json.NewDecoder(bufio.NewReader(out)), errs: &tailBuffer{max: 4096}}
	cmd.Stderr = w.errs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wasm: start worker: %w", err)
	}
	return w, nil
}

func (w *worker) kill() {
	_ = w.cmd.Process.Kill()
	_ = w.in.Close()
	_ = w.cmd.Wait()
}

// pool keeps idle workers.
type pool struct {
	max    int
	mu     sync.Mutex // guards idle, closed
	idle   []*worker
	closed bool
}

func (p *pool) get() *worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return w
	}
	return nil
}

func (p *pool) put(w *worker) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.max {
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	w.kill()
}

func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.kill()
	}
}

// moduleFile stores module under the work dir, named by its hash, so
// workers can load it by path.
func (e *Executor) moduleFile(module []byte) (string, error) {
	sum := sha256.Sum256(module)
	dir := filepath.Join(e.cfg.workDir, "wasm-modules")
	p := filepath.Join(dir, hex.EncodeToString(sum[:])+".wasm")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "tmp-")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(module); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return p, os.Rename(f.Name(), p)
}

// runInWorker runs req in a worker, killing it if ctx ends or wall passes.
func (e *Executor) runInWorker(ctx context.Context, wall time.Duration, module []byte, req request) outcome {
	path, err := e.moduleFile(module)
	if err != nil {
		return outcome{Kind: outBad, Msg: "store module: " + err.Error(), ExitCode: -1}
	}
	req.ModulePath = path
	w := e.workers.get()
	if w == nil {
		if w, err = e.startWorker(); err != nil {
			return outcome{Kind: outTrap, Msg: err.Error(), ExitCode: -1}
		}
	}
	type reply struct {
		o   outcome
		err error
	}
	replies := make(chan reply, 2)
	go func() {
		if err := w.enc.Encode(req); err != nil {
			replies <- reply{err: err}
			return
		}
		for range 2 { // "started", then the outcome
			var r reply
			r.err = w.dec.Decode(&r.o)
			replies <- r
			if r.err != nil || r.o.Kind != outStarted {
				return
			}
		}
	}()
	var start time.Time
	var timeout <-chan time.Time // armed when the module starts
	stopped := func(kind, msg string) outcome {
		w.kill()
		for r := range replies {
			if r.err != nil || r.o.Kind != outStarted {
				break
			}
		}
		o := outcome{Kind: kind, Msg: msg, ExitCode: -1}
		if !start.IsZero() {
			o.Elapsed = int64(time.Since(start))
		}
		return o
	}
	for {
		select {
		case r := <-replies:
			if r.err != nil {
				w.kill()
				return outcome{Kind: outTrap, Msg: fmt.Sprintf("worker failed: %v %s", r.err, w.errs.String()), ExitCode: -1}
			}
			if r.o.Kind == outStarted {
				start = time.Now()
				timer := time.NewTimer(wall)
				defer timer.Stop()
				timeout = timer.C
				continue
			}
			e.workers.put(w)
			e.workerCPU.Add(r.o.CPU)
			return r.o
		case <-ctx.Done():
			return stopped(outCanceled, context.Cause(ctx).Error())
		case <-timeout:
			return stopped(outTimeout, "stopped after "+wall.String())
		}
	}
}

// tailBuffer keeps the last max bytes written (a worker's stderr).
type tailBuffer struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
