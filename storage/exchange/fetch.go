package exchange

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gpunode/gpunode/protocol"
	"github.com/gpunode/gpunode/storage"
	"github.com/gpunode/gpunode/storage/internal/sha256x16"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// Progress is a snapshot of a fetch, passed to the progress callback after
// every block.
type Progress struct {
	Blocks        int64 // blocks received and stored by this fetch
	Bytes         int64 // their bytes
	SkippedBlocks int64 // blocks already held locally, not fetched
	KnownBlocks   int64 // blocks of the DAG discovered so far (all of it once every inner node is known)
	// ContentBytes is the content (raw chunk) bytes held so far: fetched,
	// plus already held when the store can tell a block's size.
	ContentBytes int64
	// TotalBytes is the content bytes under the root, once the root is
	// known and WithContentSize is set; 0 otherwise. ContentBytes reaches
	// it when the fetch completes: the figure for a progress bar and ETA.
	TotalBytes int64
}

// sizer is implemented by stores that know a held block's size without
// reading it (storage.Blockstore does); it lets a resumed fetch count the
// content it already has.
type sizer interface {
	Size(ctx context.Context, c cid.Cid) (int, error)
}

// noteNodeLocked records what a stored or held block tells about progress.
func (f *fetch) noteNodeLocked(c cid.Cid, data []byte) {
	if c.Prefix().Codec == cid.Raw {
		f.prog.ContentBytes += int64(len(data))
		return
	}
	if f.e.cfg.contentSize != nil && c.Equals(f.root) {
		if n, ok := f.e.cfg.contentSize(c, data); ok {
			f.prog.TotalBytes = n
		}
	}
}

// Stats is the outcome of a fetch.
type Stats struct {
	Progress
	PerPeer  map[peer.ID]int64 // blocks received and stored, by serving peer
	BadPeers []peer.ID         // peers dropped for a bad block or a protocol violation
	Failed   map[peer.ID]error // peers dropped for another reason (stream error, denial)
}

type fetchConfig struct {
	progress func(Progress)
	fromPeer func(p peer.ID, size int)
}

// FetchOption configures one Fetch.
type FetchOption func(*fetchConfig)

// WithProgress sets a callback run after every stored block. It is called
// from the fetch's goroutines one at a time and must be quick.
func WithProgress(f func(Progress)) FetchOption {
	return func(c *fetchConfig) { c.progress = f }
}

// WithBlockFrom sets a callback run after every stored block with the peer
// that sent it and its size, for per-peer counters (which peer served how
// much). Like WithProgress it is called one at a time and must be quick.
func WithBlockFrom(f func(p peer.ID, size int)) FetchOption {
	return func(c *fetchConfig) { c.fromPeer = f }
}

// Fetch gets the whole DAG under root from peers into the block store. It
// starts with the root and follows links as inner nodes arrive; blocks
// already held are not fetched again (so a restarted fetch transfers only
// what is missing). Every block is verified against its CID before it is
// stored; a peer that sends a bad block is penalised and dropped and the
// block is fetched from another. A peer that fails mid-transfer is dropped
// and its outstanding blocks go to the others. Memory is bounded by
// peers x streams x (window + 1) + 20 blocks, whatever the DAG size.
//
// It returns ErrNoPeers when every peer was dropped with blocks still
// missing, ErrNotFound when no remaining peer has some block, or the
// context's error.
func (e *Exchange) Fetch(ctx context.Context, root cid.Cid, peers []peer.ID, opts ...FetchOption) (Stats, error) {
	if !root.Defined() {
		return Stats{}, fmt.Errorf("exchange: fetch: undefined root CID")
	}
	var fc fetchConfig
	for _, o := range opts {
		o(&fc)
	}
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &fetch{
		e: e, root: root, fc: fc, ctx: ctx, cancel: cancel,
		seen:     make(map[cid.Cid]struct{}),
		notFound: make(map[cid.Cid]map[peer.ID]struct{}),
		perPeer:  make(map[peer.ID]int64),
		failed:   make(map[peer.ID]error),
		live:     make(map[peer.ID]int),
		stopPeer: make(map[peer.ID]context.CancelFunc),
		wake:     make(chan struct{}),
	}
	// The root goes through the same path as every other block: held
	// locally -> expanded from the store, else queued.
	if err := f.discover(ctx, []cid.Cid{root}); err != nil {
		return f.stats(), err
	}
	// One processor verifies and stores what every stream reads, so the
	// blocks waiting for a batch are bounded per fetch, not per stream.
	f.work = make(chan received, processQueue)
	procDone := make(chan struct{})
	go func() {
		defer close(procDone)
		f.processor()
	}()
	var wg sync.WaitGroup
	f.mu.Lock()
	for _, p := range uniquePeers(peers, e.host.PeerID()) {
		if e.Penalty(p) > 0 {
			continue
		}
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		f.live[p] = e.cfg.streamsPerPeer
		f.stopPeer[p] = pcancel
		for range e.cfg.streamsPerPeer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.runStream(pctx, p)
			}()
		}
	}
	if f.pending > 0 && len(f.live) == 0 {
		f.failLocked(ErrNoPeers)
	}
	f.mu.Unlock()
	wg.Wait()
	close(f.work) // every stream has waited for its blocks to be handled
	<-procDone
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := outer.Err(); err != nil && f.pending > 0 {
		// Streams ended by the caller's cancellation look like failed
		// peers; the cancellation is the reason.
		f.err = err
	}
	return f.statsLocked(), f.err
}

