package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gpunode/gpunode/protocol"
)

// ErrClosed is returned by operations on a closed node.
var ErrClosed = errors.New("node: closed")

// Node is one gpunode peer on the network: a libp2p host with the Kademlia
// DHT and gossipsub. Services join topics and register stream protocols
// through it. Its methods are safe for concurrent use.
type Node struct {
	cfg Config // normalized; never changes after New
	log *slog.Logger
	key crypto.PrivKey
	id  peer.ID

	host host.Host
	dht  *dht.IpfsDHT
	ps   *pubsub.PubSub
	mdns interface{ Close() error } // nil unless cfg.MDNS

	// cancel stops gossipsub and every background goroutine of the node.
	cancel context.CancelFunc
	closed atomic.Bool
	// closeOnce runs Close's teardown once; closeErr is its result.
	closeOnce sync.Once
	closeErr  error

	scoresMu sync.RWMutex // guards scores
	scores   map[peer.ID]*pubsub.PeerScoreSnapshot

	topicsMu sync.Mutex // guards topics
	topics   map[string]*Topic
}

// New starts a node with identity key (Ed25519) on cfg's network: it
// listens, joins the DHT through cfg.Bootstrap (and only those peers),
// refreshes the routing table once, and starts gossipsub. ctx bounds only
// the start-up; the node runs until Close. Unreachable bootstrap peers are
// logged, not fatal: the DHT keeps retrying them while its table is empty.
func New(ctx context.Context, cfg Config, key crypto.PrivKey) (*Node, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	if key == nil || key.Type() != pb.KeyType_Ed25519 {
		return nil, ErrKeyType
	}
	id, err := PeerIDFromKey(key)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		log:    cfg.Logger.With("subsystem", "node", "peer", id),
		key:    key,
		id:     id,
		scores: make(map[peer.ID]*pubsub.PeerScoreSnapshot),
		topics: make(map[string]*Topic),
	}
	if n.host, err = newHost(cfg, key); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	fail := func(err error) (*Node, error) {
		n.Close()
		return nil, err
	}

	bootstrap, _ := cfg.bootstrapPeers() // validated by Normalize
	mode := dht.ModeServer
	if cfg.DHTMode == DHTClient {
		mode = dht.ModeClient
	}
	n.dht, err = dht.New(n.host,
		dht.Mode(mode),
		dht.ProtocolPrefix(protocol.DHTPrefix(cfg.Network)),
		// Setting our peers also keeps the DHT from ever using the public
		// IPFS bootstrappers.
		dht.BootstrapPeers(bootstrap...),
		dht.RoutingTableRefreshPeriod(cfg.DHTRefreshInterval.D()),
	)
	if err != nil {
		return fail(fmt.Errorf("node: start DHT: %w", err))
	}

	if n.ps, err = n.newPubSub(runCtx); err != nil {
		return fail(fmt.Errorf("node: start gossipsub: %w", err))
	}
	if cfg.MDNS {
		if n.mdns, err = n.startMDNS(runCtx); err != nil {
			return fail(fmt.Errorf("node: start mDNS: %w", err))
		}
	}

	if err := n.bootstrap(ctx, bootstrap); err != nil {
		return fail(err)
	}
	n.log.Info("node started", "network", cfg.Network, "addrs", n.Addrs(), "dht_mode", cfg.DHTMode,
		"routing_table", n.RoutingTableSize(), "peers", n.ConnectedPeers())
	return n, nil
}

