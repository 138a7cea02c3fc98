package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/storage"
	"github.com/gpunode/gpunode/storage/exchange"
)

// DataConfig configures the daemon's data service (the block exchange and
// the /api/v1/data endpoints). The zero value is the default.
type DataConfig struct {
	// ServeRate caps the bytes per second this node serves to other peers,
	// over all streams together; 0 means no cap.
	ServeRate int64
	// Reannounce is how often every held root is announced on the DHT again
	// (provider records expire); default DefaultReannounce.
	Reannounce time.Duration
}

// DefaultReannounce is how often held roots are announced again by default.
// Provider records live 48 hours in kad-dht; announcing hourly keeps them
// fresh and repairs records lost with peers that left.
const DefaultReannounce = time.Hour

// announceRetry is how soon a root whose announcement failed (e.g. the
// routing table was still empty) is announced again.
const announceRetry = 10 * time.Second

// findTimeout bounds the DHT search for holders of a root.
const findTimeout = 30 * time.Second

// maxHolders is how many holders found on the DHT a fetch uses.
const maxHolders = 8

// keepTransfers is how many transfers the service remembers; the oldest
// finished ones are forgotten beyond it.
const keepTransfers = 256

// progressEvery is how often a running add or get publishes a progress event.
const progressEvery = 250 * time.Millisecond

// Transfer states.
const (
	TransferFinding   = "finding"   // looking for holders on the DHT
	TransferFetching  = "fetching"  // pulling blocks from peers
	TransferExporting = "exporting" // writing the file out of the store
	TransferDone      = "done"
	TransferFailed    = "failed"
)

// DataAddRequest is the body of POST /api/v1/data/add.
type DataAddRequest struct {
	Path  string `json:"path"`             // absolute path on the daemon's machine
	NoPin bool   `json:"no_pin,omitempty"` // leave the root unpinned (GC removes it)
}

// DataAddResult is the answer of POST /api/v1/data/add.
type DataAddResult struct {
	Root   string  `json:"root"`
	Name   string  `json:"name"`
	Size   uint64  `json:"size"`   // content bytes
	Blocks int     `json:"blocks"` // manifest nodes and chunks
	Secs   float64 `json:"seconds"`
}

// DataGetRequest is the body of POST /api/v1/data/get.
type DataGetRequest struct {
	Root   string `json:"root"`
	Output string `json:"output"` // absolute path to write the file or directory to
	// Peers to fetch from: peer IDs, or multiaddrs ending in /p2p/<peer ID>.
	// When empty the holders are found on the DHT.
	Peers     []string `json:"peers,omitempty"`
	Overwrite bool     `json:"overwrite,omitempty"` // replace an existing file at Output
}

// DataPeerCount is what one peer served to a transfer.
type DataPeerCount struct {
	Peer   string `json:"peer"`
	Blocks int64  `json:"blocks"`
	Bytes  int64  `json:"bytes"`
}

// DataTransfer is the state of one get, the answer of POST /api/v1/data/get
// and GET /api/v1/data/transfers/{id} and the data of the data.get.* events.
type DataTransfer struct {
	ID     string `json:"id"`
	Root   string `json:"root"`
	Output string `json:"output"`
	State  string `json:"state"` // TransferFinding ... TransferFailed
	Error  string `json:"error,omitempty"`
	// TotalBytes is the content size recorded in the root manifest, 0 until
	// the root block is held.
	TotalBytes int64 `json:"total_bytes"`
	// ContentBytes is the content held so far, fetched or already here:
	// it reaches TotalBytes when the fetch completes.
	ContentBytes  int64 `json:"content_bytes"`
	Blocks        int64 `json:"blocks"`         // blocks fetched and stored by this transfer
	Bytes         int64 `json:"bytes"`          // their bytes
	SkippedBlocks int64 `json:"skipped_blocks"` // blocks already held, not fetched
	KnownBlocks   int64 `json:"known_blocks"`   // blocks of the DAG discovered so far
	ExportedBytes int64 `json:"exported_bytes"`
	// Peers counts what each serving peer delivered; the counts add up to
	// Blocks and Bytes (a block is never counted twice).
	Peers       []DataPeerCount   `json:"peers"`
	Holders     []string          `json:"holders,omitempty"`      // the peers the fetch asked
	FailedPeers map[string]string `json:"failed_peers,omitempty"` // dropped mid-transfer, with why
	BadPeers    []string          `json:"bad_peers,omitempty"`    // dropped for sending a bad block
	StartedAt   time.Time         `json:"started_at"`
	Seconds     float64           `json:"seconds"`        // since the start, including the DHT search
	FetchSecs   float64           `json:"fetch_seconds"`  // the block fetch alone, once it ended
	ExportSecs  float64           `json:"export_seconds"` // writing the output, once it ended
}