func uniquePeers(peers []peer.ID, self peer.ID) []peer.ID {
	seen := map[peer.ID]bool{self: true}
	var out []peer.ID
	for _, p := range peers {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// fetch is the shared state of one Fetch: a work queue of CIDs and the
// peers' stream goroutines that pull from it.
type fetch struct {
	e      *Exchange
	root   cid.Cid
	fc     fetchConfig
	ctx    context.Context // the whole fetch's; a stream's or peer's context ends earlier
	cancel context.CancelFunc
	work   chan received // blocks read by every stream, to the processor

	mu       sync.Mutex // guards everything below
	queue    []cid.Cid  // blocks to fetch, in DAG order; retries go to the front
	pending  int        // blocks queued or in flight; done when 0
	seen     map[cid.Cid]struct{}
	notFound map[cid.Cid]map[peer.ID]struct{} // peers that said they lack a block
	live     map[peer.ID]int                  // peers in use -> their running streams
	stopPeer map[peer.ID]context.CancelFunc   // ends a peer's streams when it is dropped
	perPeer  map[peer.ID]int64
	bad      []peer.ID
	failed   map[peer.ID]error
	prog     Progress
	err      error         // first fatal error; stops every stream
	wake     chan struct{} // closed and replaced when the queue or peers change
}

func (f *fetch) stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statsLocked()
}

func (f *fetch) statsLocked() Stats {
	s := Stats{Progress: f.prog, PerPeer: make(map[peer.ID]int64), Failed: make(map[peer.ID]error)}
	for p, n := range f.perPeer {
		s.PerPeer[p] = n
	}
	for p, err := range f.failed {
		s.Failed[p] = err
	}
	s.BadPeers = append(s.BadPeers, f.bad...)
	return s
}

func (f *fetch) broadcastLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *fetch) failLocked(err error) {
	if f.err == nil {
		f.err = err
		f.cancel()
	}
	f.broadcastLocked()
}

