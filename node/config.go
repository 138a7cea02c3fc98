package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/protocol"
)

// DHT modes accepted in Config.DHTMode.
const (
	// DHTServer answers DHT queries and is added to other peers' routing
	// tables. Use it on every reachable node (always in devnets and tests).
	DHTServer = "server"
	// DHTClient only queries; for nodes that others cannot dial (behind NAT
	// without port forwarding). Its routing table still fills, but it never
	// appears in other peers' tables.
	DHTClient = "client"
)

// Defaults applied by Config.Normalize to zero-valued fields.
const (
	DefaultPort               = 4001
	DefaultDHTRefreshInterval = 10 * time.Minute
	DefaultBootstrapTimeout   = 15 * time.Second
	DefaultConnMgrLow         = 100
	DefaultConnMgrHigh        = 400
	DefaultConnMgrGrace       = time.Minute
	DefaultValidateQueueSize  = 4096
	DefaultPeerOutboundQueue  = 1024
	DefaultScoreInspectPeriod = time.Second
	DefaultSubscriptionBuffer = 1024
)

// DefaultListenAddrs are TCP and QUIC v1 on every IPv4 interface, port 4001.
var DefaultListenAddrs = []string{
	fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort),
	fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort),
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("node: invalid config")

// Config is everything New needs besides the key. The daemon fills it from
// the TOML config file, environment variables and flags; the toml tags are
// the config file's keys. A zero field takes the default documented on it,
// applied by Normalize (New calls it).
type Config struct {
	// Network is the network name (required), e.g. "devnet". It is in the DHT
	// prefix, every topic and every stream protocol, so networks never mix.
	Network string `toml:"network"`
	// ChainID is the chain ID every signed envelope must carry. Default: Network.
	ChainID string `toml:"chain_id"`
	// ListenAddrs are the multiaddrs to listen on. Default: DefaultListenAddrs
	// (TCP and QUIC v1 on 0.0.0.0:4001).
	ListenAddrs []string `toml:"listen_addrs"`
	// DisableQUIC leaves the QUIC transport out (no QUIC dialing or
	// listening). Default false. Tests use it to save sockets.
	DisableQUIC bool `toml:"disable_quic"`
	// Bootstrap are the peers to join through, as multiaddrs ending in
	// /p2p/<peer ID>. Only these are used: never the public IPFS bootstrap
	// peers. Empty for the first node of a network.
	Bootstrap []string `toml:"bootstrap"`
	// BootstrapTimeout bounds connecting to the bootstrap peers and the first
	// routing-table refresh in New. Default 15s.
	BootstrapTimeout Duration `toml:"bootstrap_timeout"`
	// DHTMode is DHTServer (default) or DHTClient ("client" when the node is
	// not reachable from outside).
	DHTMode string `toml:"dht_mode"`
	// DHTRefreshInterval is the period of the routing-table refresh after the
	// one at start. Default 10m.
	DHTRefreshInterval Duration `toml:"dht_refresh_interval"`
	// RelayService makes this node a circuit relay v2 for others (only on
	// publicly reachable nodes). Default false.
	RelayService bool `toml:"relay_service"`
	// RelayClient lets this node use relays (autorelay, with connected peers
	// as relay candidates) and turns hole punching (DCUtR) on. Default false:
	// the relay transport is then off.
	RelayClient bool `toml:"relay_client"`
	// MDNS announces and discovers peers of the same network on the local
	// link. Default false.
	MDNS bool `toml:"mdns"`
	// ConnMgr bounds the number of open connections.
	ConnMgr ConnMgrConfig `toml:"connmgr"`
	// Resources are hard limits of the libp2p resource manager.
	Resources ResourceConfig `toml:"resources"`
	// PubSub sizes gossipsub's queues.
	PubSub PubSubConfig `toml:"pubsub"`

	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger `toml:"-"`
	// Registerer, if set, receives libp2p's Prometheus metrics; nil turns
	// libp2p metrics off.
	Registerer prometheus.Registerer `toml:"-"`
	// Now is the clock for envelope timestamps. Default time.Now.
	Now func() time.Time `toml:"-"`
}

// ConnMgrConfig is the connection manager's water marks: above High it trims
// down to Low, sparing connections younger than Grace and protected ones.
type ConnMgrConfig struct {
	Low   int      `toml:"low"`   // default 100
	High  int      `toml:"high"`  // default 400
	Grace Duration `toml:"grace"` // default 1m
}

// ResourceConfig overrides the resource manager's system-wide limits. The
// rest of its limits are libp2p's defaults scaled to this machine's memory
// and file descriptors, then fixed at start. Zero keeps the scaled default.
type ResourceConfig struct {
	MaxConns     int `toml:"max_conns"`      // open connections, both directions
	MaxStreams   int `toml:"max_streams"`    // open streams, both directions
	MaxMemoryMiB int `toml:"max_memory_mib"` // memory reserved by libp2p
}