// newHost assembles the libp2p host from cfg.
func newHost(cfg Config, key crypto.PrivKey) (host.Host, error) {
	listen, _ := cfg.listenMultiaddrs() // validated by Normalize
	rm, err := newResourceManager(cfg.Resources)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnMgr.Low, cfg.ConnMgr.High, connmgr.WithGracePeriod(cfg.ConnMgr.Grace.D()))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("%w: connmgr: %v", ErrConfig, err)
	}
	// hostRef lets the autorelay peer source see the host built below.
	var hostRef atomic.Pointer[host.Host]
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(listen...),
		// Naming the transports, security and muxers leaves out every
		// default we do not want (websocket, webtransport, webrtc).
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableAutoNATv2(),
		libp2p.UserAgent("gpunode"),
	}
	if !cfg.DisableQUIC {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if cfg.RelayClient {
		opts = append(opts,
			libp2p.EnableRelay(),
			libp2p.EnableAutoRelayWithPeerSource(connectedPeerSource(&hostRef)),
			libp2p.EnableHolePunching(),
		)
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("node: start libp2p host: %w", err)
	}
	hostRef.Store(&h)
	return h, nil
}

// newResourceManager builds libp2p's default limits scaled to this machine,
// overrides the system-wide ones that r sets, and fixes the result, so the
// limits are explicit and do not change while running.
func newResourceManager(r ResourceConfig) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	var sys rcmgr.ResourceLimits
	if r.MaxConns > 0 {
		sys.Conns = rcmgr.LimitVal(r.MaxConns)
	}
	if r.MaxStreams > 0 {
		sys.Streams = rcmgr.LimitVal(r.MaxStreams)
	}
	if r.MaxMemoryMiB > 0 {
		sys.Memory = rcmgr.LimitVal64(int64(r.MaxMemoryMiB) << 20)
	}
	limits := rcmgr.PartialLimitConfig{System: sys}.Build(scaling.AutoScale())
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}

// connectedPeerSource offers connected peers as relay candidates; autorelay
// itself keeps only those that speak the relay protocol.
func connectedPeerSource(ref *atomic.Pointer[host.Host]) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan peer.AddrInfo {
		out := make(chan peer.AddrInfo, num)
		defer close(out)
		hp := ref.Load()
		if hp == nil {
			return out
		}
		h := *hp
		for _, p := range h.Network().Peers() {
			if len(out) == num {
				break
			}
			out <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}
		}
		return out
	}
}

// bootstrap connects to the bootstrap peers, waits until the DHT has taken
// one into its routing table, then refreshes the table (the DHT pitfall: a
// provide before the first refresh reaches nobody).
func (n *Node) bootstrap(parent context.Context, peers []peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(parent, n.cfg.BootstrapTimeout.D())
	defer cancel()
	var wg sync.WaitGroup
	var connected atomic.Int32
	for _, ai := range peers {
		if ai.ID == n.id {
			continue
		}
		wg.Go(func() {
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Warn("bootstrap peer unreachable", "bootstrap", ai.ID, "err", err)
				return
			}
			connected.Add(1)
		})
	}
	wg.Wait()
	if len(peers) > 0 && connected.Load() == 0 {
		n.log.Warn("no bootstrap peer reachable; the DHT keeps retrying", "bootstrap", len(peers))
	}
	if connected.Load() > 0 {
		// The DHT adds a peer only after identify and a FIND_NODE check,
		// both asynchronous; a refresh on an empty table does nothing.
		if err := waitFor(ctx, 20*time.Millisecond, func() bool { return n.RoutingTableSize() > 0 }); err != nil {
			if parent.Err() != nil {
				return fmt.Errorf("node: bootstrap: %w", parent.Err())
			}
			n.log.Warn("routing table still empty after bootstrap", "timeout", n.cfg.BootstrapTimeout)
			return nil
		}
	}
	select {
	case err := <-n.dht.ForceRefresh():
		if err != nil {
			n.log.Debug("routing table refresh incomplete", "err", err)
		}
	case <-ctx.Done():
		if parent.Err() != nil {
			return fmt.Errorf("node: bootstrap: %w", parent.Err())
		}
		n.log.Warn("routing table refresh timed out", "timeout", n.cfg.BootstrapTimeout)
	}
	return nil
}

// waitFor polls cond every tick until it holds or ctx ends.
func waitFor(ctx context.Context, tick time.Duration, cond func() bool) error {
	if cond() {
		return nil
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if cond() {
				return nil
			}
		}
	}
}