// discover adds newly learned CIDs: a block already held is skipped (and,
// if it is an inner node, expanded from the store); others are queued.
func (f *fetch) discover(ctx context.Context, cids []cid.Cid) error {
	for len(cids) > 0 {
		c := cids[0]
		cids = cids[1:]
		f.mu.Lock()
		_, dup := f.seen[c]
		if !dup {
			f.seen[c] = struct{}{}
			f.prog.KnownBlocks++
		}
		f.mu.Unlock()
		if dup {
			continue
		}
		has, err := f.e.bs.Has(ctx, c)
		if err != nil {
			return fmt.Errorf("exchange: blockstore has %s: %w", c, err)
		}
		var heldSize int64
		if has && c.Prefix().Codec != cid.Raw {
			data, err := f.e.bs.Get(ctx, c)
			if err != nil {
				// Held but unreadable (corrupt): fetch it again.
				f.e.log.Warn("local block unreadable, refetching", "cid", c, "err", err)
				has = false
			} else {
				children, err := f.e.links(c, data)
				if err != nil {
					return fmt.Errorf("exchange: links of %s: %w", c, err)
				}
				cids = append(cids, children...)
				f.mu.Lock()
				f.noteNodeLocked(c, data)
				f.mu.Unlock()
			}
		} else if has {
			if sz, ok := f.e.bs.(sizer); ok {
				if n, err := sz.Size(ctx, c); err == nil {
					heldSize = int64(n)
				}
			}
		}
		f.mu.Lock()
		if has {
			f.prog.SkippedBlocks++
			f.prog.ContentBytes += heldSize
		} else {
			f.queue = append(f.queue, c)
			f.pending++
			f.broadcastLocked()
		}
		f.mu.Unlock()
	}
	return nil
}