// PubSubConfig sizes gossipsub's queues so a burst is not dropped (a full
// validation queue drops messages, go-libp2p-pubsub#398).
type PubSubConfig struct {
	// ValidateQueueSize is the queue of messages awaiting validation. Default 4096.
	ValidateQueueSize int `toml:"validate_queue"`
	// PeerOutboundQueueSize is the queue of outgoing RPCs per peer. Default 1024.
	PeerOutboundQueueSize int `toml:"peer_outbound_queue"`
	// SubscriptionBuffer is the queue of delivered messages per
	// subscription; a subscriber that falls further behind loses messages.
	// Default 1024.
	SubscriptionBuffer int `toml:"subscription_buffer"`
	// ScoreInspectPeriod is how often peer scores are copied out for
	// PeerScore and metrics. Default 1s.
	ScoreInspectPeriod Duration `toml:"score_inspect_period"`
}

// Duration is a time.Duration written as a string ("90s", "10m") in config
// files and flags.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// Set parses s with time.ParseDuration (flag.Value / pflag.Value).
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%w: duration %q: %v", ErrConfig, s, err)
	}
	if v < 0 {
		return fmt.Errorf("%w: negative duration %q", ErrConfig, s)
	}
	*d = Duration(v)
	return nil
}

// Type names the flag type (pflag.Value).
func (d *Duration) Type() string { return "duration" }

// Normalize fills zero fields with their defaults and validates everything.
// It changes c only if the whole config is valid.
func (c *Config) Normalize() error {
	n := *c
	if err := protocol.ValidateNetwork(n.Network); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if n.ChainID == "" {
		n.ChainID = n.Network
	}
	if len(n.ListenAddrs) == 0 {
		n.ListenAddrs = append([]string(nil), DefaultListenAddrs...)
	}
	if _, err := n.listenMultiaddrs(); err != nil {
		return err
	}
	if _, err := n.bootstrapPeers(); err != nil {
		return err
	}
	setDefault(&n.BootstrapTimeout, DefaultBootstrapTimeout)
	switch n.DHTMode {
	case "":
		n.DHTMode = DHTServer
	case DHTServer, DHTClient:
	default:
		return fmt.Errorf("%w: dht_mode %q (want %q or %q)", ErrConfig, n.DHTMode, DHTServer, DHTClient)
	}
	setDefault(&n.DHTRefreshInterval, DefaultDHTRefreshInterval)

	if n.ConnMgr.Low == 0 {
		n.ConnMgr.Low = DefaultConnMgrLow
	}
	if n.ConnMgr.High == 0 {
		n.ConnMgr.High = DefaultConnMgrHigh
	}
	setDefault(&n.ConnMgr.Grace, DefaultConnMgrGrace)
	if n.ConnMgr.Low < 0 || n.ConnMgr.High < n.ConnMgr.Low {
		return fmt.Errorf("%w: connmgr low %d, high %d (want 0 <= low <= high)", ErrConfig, n.ConnMgr.Low, n.ConnMgr.High)
	}
	r := n.Resources
	if r.MaxConns < 0 || r.MaxStreams < 0 || r.MaxMemoryMiB < 0 {
		return fmt.Errorf("%w: negative resource limit", ErrConfig)
	}
	if r.MaxConns != 0 && r.MaxConns < n.ConnMgr.High {
		// The resource manager would refuse connections before the
		// connection manager ever trims, so trimming never happens.
		return fmt.Errorf("%w: resources.max_conns %d below connmgr.high %d", ErrConfig, r.MaxConns, n.ConnMgr.High)
	}

	if n.PubSub.ValidateQueueSize == 0 {
		n.PubSub.ValidateQueueSize = DefaultValidateQueueSize
	}
	if n.PubSub.PeerOutboundQueueSize == 0 {
		n.PubSub.PeerOutboundQueueSize = DefaultPeerOutboundQueue
	}
	if n.PubSub.SubscriptionBuffer == 0 {
		n.PubSub.SubscriptionBuffer = DefaultSubscriptionBuffer
	}
	if n.PubSub.ValidateQueueSize < 0 || n.PubSub.PeerOutboundQueueSize < 0 || n.PubSub.SubscriptionBuffer < 0 {
		return fmt.Errorf("%w: negative pubsub queue size", ErrConfig)
	}
	setDefault(&n.PubSub.ScoreInspectPeriod, DefaultScoreInspectPeriod)

	if n.Logger == nil {
		n.Logger = slog.Default()
	}
	if n.Now == nil {
		n.Now = time.Now
	}
	*c = n
	return nil
}

func setDefault(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// listenMultiaddrs parses ListenAddrs; QUIC addresses need QUIC enabled.
func (c *Config) listenMultiaddrs() ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(c.ListenAddrs))
	for _, s := range c.ListenAddrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %v", ErrConfig, s, err)
		}
		if c.DisableQUIC && isQUIC(a) {
			return nil, fmt.Errorf("%w: listen address %q is QUIC but QUIC is disabled", ErrConfig, s)
		}
		out = append(out, a)
	}
	return out, nil
}

func isQUIC(a ma.Multiaddr) bool {
	for _, p := range a {
		if p.Protocol().Code == ma.P_QUIC_V1 || p.Protocol().Code == ma.P_QUIC {
			return true
		}
	}
	return false
}

// bootstrapPeers parses Bootstrap, merging addresses of the same peer.
func (c *Config) bootstrapPeers() ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(c.Bootstrap))
	for _, s := range c.Bootstrap {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q: %v", ErrConfig, s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("%w: bootstrap address %q must end in /p2p/<peer ID>: %v", ErrConfig, s, err)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap: %v", ErrConfig, err)
	}
	return infos, nil
}