// Finished reports whether the transfer is over (done or failed).
func (t DataTransfer) Finished() bool { return t.State == TransferDone || t.State == TransferFailed }

// DataRoot is one entry of GET /api/v1/data.
type DataRoot struct {
	Root   string `json:"root"`
	Name   string `json:"name,omitempty"`
	Type   string `json:"type,omitempty"` // file or dir, when the root block is held
	Size   uint64 `json:"size"`           // content bytes recorded in the manifest
	Blocks int    `json:"blocks"`         // 0 while manifest nodes are missing
	Pinned bool   `json:"pinned"`
}

// DataRootRequest is the body of POST /api/v1/data/pin and /unpin.
type DataRootRequest struct {
	Root string `json:"root"`
}

// DataGCResult is the answer of POST /api/v1/data/gc.
type DataGCResult struct {
	Blocks  int   `json:"blocks"`
	Bytes   int64 `json:"bytes"`
	Orphans int   `json:"orphans"`
}

// dataService serves and fetches blocks for the daemon and runs the data
// endpoints.
type dataService struct {
	cfg    DataConfig
	node   *Node
	bs     *storage.Blockstore
	ex     *exchange.Exchange
	roots  *storage.Keyspace // roots added or fetched here -> rootRecord JSON
	events api.Publisher
	log    *slog.Logger

	ctx    context.Context // ends at Close; every transfer and the announcer run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan cid.Cid // roots to announce now

	mu        sync.Mutex // guards transfers and nextID
	transfers map[string]*transfer
	nextID    uint64
}

// rootRecord remembers a root added or fetched here, so ls can show it
// after it is unpinned and until GC removes it.
type rootRecord struct {
	Name string    `json:"name,omitempty"`
	At   time.Time `json:"at"`
}

// transfer is one get in progress or finished.
type transfer struct {
	mu      sync.Mutex // guards st and perPeer
	st      DataTransfer
	perPeer map[peer.ID]*DataPeerCount
	started time.Time
}

func (t *transfer) snapshot() DataTransfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.st
	st.Peers = make([]DataPeerCount, 0, len(t.perPeer))
	for _, c := range t.perPeer {
		st.Peers = append(st.Peers, *c)
	}
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].Peer < st.Peers[j].Peer })
	st.Holders = slices.Clone(st.Holders)
	st.BadPeers = slices.Clone(st.BadPeers)
	st.FailedPeers = maps.Clone(st.FailedPeers)
	if !st.Finished() {
		st.Seconds = time.Since(t.started).Seconds()
	}
	return st
}

func (t *transfer) update(f func(st *DataTransfer)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.st)
}

// startData starts the data service of d: it serves blocks on the node,
// announces held roots and registers the data endpoints. Call it before the
// API starts; close it before the node.
func startData(d *Daemon) (*dataService, error) {
	cfg := d.cfg.Data
	if cfg.Reannounce <= 0 {
		cfg.Reannounce = DefaultReannounce
	}
	log := d.log.With("subsystem", "data")
	s := &dataService{
		cfg: cfg, node: d.node, bs: d.blocks, events: d.events, log: log,
		roots:     d.db.Keyspace("data.roots"),
		kick:      make(chan cid.Cid, 64),
		transfers: make(map[string]*transfer),
	}
	var h exchange.Host = d.node
	if cfg.ServeRate > 0 {
		burst := int(min(max(cfg.ServeRate/10, 16<<10), 1<<20))
		h = limitedHost{Host: h, lim: rate.NewLimiter(rate.Limit(cfg.ServeRate), burst)}
	}
	var err error
	s.ex, err = exchange.New(h, d.blocks, storage.Links,
		exchange.WithLogger(log.With("subsystem", "exchange")),
		exchange.WithStoreVerifies(func(err error) bool { return errors.Is(err, storage.ErrCIDMismatch) }),
		exchange.WithContentSize(func(_ cid.Cid, data []byte) (int64, bool) {
			n, err := storage.DecodeNode(data)
			if err != nil {
				return 0, false
			}
			return int64(n.Size), true
		}))
	if err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	routes := []api.Route{
		{Method: http.MethodPost, Path: "/data/add", Handler: api.JSON(s.add)},
		{Method: http.MethodPost, Path: "/data/get", Handler: api.JSON(s.get)},
		{Method: http.MethodGet, Path: "/data/transfers/{id}", Handler: api.JSON(s.transferStatus)},
		{Method: http.MethodGet, Path: "/data/transfers", Handler: api.JSON(s.transferList)},
		{Method: http.MethodGet, Path: "/data", Handler: api.JSON(s.ls)},
		{Method: http.MethodPost, Path: "/data/pin", Handler: api.JSON(s.pin)},
		{Method: http.MethodPost, Path: "/data/unpin", Handler: api.JSON(s.unpin)},
		{Method: http.MethodPost, Path: "/data/gc", Handler: api.JSON(s.gc)},
	}
	for _, r := range routes {
		if err := d.api.Handle(r); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.announcer()
	}()
	return s, nil
}