// take hands peer p up to max queued blocks it has not said it lacks. With
// wait it blocks until there is work, the fetch is done or it fails; the
// returned ok is false when p's stream should stop.
func (f *fetch) take(ctx context.Context, p peer.ID, max int, wait bool) (out []cid.Cid, ok bool) {
	for {
		f.mu.Lock()
		if _, live := f.live[p]; !live || f.err != nil || f.pending == 0 {
			f.mu.Unlock()
			return nil, false
		}
		for i := 0; i < len(f.queue) && len(out) < max; {
			c := f.queue[i]
			if _, lacks := f.notFound[c][p]; lacks {
				i++
				continue
			}
			out = append(out, c)
			if i == 0 {
				f.queue = f.queue[1:] // the usual case; O(1)
			} else {
				f.queue = append(f.queue[:i], f.queue[i+1:]...)
			}
		}
		wake := f.wake
		f.mu.Unlock()
		if len(out) > 0 || !wait {
			return out, true
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// requeue puts blocks back at the front of the queue for other streams.
func (f *fetch) requeueLocked(cids []cid.Cid) {
	if len(cids) == 0 {
		return
	}
	f.queue = append(append(make([]cid.Cid, 0, len(cids)+len(f.queue)), cids...), f.queue...)
	f.broadcastLocked()
}

// done records a stored block and queues its children.
func (f *fetch) done(ctx context.Context, p peer.ID, c cid.Cid, data []byte) error {
	var children []cid.Cid
	if c.Prefix().Codec != cid.Raw {
		var err error
		if children, err = f.e.links(c, data); err != nil {
			// The block matches its CID, so the DAG itself is malformed.
			return fmt.Errorf("exchange: links of %s: %w", c, err)
		}
	}
	// Count the block first: it is stored whatever happens next.
	f.mu.Lock()
	f.perPeer[p]++
	f.prog.Blocks++
	f.prog.Bytes += int64(len(data))
	if f.fc.fromPeer != nil {
		f.fc.fromPeer(p, len(data))
	}
	f.noteNodeLocked(c, data)
	if f.fc.progress != nil {
		f.fc.progress(f.prog) // under mu, so calls are serialized and in order
	}
	f.mu.Unlock()
	// Children are queued before the block stops being pending, so pending
	// cannot reach zero while part of the DAG is still unknown.
	err := f.discover(ctx, children)
	f.mu.Lock()
	f.pending--
	if f.pending == 0 {
		f.broadcastLocked()
	}
	f.mu.Unlock()
	return err
}

// lacks records that p does not have c and requeues it, failing the fetch
// if no live peer is left that might have it.
func (f *fetch) lacksLocked(p peer.ID, c cid.Cid) {
	m := f.notFound[c]
	if m == nil {
		m = make(map[peer.ID]struct{})
		f.notFound[c] = m
	}
	m[p] = struct{}{}
	f.requeueLocked([]cid.Cid{c})
	f.checkStuckLocked()
}

// checkStuckLocked fails the fetch when a queued block cannot be served by
// any live peer.
func (f *fetch) checkStuckLocked() {
	if f.pending == 0 || f.err != nil {
		return
	}
	if len(f.live) == 0 {
		f.failLocked(ErrNoPeers)
		return
	}
	for _, c := range f.queue {
		usable := false
		for p := range f.live {
			if _, lacks := f.notFound[c][p]; !lacks {
				usable = true
				break
			}
		}
		if !usable {
			f.failLocked(fmt.Errorf("%w: %s", ErrNotFound, c))
			return
		}
	}
}

// dropPeer stops using p for this fetch.
func (f *fetch) dropPeerLocked(p peer.ID, bad bool, err error) {
	if _, ok := f.live[p]; !ok {
		return
	}
	delete(f.live, p)
	f.stopPeer[p]()
	if bad {
		f.bad = append(f.bad, p)
	} else {
		f.failed[p] = err
	}
	f.broadcastLocked()
}

// runStream runs one stream to p: it keeps up to window blocks requested,
// reads the responses in order, verifies and stores each block.
func (f *fetch) runStream(ctx context.Context, p peer.ID) {
	var err error
	for attempt := 0; ; attempt++ {
		var open openSet
		var progressed bool
		progressed, err = f.stream(ctx, p, &open)
		f.mu.Lock()
		f.requeueLocked(open.list())
		f.mu.Unlock()
		// A stream that was delivering and then failed without the peer
		// misbehaving (the server closed it when idle, a transient reset)
		// is reopened a few times before the peer is given up.
		var pe peerError
		if err == nil || ctx.Err() != nil || !progressed || attempt >= maxReopen ||
			!errors.As(err, &pe) || pe.bad || errors.Is(err, ErrDenied) {
			break
		}
		f.e.log.Debug("reopening stream", "peer", p, "err", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil && f.err == nil && ctx.Err() == nil { // ctx ends when the fetch or this peer is stopped
		var pe peerError
		bad := errors.As(err, &pe) && pe.bad
		if bad {
			f.e.penalise(p, err)
		}
		f.e.log.Debug("fetch stream failed", "peer", p, "err", err)
		f.dropPeerLocked(p, bad, err)
	}
	if n, ok := f.live[p]; ok {
		if n == 1 {
			delete(f.live, p)
		} else {
			f.live[p] = n - 1
		}
	}
	f.checkStuckLocked()
}

// openSet holds the blocks a stream has requested and not yet stored, in
// request order, so they can be handed to other streams if it fails.
type openSet struct {
	mu   sync.Mutex // guards cids
	cids []cid.Cid
}

func (o *openSet) add(cs []cid.Cid) {
	o.mu.Lock()
	o.cids = append(o.cids, cs...)
	o.mu.Unlock()
}

func (o *openSet) remove(c cid.Cid) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, x := range o.cids {
		if x.Equals(c) {
			o.cids = append(o.cids[:i], o.cids[i+1:]...)
			return
		}
	}
}

func (o *openSet) list() []cid.Cid {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]cid.Cid(nil), o.cids...)
}

// peerError marks an error caused by the remote peer; bad means it broke
// the protocol or sent a wrong block and should be penalised.
type peerError struct {
	err error
	bad bool
}

func (e peerError) Error() string { return e.err.Error() }
func (e peerError) Unwrap() error { return e.err }

// processQueue is how many received blocks may wait for the fetch's
// processor; with the windows and the verify batch it bounds memory.
const processQueue = 4

// maxReopen caps how often one of a peer's streams is reopened after a
// failure that followed progress.
const maxReopen = 3

var blockPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20+1<<10); return &b }}

// received is a block read off a stream, waiting to be verified and stored.
// One with a nil buf is a flush: its stream has nothing more on the way, so
// blocks held for a batch must not wait for more.
type received struct {
	s        *streamRun
	c        cid.Cid
	buf      *[]byte // from blockPool
	verified bool    // hashed and checked while it was read
	stored   bool    // verified and stored by the store's PutMany
}

// streamRun is what one stream and the fetch's processor share about the
// blocks the stream has read.
type streamRun struct {
	p       peer.ID
	cancel  context.CancelFunc // ends the stream
	open    *openSet
	handled sync.WaitGroup // one count per block handed to the processor and not yet handled
	// Set by the processor; read by the stream after handled.Wait.
	progressed bool  // a block of this stream was stored
	err        error // first failure storing one of its blocks; ends the stream
}