// RefreshRoutingTable runs a full routing-table refresh now and waits for it.
// The node also refreshes every Config.DHTRefreshInterval on its own.
func (n *Node) RefreshRoutingTable(ctx context.Context) error {
	if n.closed.Load() {
		return ErrClosed
	}
	select {
	case err := <-n.dht.ForceRefresh():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PeerID is the node's peer ID, which is also its account address.
func (n *Node) PeerID() peer.ID { return n.id }

// Key is the node's private key (for signing outside gossip, e.g. txs).
func (n *Node) Key() crypto.PrivKey { return n.key }

// Network is the network name.
func (n *Node) Network() string { return n.cfg.Network }

// ChainID is the chain ID every envelope on this node must carry.
func (n *Node) ChainID() string { return n.cfg.ChainID }

// Config is the node's normalized configuration.
func (n *Node) Config() Config { return n.cfg }

// Addrs are the node's dialable addresses with /p2p/<peer ID> appended.
func (n *Node) Addrs() []ma.Multiaddr {
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.id, Addrs: n.host.Addrs()})
	if err != nil { // only for an empty peer ID, which New never has
		return nil
	}
	return out
}

// AddrInfo is the node's ID and addresses, for another node to connect.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.id, Addrs: n.host.Addrs()}
}

// Host is the libp2p host, for the wiring code. Services should use
// JoinTopic, SetStreamHandler and NewStream instead.
func (n *Node) Host() host.Host { return n.host }

// DHT is the Kademlia DHT (provider records, peer routing).
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// RoutingTablePeers lists the peers in the DHT routing table.
func (n *Node) RoutingTablePeers() []peer.ID { return n.dht.RoutingTable().ListPeers() }

// RoutingTableSize is the number of peers in the DHT routing table.
func (n *Node) RoutingTableSize() int { return n.dht.RoutingTable().Size() }

// ConnectedPeers is the number of peers with an open connection.
func (n *Node) ConnectedPeers() int { return len(n.host.Network().Peers()) }

// Connect dials p and waits for identify.
func (n *Node) Connect(ctx context.Context, p peer.AddrInfo) error {
	if n.closed.Load() {
		return ErrClosed
	}
	return n.host.Connect(ctx, p)
}

// SetStreamHandler serves the request/response protocol name, i.e.
// protocol.StreamProtocol(network, name), with h.
func (n *Node) SetStreamHandler(name string, h network.StreamHandler) {
	n.host.SetStreamHandler(protocol.StreamProtocol(n.cfg.Network, name), h)
}

// RemoveStreamHandler stops serving the protocol name.
func (n *Node) RemoveStreamHandler(name string) {
	n.host.RemoveStreamHandler(protocol.StreamProtocol(n.cfg.Network, name))
}

// NewStream opens a stream to p speaking the protocol name, dialing p if
// needed (from addresses in the peerstore or found through the DHT).
func (n *Node) NewStream(ctx context.Context, p peer.ID, name string) (network.Stream, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if n.host.Network().Connectedness(p) != network.Connected && len(n.host.Peerstore().Addrs(p)) == 0 {
		ai, err := n.dht.FindPeer(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("node: find peer %s: %w", p, err)
		}
		n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	}
	s, err := n.host.NewStream(ctx, p, protocol.StreamProtocol(n.cfg.Network, name))
	if err != nil {
		return nil, fmt.Errorf("node: open %s stream to %s: %w", name, p, err)
	}
	return s, nil
}

// Close stops the node: topics, gossipsub, mDNS, the DHT, then the host. It
// is idempotent; later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		var errs []error
		n.topicsMu.Lock()
		topics := n.topics
		n.topics = map[string]*Topic{}
		n.topicsMu.Unlock()
		for _, t := range topics {
			if err := t.close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		if n.cancel != nil {
			n.cancel() // gossipsub stops with its context
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("node: close: %w", err)
		}
	})
	return n.closeErr
}