// Close stops serving, ends transfers in progress and waits for them.
func (s *dataService) Close() error {
	err := s.ex.Close()
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return err
}

// announcer announces every held root at start and every Reannounce, a
// kicked root at once, and retries failed announcements soon.
func (s *dataService) announcer() {
	ctx := s.ctx
	full := time.NewTimer(0)
	defer full.Stop()
	retry := time.NewTicker(announceRetry)
	defer retry.Stop()
	failed := map[cid.Cid]bool{}
	refreshed := false
	announce := func(c cid.Cid) {
		if !refreshed && len(s.node.RoutingTablePeers()) > 0 {
			// The DHT pitfall: refresh before the first provide so the
			// record goes to the right peers.
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := s.node.RefreshRoutingTable(rctx); err != nil {
				s.log.Debug("routing table refresh before announce", "err", err)
			}
			cancel()
			refreshed = true
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		err := exchange.Announce(actx, s.node.DHT(), c)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("announce failed, will retry", "root", c, "err", err)
				failed[c] = true
			}
			return
		}
		delete(failed, c)
		s.log.Debug("announced", "root", c)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.kick:
			announce(c)
		case <-retry.C:
			for c := range failed {
				announce(c)
			}
		case <-full.C:
			pins, err := s.bs.Pins(ctx)
			if err != nil {
				s.log.Warn("list pins to announce", "err", err)
			}
			for _, c := range pins {
				if has, _ := s.bs.Has(ctx, c); has {
					announce(c)
				}
			}
			full.Reset(s.cfg.Reannounce)
		}
	}
}

func (s *dataService) announceSoon(c cid.Cid) {
	select {
	case s.kick <- c:
	default:
		// The announcer is busy with a backlog; the periodic pass will
		// get to this root.
	}
}

func (s *dataService) remember(c cid.Cid, name string) {
	b, _ := json.Marshal(rootRecord{Name: name, At: time.Now().UTC()})
	if err := s.roots.Put(c.Bytes(), b); err != nil {
		s.log.Warn("record root", "root", c, "err", err)
	}
}

// requestCtx is r's context, also ended when the service closes.
func (s *dataService) requestCtx(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

func parseRoot(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "root CID missing")
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "bad root CID %q: %v", s, err)
	}
	if err := storage.CheckCID(c); err != nil {
		return cid.Undef, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "bad root CID %q: %v", s, err)
	}
	return c, nil
}

func (s *dataService) add(r *http.Request, in DataAddRequest) (DataAddResult, error) {
	if in.Path == "" || !filepath.IsAbs(in.Path) {
		return DataAddResult{}, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "path %q must be absolute", in.Path)
	}
	ctx, cancel := s.requestCtx(r)
	defer cancel()
	start := time.Now()
	var last time.Time
	root, err := storage.Import(ctx, s.bs, in.Path, storage.ImportOptions{
		NoPin: in.NoPin,
		Progress: func(n int64) {
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				s.events.Publish("data.add.progress", map[string]any{"path": in.Path, "bytes": n})
			}
		},
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return DataAddResult{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, storage.ErrUnsupportedFile), errors.Is(err, storage.ErrBadManifest):
		return DataAddResult{}, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	case err != nil:
		return DataAddResult{}, err
	}
	info, err := storage.Stat(ctx, s.bs, root)
	if err != nil {
		return DataAddResult{}, err
	}
	s.remember(root, info.Name)
	if !in.NoPin {
		s.announceSoon(root)
	}
	res := DataAddResult{Root: root.String(), Name: info.Name, Size: info.Size, Blocks: info.Blocks, Secs: time.Since(start).Seconds()}
	s.events.Publish("data.add.done", res)
	s.log.Info("data added", "root", root, "path", in.Path, "bytes", info.Size, "took", time.Since(start))
	return res, nil
}