// batchPutter is a block store that verifies and stores several blocks at
// once, hashing them together (storage.Blockstore). With
// WithStoreVerifies the fetcher hands it a stream's blocks in batches.
type batchPutter interface {
	PutMany(ctx context.Context, blocks []storage.Block) error
}

// batchVerify reports whether received blocks are hashed in batches of up
// to sha256x16.Lanes in the vector unit rather than one by one as they are
// read: when the CPU has one (about 2.5x the throughput of a SHA-NI stream
// with full batches) and the store does not hash on Put itself.
func (f *fetch) batchVerify() bool {
	return sha256x16.Accelerated() && f.e.cfg.putVerifies == nil
}

// batchPut reports whether received blocks are stored in batches with the
// store's PutMany, which verifies them (WithStoreVerifies).
func (f *fetch) batchPut() bool {
	_, ok := f.e.bs.(batchPutter)
	return ok && f.e.cfg.putVerifies != nil
}

// batching reports whether the processor collects blocks into batches of
// up to sha256x16.Lanes, to hash them together (itself or in the store).
func (f *fetch) batching() bool { return f.batchVerify() || f.batchPut() }

// putMany stores a batch with the store's PutMany and marks its blocks
// stored. When one of them does not match its CID nothing is stored and
// none is marked: store then puts them one at a time, which finds the bad
// one and blames the peer. Any other failure ends the fetch.
func (f *fetch) putMany(batch []received) error {
	blocks := make([]storage.Block, len(batch))
	for i, it := range batch {
		blocks[i] = storage.Block{CID: it.c, Data: *it.buf}
	}
	err := f.e.bs.(batchPutter).PutMany(f.ctx, blocks)
	switch {
	case err == nil:
		for i := range batch {
			batch[i].stored = true
		}
	case f.e.cfg.putVerifies(err):
	default:
		err = fmt.Errorf("exchange: store %d blocks: %w", len(batch), err)
		f.mu.Lock()
		f.failLocked(err)
		f.mu.Unlock()
		return err
	}
	return nil
}

// verifyBatch hashes the unverified sha2-256 blocks of batch at once and
// marks those that match their CID. One that does not stays unverified, so
// store checks it again on its own and blames the peer.
func verifyBatch(batch []received) {
	var msgs [][]byte
	var at []int
	for i, it := range batch {
		p := it.c.Prefix()
		if !it.verified && p.MhType == mh.SHA2_256 && p.MhLength == sha256.Size {
			msgs = append(msgs, *it.buf)
			at = append(at, i)
		}
	}
	if len(msgs) == 0 {
		return
	}
	sums := make([][sha256.Size]byte, len(msgs))
	sha256x16.Sum(msgs, sums)
	for k, i := range at {
		h := batch[i].c.Hash()
		batch[i].verified = bytes.Equal(sums[k][:], h[len(h)-sha256.Size:])
	}
}

