package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// maxReachable caps the CIDs the server remembers under one root, and
// maxReachRoots the roots it remembers them for.
const (
	maxReachable  = 1 << 22
	maxReachRoots = 64
)

// reachableSet is the set of CIDs found under a root in the local store.
// It is built once and rebuilt on a miss if it was incomplete (some inner
// node was missing when it was built and may have arrived since).
type reachableSet struct {
	set      map[cid.Cid]struct{}
	complete bool
}

// handleStream serves one stream: it reads pipelined requests and answers
// each want with a response frame, in order. Requests are read by a
// separate goroutine so the client can keep its window full while large
// responses are being written.
func (e *Exchange) handleStream(s network.Stream) {
	remote := s.Conn().RemotePeer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reqs := make(chan *Request, 4)
	readErr := make(chan error, 1)
	go func() {
		defer close(reqs)
		r := bufio.NewReaderSize(s, 4<<10)
		var buf []byte
		for {
			_ = s.SetReadDeadline(time.Now().Add(e.cfg.idleTimeout))
			body, err := readFrame(r, MaxRequestSize, buf)
			if err != nil {
				if err != io.EOF {
					readErr <- err
				}
				return
			}
			buf = body[:0]
			req, err := DecodeRequest(body)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	// Small: headers and error frames go through it; block bytes mostly
	// bypass it (bufio writes large slices straight through once the
	// buffer is flushed), so it adds one small copy per block, not 64 KiB.
	w := bufio.NewWriterSize(s, 4<<10)
	fail := func(st Status, err error) {
		e.log.Debug("request refused", "peer", remote, "status", st, "err", err)
		msg := err.Error()
		if len(msg) > maxMessageLen {
			msg = msg[:maxMessageLen]
		}
		if h, err := EncodeResponse(&Response{Status: st, Message: msg}); err == nil {
			if writeFrame(w, h) == nil {
				_ = w.Flush()
			}
		}
		_ = s.CloseWrite()
		_ = s.Close()
	}
	var allowed cid.Cid // last root the policy allowed on this stream
	for {
		var req *Request
		var ok bool
		select {
		case req, ok = <-reqs:
		default:
			// Nothing queued: send what is buffered before waiting.
			if err := w.Flush(); err != nil {
				_ = s.Reset()
				return
			}
			req, ok = <-reqs
		}
		if !ok {
			select {
			case err := <-readErr:
				st := StatusBadRequest
				if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
					_ = s.Reset() // transport failure or idle: nobody to tell
					return
				}
				fail(st, err)
			default:
				_ = w.Flush()
				_ = s.Close()
			}
			return
		}
		root := req.Root.Cid
		if !root.Equals(allowed) {
			if !e.cfg.allow(remote, root) {
				fail(StatusDenied, fmt.Errorf("%w: root %s", ErrDenied, root))
				return
			}
			allowed = root
		}
		// The next blocks are read from the store (and verified) while
		// the current one is sent, so disk and hash time hide behind the
		// network instead of adding to it.
		loads := make([]chan loaded, len(req.Wants))
		start := func(i int) {
			ch := make(chan loaded, 1) // the loader never blocks, even if the stream ends
			loads[i] = ch
			go func() { ch <- e.load(ctx, root, req.Wants[i].Cid) }()
		}
		for i := range min(serverPrefetch, len(req.Wants)) {
			start(i)
		}
		for i := range req.Wants {
			if j := i + serverPrefetch; j < len(req.Wants) {
				start(j)
			}
			l := <-loads[i]
			// A client that stops reading must not hold this goroutine
			// and its buffers for ever.
			_ = s.SetWriteDeadline(time.Now().Add(e.cfg.idleTimeout))
			if err := writeLoaded(w, l); err != nil {
				e.log.Debug("serve stream ended", "peer", remote, "err", err)
				_ = s.Reset()
				return
			}
		}
	}
}

// serverPrefetch is how many blocks a served stream reads ahead of the one
// it is sending; with it a stream holds at most serverPrefetch+1 blocks.
const serverPrefetch = 2

// loaded is a block read for a response, or the status that replaces it.
type loaded struct {
	resp Response
	data []byte
}

// writeLoaded writes one response frame.
func writeLoaded(w *bufio.Writer, l loaded) error {
	h, err := EncodeResponse(&l.resp)
	if err != nil {
		return err
	}
	if err := writeFrame(w, h); err != nil {
		return err
	}
	if len(l.data) > 0 {
		_, err = w.Write(l.data)
	}
	return err
}

// load reads want for a response; a missing or unreadable block becomes
// the response's status.
func (e *Exchange) load(ctx context.Context, root, want cid.Cid) loaded {
	wc := protocol.NewCID(want)
	resp := Response{Status: StatusOK, CID: &wc}
	var data []byte
	if !e.underRoot(ctx, root, want) {
		resp.Status = StatusNotFound
	} else {
		var err error
		data, err = e.bs.Get(ctx, want)
		switch {
		case err != nil:
			has, herr := e.bs.Has(ctx, want)
			if herr == nil && !has {
				resp.Status = StatusNotFound
			} else {
				// Held but unreadable (e.g. corrupt on disk): never serve it.
				e.log.Warn("cannot serve block", "cid", want, "err", err)
				resp.Status = StatusError
			}
			data = nil
		case len(data) > MaxBlockSize:
			resp.Status = StatusError
			data = nil
		default:
			resp.Size = uint64(len(data))
		}
	}
	return loaded{resp: resp, data: data}
}

// underRoot reports whether c is root or reachable from it in the local
// store, so a policy that allows a peer one root does not let it read
// blocks of another by naming the allowed root.
func (e *Exchange) underRoot(ctx context.Context, root, c cid.Cid) bool {
	if c.Equals(root) {
		return true
	}
	e.mu.Lock()
	rs := e.reach[root]
	e.mu.Unlock()
	if rs != nil {
		if _, ok := rs.set[c]; ok || rs.complete {
			return ok
		}
	}
	rs = e.walk(ctx, root)
	e.mu.Lock()
	if len(e.reach) >= maxReachRoots {
		for k := range e.reach { // evict an arbitrary root; rebuilt on demand
			delete(e.reach, k)
			break
		}
	}
	e.reach[root] = rs
	e.mu.Unlock()
	_, ok := rs.set[c]
	return ok
}

// walk collects the CIDs under root from the local store. Raw leaves are
// not read (they have no links).
func (e *Exchange) walk(ctx context.Context, root cid.Cid) *reachableSet {
	rs := &reachableSet{set: map[cid.Cid]struct{}{root: {}}, complete: true}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Prefix().Codec == cid.Raw {
			continue
		}
		data, err := e.bs.Get(ctx, c)
		if err != nil {
			rs.complete = false
			continue
		}
		children, err := e.links(c, data)
		if err != nil {
			rs.complete = false
			continue
		}
		for _, ch := range children {
			if _, seen := rs.set[ch]; seen {
				continue
			}
			if len(rs.set) >= maxReachable {
				rs.complete = false
				return rs
			}
			rs.set[ch] = struct{}{}
			stack = append(stack, ch)
		}
	}
	return rs
}