// parsePeers turns peer IDs and /p2p multiaddrs into peer IDs, recording
// the addresses of the latter.
func (s *dataService) parsePeers(in []string) ([]peer.ID, error) {
	var out []peer.ID
	for _, p := range in {
		if strings.HasPrefix(p, "/") {
			a, err := ma.NewMultiaddr(p)
			if err != nil {
				return nil, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "bad peer address %q: %v", p, err)
			}
			ai, err := peer.AddrInfoFromP2pAddr(a)
			if err != nil {
				return nil, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "bad peer address %q: %v", p, err)
			}
			s.node.Host().Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
			out = append(out, ai.ID)
			continue
		}
		id, err := peer.Decode(p)
		if err != nil {
			return nil, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "bad peer ID %q: %v", p, err)
		}
		out = append(out, id)
	}
	return out, nil
}

func (s *dataService) get(r *http.Request, in DataGetRequest) (DataTransfer, error) {
	root, err := parseRoot(in.Root)
	if err != nil {
		return DataTransfer{}, err
	}
	if in.Output == "" || !filepath.IsAbs(in.Output) {
		return DataTransfer{}, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "output path %q must be absolute", in.Output)
	}
	peers, err := s.parsePeers(in.Peers)
	if err != nil {
		return DataTransfer{}, err
	}
	now := time.Now()
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return DataTransfer{}, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "shutting down")
	}
	s.nextID++
	id := strconv.FormatUint(s.nextID, 10)
	t := &transfer{
		st:      DataTransfer{ID: id, Root: root.String(), Output: in.Output, State: TransferFetching, StartedAt: now.UTC()},
		perPeer: make(map[peer.ID]*DataPeerCount),
		started: now,
	}
	if len(peers) == 0 {
		t.st.State = TransferFinding
	}
	s.transfers[id] = t
	s.pruneLocked()
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.runGet(t, root, peers, in.Output, in.Overwrite)
	}()
	st := t.snapshot()
	s.events.Publish("data.get.started", st)
	return st, nil
}

// pruneLocked forgets the oldest finished transfers beyond keepTransfers.
func (s *dataService) pruneLocked() {
	if len(s.transfers) <= keepTransfers {
		return
	}
	var done []uint64
	for id, t := range s.transfers {
		if t.snapshot().Finished() {
			n, _ := strconv.ParseUint(id, 10, 64)
			done = append(done, n)
		}
	}
	slices.Sort(done)
	for _, n := range done[:min(len(done), len(s.transfers)-keepTransfers)] {
		delete(s.transfers, strconv.FormatUint(n, 10))
	}
}