// processor verifies and stores the blocks every stream of the fetch reads,
// until f.work is closed. With the vector hash or the store's PutMany it
// collects them in batches of up to sha256x16.Lanes, from whichever
// streams they come, and handles a partial batch when a stream says it has
// nothing more on the way.
func (f *fetch) processor() {
	var batch []received
	for item := range f.work {
		if item.buf != nil {
			batch = append(batch, item)
		}
		if item.buf == nil || !f.batching() || len(batch) >= sha256x16.Lanes {
			f.processBatch(batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	f.processBatch(batch)
}

// processBatch verifies (in one vector pass, or with PutMany) and stores a
// batch of received blocks, and settles each with its stream. A block that
// arrived whole is kept even if its stream or peer has been dropped since
// (it is checked against its CID like any other); only the end of the
// whole fetch drops blocks not stored yet. A block that cannot be stored
// ends its stream with the error.
func (f *fetch) processBatch(batch []received) {
	switch {
	case len(batch) == 0:
		return
	case f.ctx.Err() != nil:
	case f.batchVerify():
		verifyBatch(batch)
	case f.batchPut():
		// A failure other than a mismatch fails the fetch; the blocks
		// are then dropped below.
		_ = f.putMany(batch)
	}
	for _, item := range batch {
		s := item.s
		// Blocks PutMany stored are recorded even after a failure, so
		// the stats count every block stored.
		if !item.stored && f.ctx.Err() != nil {
			blockPool.Put(item.buf)
			s.handled.Done()
			continue
		}
		if err := f.store(s.p, item); err != nil {
			if s.err == nil {
				s.err = err
				s.cancel()
			}
		} else {
			s.open.remove(item.c)
			s.progressed = true
		}
		blockPool.Put(item.buf)
		s.handled.Done()
	}
}

// stream runs one stream to p. Its reader (this goroutine) keeps up to
// window blocks requested, reads responses in order and hashes blocks as
// they arrive (readBlock) unless they are hashed in batches; the fetch's
// processor verifies and stores them. Splitting the two keeps the muxer's
// receive window draining while a block is hashed or written to the store.
func (f *fetch) stream(ctx context.Context, p peer.ID, open *openSet) (progressed bool, _ error) {
	s, err := f.e.host.NewStream(ctx, p, ProtocolName)
	if err != nil {
		return false, peerError{err: err}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() { _ = s.Reset() }()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	run := &streamRun{p: p, cancel: cancel, open: open}
	err = f.read(ctx, run, s)
	// Whatever the reader stopped for, the blocks it read are handled
	// (stored, or dropped if the fetch has ended) before the stream's
	// open blocks are handed back: a batch holding some of them is
	// flushed first.
	f.work <- received{s: run}
	run.handled.Wait()
	if run.err != nil {
		return run.progressed, run.err
	}
	return run.progressed, err
}

// store verifies a received block, stores it (unless PutMany has) and
// records it. A bad block is the peer's fault; a store failure ends the
// whole fetch. It runs under the fetch's context, not the stream's: once a
// block has arrived, storing it does not depend on the peer that sent it
// still being in use.
func (f *fetch) store(p peer.ID, item received) error {
	ctx := f.ctx
	c, data := item.c, *item.buf
	if !item.stored {
		if err := f.put(ctx, c, data, item.verified); err != nil {
			return err
		}
	}
	if err := f.done(ctx, p, c, data); err != nil {
		f.mu.Lock()
		f.failLocked(err)
		f.mu.Unlock()
		return err
	}
	return nil
}

// put verifies a block (unless the reader has, or the store does) and
// stores it.
func (f *fetch) put(ctx context.Context, c cid.Cid, data []byte, verified bool) error {
	isMismatch := f.e.cfg.putVerifies
	if isMismatch == nil && !verified {
		if err := verify(c, data); err != nil {
			return peerError{err: err, bad: true}
		}
	}
	if err := f.e.bs.Put(ctx, c, data); err != nil {
		if isMismatch != nil && isMismatch(err) {
			return peerError{err: fmt.Errorf("%w: %v", ErrBadBlock, err), bad: true}
		}
		f.mu.Lock()
		f.failLocked(fmt.Errorf("exchange: store %s: %w", c, err))
		f.mu.Unlock()
		return err
	}
	return nil
}

// read is a stream's reader loop; it returns nil when the fetch is done.
func (f *fetch) read(ctx context.Context, run *streamRun, s io.ReadWriter) error {
	p, open := run.p, run.open
	// The read buffer only needs to hold a header: block bytes are read
	// straight into their buffer, and a bigger buffer would copy each
	// block's first bytes twice.
	r := bufio.NewReaderSize(s, MaxHeaderSize+binary.MaxVarintLen64)
	w := bufio.NewWriterSize(s, 4<<10)
	window := f.e.cfg.window
	rootCID := protocol.NewCID(f.root)
	var requested []cid.Cid // sent and not yet answered, in order
	var hbuf []byte
	unflushed := false // blocks sent to work since the last flush item
	for {
		// Refill the window; block only when nothing is in flight.
		if len(requested) <= window/2 {
			if len(requested) == 0 && unflushed {
				// About to wait for work: blocks held for a batch must not
				// wait with it (the work may be their children).
				select {
				case f.work <- received{s: run}:
					unflushed = false
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			wants, ok := f.take(ctx, p, window-len(requested), len(requested) == 0)
			if !ok && len(requested) == 0 {
				return nil
			}
			if len(wants) > 0 {
				req := Request{Root: rootCID, Wants: make([]protocol.CID, len(wants))}
				for i, c := range wants {
					req.Wants[i] = protocol.NewCID(c)
				}
				open.add(wants)
				requested = append(requested, wants...)
				body, err := EncodeRequest(&req)
				if err != nil {
					return err
				}
				if err := writeFrame(w, body); err != nil {
					return peerError{err: err}
				}
				if err := w.Flush(); err != nil {
					return peerError{err: err}
				}
			}
		}
		want := requested[0]
		hb, err := readFrame(r, MaxHeaderSize, hbuf)
		if err != nil {
			return peerError{err: fmt.Errorf("read response: %w", noEOF(err)), bad: errors.Is(err, ErrTooLarge)}
		}
		hbuf = hb[:0]
		resp, err := DecodeResponse(hb)
		if err != nil {
			return peerError{err: err, bad: true}
		}
		switch resp.Status {
		case StatusOK:
		case StatusNotFound, StatusError:
			if !resp.CID.Equals(want) {
				return peerError{err: fmt.Errorf("%w: answered %s for %s", ErrBadResponse, resp.CID, want), bad: true}
			}
			requested = requested[1:]
			open.remove(want)
			f.mu.Lock()
			f.lacksLocked(p, want)
			f.mu.Unlock()
			continue
		case StatusDenied:
			return peerError{err: fmt.Errorf("%w: %s", ErrDenied, resp.Message)}
		default:
			return peerError{err: fmt.Errorf("%w: %s: %s", ErrBadResponse, resp.Status, resp.Message)}
		}
		if !resp.CID.Equals(want) {
			return peerError{err: fmt.Errorf("%w: sent %s for %s", ErrBadResponse, resp.CID, want), bad: true}
		}
		bp := blockPool.Get().(*[]byte)
		if uint64(cap(*bp)) < resp.Size {
			*bp = make([]byte, resp.Size)
		}
		*bp = (*bp)[:resp.Size]
		verified, err := f.readBlock(r, want, *bp)
		if err != nil {
			blockPool.Put(bp)
			return err
		}
		requested = requested[1:]
		run.handled.Add(1)
		select {
		case f.work <- received{s: run, c: want, buf: bp, verified: verified}:
			unflushed = true
		case <-ctx.Done():
			run.handled.Done()
			blockPool.Put(bp)
			return ctx.Err()
		}
	}
}

// readBlock reads a block's bytes into buf. Unless the store verifies on
// Put, a sha2-256 block is hashed piece by piece as it arrives: the hash
// runs in the gaps while the reader waits for data, on bytes still in the
// cache, instead of as one long burst after the block is complete. It
// reports whether the block was checked; a mismatch is the peer's fault.
func (f *fetch) readBlock(r io.Reader, c cid.Cid, buf []byte) (verified bool, _ error) {
	p := c.Prefix()
	if f.e.cfg.putVerifies != nil || f.batchVerify() || p.MhType != mh.SHA2_256 || p.MhLength != sha256.Size {
		if _, err := io.ReadFull(r, buf); err != nil {
			return false, peerError{err: fmt.Errorf("read block %s: %w", c, noEOF(err))}
		}
		return false, nil
	}
	h := sha256.New()
	for off := 0; off < len(buf); {
		n, err := r.Read(buf[off:])
		if n > 0 {
			h.Write(buf[off : off+n])
			off += n
		}
		if err != nil && off < len(buf) {
			return false, peerError{err: fmt.Errorf("read block %s: %w", c, noEOF(err))}
		}
	}
	dm, err := mh.Decode(c.Hash())
	if err != nil || !bytes.Equal(h.Sum(nil), dm.Digest) {
		return false, peerError{err: fmt.Errorf("%w: %s", ErrBadBlock, c), bad: true}
	}
	return true, nil
}
