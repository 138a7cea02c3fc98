package exchange

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gpunode/gpunode/protocol"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Blockstore is what the exchange needs of the block store. Get must return
// verified bytes; Put must verify data against c and must not keep data
// after it returns (the exchange reuses its buffers). A store that also has
// PutMany(ctx, []storage.Block) error, with the same duties and storing
// nothing when a block does not match, gets fetched blocks in batches
// through it when WithStoreVerifies is set.
type Blockstore interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	Put(ctx context.Context, c cid.Cid, data []byte) error
}

// LinksFunc lists the children of a block (none for a raw chunk, the
// manifest's links for a dag-cbor node). storage.Links is the real one.
type LinksFunc func(c cid.Cid, data []byte) ([]cid.Cid, error)

// AllowFunc is the serving policy: whether peer p may fetch blocks under
// root (e.g. only the parties of a lease).
type AllowFunc func(p peer.ID, root cid.Cid) bool

// Host is the part of the node's libp2p host the exchange uses (*node.Node
// has these methods). Names are short protocol names; the host turns them
// into full stream protocol IDs for its network (see NewHost).
type Host interface {
	PeerID() peer.ID
	SetStreamHandler(name string, h network.StreamHandler)
	RemoveStreamHandler(name string)
	NewStream(ctx context.Context, p peer.ID, name string) (network.Stream, error)
}

// NewHost adapts a libp2p host to Host on network net: a name becomes
// protocol.StreamProtocol(net, name).
func NewHost(h host.Host, net string) Host { return libp2pHost{h, net} }

type libp2pHost struct {
	h   host.Host
	net string
}

func (l libp2pHost) PeerID() peer.ID { return l.h.ID() }
func (l libp2pHost) SetStreamHandler(name string, h network.StreamHandler) {
	l.h.SetStreamHandler(protocol.StreamProtocol(l.net, name), h)
}
func (l libp2pHost) RemoveStreamHandler(name string) {
	l.h.RemoveStreamHandler(protocol.StreamProtocol(l.net, name))
}
func (l libp2pHost) NewStream(ctx context.Context, p peer.ID, name string) (network.Stream, error) {
	return l.h.NewStream(ctx, p, protocol.StreamProtocol(l.net, name))
}

type config struct {
	allow          AllowFunc
	log            *slog.Logger
	streamsPerPeer int
	window         int
	idleTimeout    time.Duration
	onBadPeer      func(peer.ID, error)
	putVerifies    func(error) bool // non-nil: Put hashes; this tells its mismatch error
	contentSize    func(c cid.Cid, data []byte) (int64, bool)
}

// Option configures an Exchange.
type Option func(*config) error

// WithAllow sets the serving policy. Default: serve every peer.
func WithAllow(f AllowFunc) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("exchange: nil AllowFunc")
		}
		c.allow = f
		return nil
	}
}

// WithLogger sets the logger. Default: slog.Default() with "subsystem"
// "exchange".
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("exchange: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithStreamsPerPeer sets how many streams a fetch opens to each peer
// (default 2, at most 64). The server reads ahead on each stream and the
// fetcher verifies in batches, so one stream nearly keeps a loopback link
// busy, but its rate then hangs on the muxer's receive window, which yamux
// grows per stream only when it sees the window drained within a few round
// trips: one stream to a loopback peer moved 600-1,000 MiB/s depending on
// where its window settled, two streams 850-1,100 MiB/s at the same CPU per
// byte. More streams also let a store with slow reads serve in parallel.
func WithStreamsPerPeer(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 64 {
			return fmt.Errorf("exchange: streams per peer %d not in [1, 64]", n)
		}
		c.streamsPerPeer = n
		return nil
	}
}

// WithWindow sets how many blocks may be requested and not yet received on
// one stream (default 8, at most MaxWants). Requests are pipelined so the
// round trip is hidden. It bounds a fetch's memory with the blocks waiting
// for the fetch's one processor (a queue of 4 and a batch of up to 16):
// peers x streams x (window + 1) + 20 blocks at worst.
func WithWindow(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxWants {
			return fmt.Errorf("exchange: window %d not in [1, %d]", n, MaxWants)
		}
		c.window = n
		return nil
	}
}

// WithIdleTimeout sets how long a served stream may stay without a request,
// or without the client reading a response, before the server closes it
// (default 1 minute).
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("exchange: idle timeout %v not positive", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithBadPeerHook is called when a peer sends a block that does not match
// its CID or breaks the protocol, so the node can lower its reputation or
// disconnect it. The exchange itself stops using the peer.
func WithBadPeerHook(f func(peer.ID, error)) Option {
	return func(c *config) error {
		c.onBadPeer = f
		return nil
	}
}

// WithStoreVerifies says the block store's Put already checks data against
// its CID, and isMismatch recognises the error it returns when it does not
// match (for the real store: errors.Is(err, storage.ErrCIDMismatch)). The
// exchange then skips its own hash of every received block, which would
// hash each block twice. A mismatch still counts against the peer.
func WithStoreVerifies(isMismatch func(error) bool) Option {
	return func(c *config) error {
		if isMismatch == nil {
			return fmt.Errorf("exchange: nil mismatch test")
		}
		c.putVerifies = isMismatch
		return nil
	}
}

// WithContentSize tells the fetcher how many content bytes lie under an
// inner node (for the real manifest: the decoded storage.Node's Size), so
// Progress.TotalBytes is known as soon as the root is. Without it
// TotalBytes stays 0.
func WithContentSize(f func(c cid.Cid, data []byte) (size int64, ok bool)) Option {
	return func(c *config) error {
		c.contentSize = f
		return nil
	}
}

// Exchange serves the blocks of a store to peers and fetches DAGs from them.
type Exchange struct {
	host  Host
	bs    Blockstore
	links LinksFunc
	cfg   config
	log   *slog.Logger

	mu      sync.Mutex                // guards penalty and reach
	penalty map[peer.ID]int           // bad blocks or protocol violations seen per peer
	reach   map[cid.Cid]*reachableSet // per-root set of CIDs the server may serve under that root
}

// New creates an Exchange over bs and registers its stream handler on h.
// Call Close to unregister it.
func New(h Host, bs Blockstore, links LinksFunc, opts ...Option) (*Exchange, error) {
	if h == nil || bs == nil || links == nil {
		return nil, fmt.Errorf("exchange: nil host, blockstore or links function")
	}
	cfg := config{
		allow:          func(peer.ID, cid.Cid) bool { return true },
		streamsPerPeer: 2,
		window:         8,
		idleTimeout:    time.Minute,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.Default().With("subsystem", "exchange")
	}
	e := &Exchange{
		host: h, bs: bs, links: links, cfg: cfg, log: cfg.log,
		penalty: make(map[peer.ID]int),
		reach:   make(map[cid.Cid]*reachableSet),
	}
	h.SetStreamHandler(ProtocolName, e.handleStream)
	return e, nil
}

// Close stops serving. Fetches in progress are ended by their contexts.
func (e *Exchange) Close() error {
	e.host.RemoveStreamHandler(ProtocolName)
	return nil
}

// Penalty is how many bad blocks or protocol violations peer p has sent
// this exchange. A fetch never uses a peer with a penalty.
func (e *Exchange) Penalty(p peer.ID) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.penalty[p]
}

func (e *Exchange) penalise(p peer.ID, err error) {
	e.mu.Lock()
	e.penalty[p]++
	e.mu.Unlock()
	e.log.Warn("peer penalised", "peer", p, "err", err)
	if e.cfg.onBadPeer != nil {
		e.cfg.onBadPeer(p, err)
	}
}