// runGet runs one transfer to its end: find holders, fetch, export.
func (s *dataService) runGet(t *transfer, root cid.Cid, peers []peer.ID, output string, overwrite bool) {
	ctx := s.ctx
	fail := func(err error) {
		t.update(func(st *DataTransfer) {
			st.State = TransferFailed
			st.Error = err.Error()
			st.Seconds = time.Since(t.started).Seconds()
		})
		snap := t.snapshot()
		s.events.Publish("data.get.failed", snap)
		s.log.Warn("data get failed", "id", snap.ID, "root", root, "err", err)
	}
	// Pinned before the first block arrives, so a GC during the fetch keeps
	// what is already here, and a restarted get resumes from it.
	if err := s.bs.Pin(ctx, root); err != nil {
		fail(fmt.Errorf("pin root: %w", err))
		return
	}
	s.remember(root, "")
	if len(peers) == 0 && !s.completeHere(ctx, root) {
		var err error
		if peers, err = s.findHolders(ctx, root); err != nil {
			fail(err)
			return
		}
	}
	t.update(func(st *DataTransfer) {
		st.State = TransferFetching
		for _, p := range peers {
			st.Holders = append(st.Holders, p.String())
		}
	})

	// Progress events at most every progressEvery, plus the total size
	// once the root manifest is here.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			s.learnTotal(ctx, t, root)
			s.events.Publish("data.get.progress", t.snapshot())
		}
	}()
	fetchStart := time.Now()
	stats, err := s.ex.Fetch(ctx, root, peers,
		exchange.WithProgress(func(p exchange.Progress) {
			t.update(func(st *DataTransfer) {
				st.Blocks, st.Bytes, st.SkippedBlocks, st.KnownBlocks = p.Blocks, p.Bytes, p.SkippedBlocks, p.KnownBlocks
				st.ContentBytes = p.ContentBytes
				if p.TotalBytes > 0 {
					st.TotalBytes = p.TotalBytes
				}
			})
		}),
		exchange.WithBlockFrom(func(p peer.ID, size int) {
			t.mu.Lock()
			c := t.perPeer[p]
			if c == nil {
				c = &DataPeerCount{Peer: p.String()}
				t.perPeer[p] = c
			}
			c.Blocks++
			c.Bytes += int64(size)
			t.mu.Unlock()
		}))
	close(done)
	wg.Wait()
	t.update(func(st *DataTransfer) {
		st.FetchSecs = time.Since(fetchStart).Seconds()
		st.Blocks, st.Bytes, st.SkippedBlocks, st.KnownBlocks = stats.Blocks, stats.Bytes, stats.SkippedBlocks, stats.KnownBlocks
		st.ContentBytes = stats.ContentBytes
		for p, e := range stats.Failed {
			if st.FailedPeers == nil {
				st.FailedPeers = map[string]string{}
			}
			st.FailedPeers[p.String()] = e.Error()
		}
		for _, p := range stats.BadPeers {
			st.BadPeers = append(st.BadPeers, p.String())
		}
	})
	if err != nil {
		fail(fmt.Errorf("fetch: %w", err))
		return
	}
	s.learnTotal(ctx, t, root)
	t.update(func(st *DataTransfer) { st.State = TransferExporting })
	exportStart := time.Now()
	err = storage.Export(ctx, s.bs, root, output, storage.ExportOptions{
		Overwrite: overwrite,
		Progress: func(n int64) {
			t.update(func(st *DataTransfer) { st.ExportedBytes = n })
		},
	})
	t.update(func(st *DataTransfer) { st.ExportSecs = time.Since(exportStart).Seconds() })
	if err != nil {
		fail(fmt.Errorf("export: %w", err))
		return
	}
	if info, err := storage.Stat(ctx, s.bs, root); err == nil {
		s.remember(root, info.Name)
	}
	s.announceSoon(root)
	t.update(func(st *DataTransfer) {
		st.State = TransferDone
		st.Seconds = time.Since(t.started).Seconds()
	})
	snap := t.snapshot()
	s.events.Publish("data.get.done", snap)
	s.log.Info("data fetched", "id", snap.ID, "root", root, "bytes", snap.Bytes, "skipped_blocks", snap.SkippedBlocks, "took", time.Since(t.started))
}

// completeHere reports whether the whole DAG under root is held already: a
// fetch without peers walks it locally and fails at once if a block is
// missing.
func (s *dataService) completeHere(ctx context.Context, root cid.Cid) bool {
	if has, _ := s.bs.Has(ctx, root); !has {
		return false
	}
	_, err := s.ex.Fetch(ctx, root, nil)
	return err == nil
}

// findHolders searches the DHT for holders of root until some are found
// or findTimeout passes (an announcement may still be on its way).
func (s *dataService) findHolders(ctx context.Context, root cid.Cid) ([]peer.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	for {
		if peers := exchange.FindHolders(ctx, s.node.DHT(), root, s.node.PeerID(), maxHolders); len(peers) > 0 {
			return peers, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no holders of %s found on the DHT within %v", root, findTimeout)
		case <-time.After(time.Second):
		}
	}
}

// learnTotal records the content size from the root manifest once the root
// block is held.
func (s *dataService) learnTotal(ctx context.Context, t *transfer, root cid.Cid) {
	t.mu.Lock()
	known := t.st.TotalBytes > 0
	t.mu.Unlock()
	if known {
		return
	}
	if has, _ := s.bs.Has(ctx, root); !has {
		return
	}
	b, err := s.bs.Get(ctx, root)
	if err != nil {
		return
	}
	n, err := storage.DecodeNode(b)
	if err != nil {
		return
	}
	t.update(func(st *DataTransfer) { st.TotalBytes = int64(n.Size) })
}

func (s *dataService) transferStatus(r *http.Request, _ struct{}) (DataTransfer, error) {
	id := r.PathValue("id")
	s.mu.Lock()
	t := s.transfers[id]
	s.mu.Unlock()
	if t == nil {
		return DataTransfer{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "no transfer %q", id)
	}
	return t.snapshot(), nil
}

func (s *dataService) transferList(r *http.Request, _ struct{}) ([]DataTransfer, error) {
	s.mu.Lock()
	ts := make([]*transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := make([]DataTransfer, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

func (s *dataService) ls(r *http.Request, _ struct{}) ([]DataRoot, error) {
	ctx := r.Context()
	pins, err := s.bs.Pins(ctx)
	if err != nil {
		return nil, err
	}
	pinned := map[cid.Cid]bool{}
	for _, c := range pins {
		pinned[c] = true
	}
	names := map[cid.Cid]string{}
	err = s.roots.Iterate(nil, func(k, v []byte) error {
		c, err := cid.Cast(k)
		if err != nil {
			return nil // not ours to judge; skip
		}
		var rec rootRecord
		_ = json.Unmarshal(v, &rec)
		names[c] = rec.Name
		return nil
	})
	if err != nil {
		return nil, err
	}
	all := map[cid.Cid]bool{}
	for c := range pinned {
		all[c] = true
	}
	for c := range names {
		all[c] = true
	}
	out := []DataRoot{}
	for c := range all {
		e := DataRoot{Root: c.String(), Name: names[c], Pinned: pinned[c]}
		has, err := s.bs.Has(ctx, c)
		if err != nil {
			return nil, err
		}
		if !has && !e.Pinned {
			continue // collected
		}
		if has {
			if info, err := storage.Stat(ctx, s.bs, c); err == nil {
				e.Name, e.Type, e.Size, e.Blocks = info.Name, info.Type, info.Size, info.Blocks
			} else if b, err := s.bs.Get(ctx, c); err == nil {
				if n, err := storage.DecodeNode(b); err == nil {
					e.Name, e.Type, e.Size = n.Name, n.Type, n.Size
				}
			}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Root < out[j].Root })
	return out, nil
}

func (s *dataService) pin(r *http.Request, in DataRootRequest) (DataRoot, error) {
	c, err := parseRoot(in.Root)
	if err != nil {
		return DataRoot{}, err
	}
	has, err := s.bs.Has(r.Context(), c)
	if err != nil {
		return DataRoot{}, err
	}
	if !has {
		return DataRoot{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "root %s is not held here (get it first)", c)
	}
	if err := s.bs.Pin(r.Context(), c); err != nil {
		return DataRoot{}, err
	}
	s.announceSoon(c)
	return DataRoot{Root: c.String(), Pinned: true}, nil
}

func (s *dataService) unpin(r *http.Request, in DataRootRequest) (DataRoot, error) {
	c, err := parseRoot(in.Root)
	if err != nil {
		return DataRoot{}, err
	}
	if err := s.bs.Unpin(r.Context(), c); err != nil {
		if errors.Is(err, storage.ErrNotPinned) {
			return DataRoot{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "root %s is not pinned", c)
		}
		return DataRoot{}, err
	}
	return DataRoot{Root: c.String(), Pinned: false}, nil
}

func (s *dataService) gc(r *http.Request, _ struct{}) (DataGCResult, error) {
	ctx, cancel := s.requestCtx(r)
	defer cancel()
	st, err := s.bs.GC(ctx)
	if err != nil {
		return DataGCResult{}, err
	}
	// Forget roots that are gone.
	var gone [][]byte
	_ = s.roots.Iterate(nil, func(k, _ []byte) error {
		if c, err := cid.Cast(k); err == nil {
			if has, _ := s.bs.Has(ctx, c); !has {
				gone = append(gone, k)
			}
		}
		return nil
	})
	for _, k := range gone {
		_ = s.roots.Delete(k)
	}
	res := DataGCResult{Blocks: st.Blocks, Bytes: st.Bytes, Orphans: st.Orphans}
	s.events.Publish("data.gc", res)
	return res, nil
}

// limitedHost caps the bytes per second written on every stream it serves,
// all streams sharing one limiter.
type limitedHost struct {
	exchange.Host
	lim *rate.Limiter
}

func (h limitedHost) SetStreamHandler(name string, fn network.StreamHandler) {
	h.Host.SetStreamHandler(name, func(s network.Stream) {
		fn(&limitedStream{Stream: s, lim: h.lim})
	})
}

type limitedStream struct {
	network.Stream
	lim *rate.Limiter
}

func (s *limitedStream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), s.lim.Burst())
		if err := s.lim.WaitN(context.Background(), k); err != nil {
			return n, err
		}
		m, err := s.Stream.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}
