package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/internal/version"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/storage"
)

// DaemonConfig is everything a `gpunode run` process needs.
type DaemonConfig struct {
	Home           Home
	P2P            Config
	Roles          []Role
	APIListen      string // default api.DefaultAddr (loopback)
	APIAllowRemote bool   // allow a non-loopback APIListen
	Data           DataConfig
	Market         MarketConfig
	// WasmWorker is the binary the wasm executor runs its workers from
	// ("": this process's own binary). Tests pass a worker built without
	// the race detector.
	WasmWorker string
	Logger     *slog.Logger
}

// Daemon is a running node with its store, services and API. Only the CLI's
// run command and multi-node tests construct one; it is the one place where
// the subsystems meet.
type Daemon struct {
	cfg      DaemonConfig
	log      *slog.Logger
	started  time.Time
	registry *prometheus.Registry
	events   *api.Events

	db     *storage.DB
	blocks *storage.Blockstore
	node   *Node
	api    *api.Server
	data   *dataService
	chain  *consensus.Service // nil without a genesis file (chain.go)

	compute *computeParts // node/compute.go
	market  *agent.Agent  // node/market.go; nil without a chain
	// marketRef is market for callbacks that may run while the daemon
	// starts (GPU changes).
	marketRef atomic.Pointer[agent.Agent]

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed when a client asks the daemon to stop

	closeOnce sync.Once
	closeErr  error
}

// StartDaemon opens the store, starts the libp2p node and the API, and
// returns once all are serving. On error everything already started is
// closed again.
func StartDaemon(ctx context.Context, cfg DaemonConfig) (d *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.APIListen == "" {
		cfg.APIListen = api.DefaultAddr
	}
	d = &Daemon{
		cfg:      cfg,
		log:      cfg.Logger,
		started:  time.Now(),
		registry: prometheus.NewRegistry(),
		events:   api.NewEvents(api.WithReplay(256), api.WithEventLogger(cfg.Logger)),
		shutdown: make(chan struct{}),
	}
	self := d // `return nil, err` clears d before this runs
	defer func() {
		if err != nil {
			_ = self.Close()
			d = nil
		}
	}()
	home := string(cfg.Home)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("node: create home: %w", err)
	}
	key, err := LoadKey(cfg.Home.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("%w (run `gpunode init --home %s` first)", err, home)
	}
	if d.db, err = storage.Open(cfg.Home.DBDir(), storage.WithLogger(cfg.Logger)); err != nil {
		return nil, err
	}
	if d.blocks, err = storage.NewBlockstore(d.db, cfg.Home.BlocksDir(), storage.WithBlockLogger(cfg.Logger)); err != nil {
		return nil, err
	}
	p2p := cfg.P2P
	if p2p.Logger == nil {
		p2p.Logger = cfg.Logger
	}
	p2p.Registerer = d.registry
	if d.node, err = New(ctx, p2p, key); err != nil {
		return nil, err
	}
	d.api, err = api.New(d,
		api.WithAddr(cfg.APIListen),
		api.WithAllowRemote(cfg.APIAllowRemote),
		api.WithDataDir(home),
		api.WithRegistry(d.registry),
		api.WithEvents(d.events),
		api.WithLogger(cfg.Logger),
	)
	if err != nil {
		return nil, err
	}
	if err := d.api.Handle(api.Route{
		Method: http.MethodPost, Path: "/shutdown",
		Handler: api.JSON(func(r *http.Request, _ struct{}) (struct{}, error) {
			d.RequestShutdown()
			return struct{}{}, nil
		}),
	}); err != nil {
		return nil, err
	}
	if d.data, err = startData(d); err != nil {
		return nil, err
	}
	if err := d.startChain(); err != nil {
		return nil, err
	}
	if err := d.startCompute(); err != nil {
		return nil, err
	}
	if err := d.startMarket(); err != nil {
		return nil, err
	}
	if err := d.api.Start(); err != nil {
		return nil, err
	}
	d.events.Publish("node.started", map[string]any{"peer_id": d.node.PeerID().String(), "network": p2p.Network})
	d.log.Info("node started", "peer", d.node.PeerID(), "network", d.node.Network(), "roles", RoleNames(cfg.Roles))
	return d, nil
}

// Status implements api.Backend.
func (d *Daemon) Status(context.Context) (api.Status, error) {
	st := api.Status{
		PeerID:    d.node.PeerID().String(),
		Network:   d.node.Network(),
		ChainID:   d.node.ChainID(),
		Roles:     RoleNames(d.cfg.Roles),
		Peers:     d.node.ConnectedPeers(),
		Version:   version.String(),
		StartedAt: d.started,
	}
	for _, a := range d.Addrs() {
		st.ListenAddrs = append(st.ListenAddrs, a.String())
	}
	rt := d.node.RoutingTablePeers()
	st.RoutingTable = len(rt)
	st.RoutingTablePeers = peerStrings(rt)
	return st, nil
}

func peerStrings(ids []peer.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// PeerID is the node's peer ID (its account address).
func (d *Daemon) PeerID() peer.ID { return d.node.PeerID() }

// Addrs are the node's listen multiaddrs, each ending in /p2p/<peer ID>.
func (d *Daemon) Addrs() []ma.Multiaddr { return d.node.Addrs() }

// APIURL is the API's base URL ("http://127.0.0.1:7465").
func (d *Daemon) APIURL() string { return d.api.URL() }

// Node is the libp2p node.
func (d *Daemon) Node() *Node { return d.node }

// Blocks is the content-addressed block store.
func (d *Daemon) Blocks() *storage.Blockstore { return d.blocks }

// Events is the event hub behind the API's event stream.
func (d *Daemon) Events() *api.Events { return d.events }

// Done is closed when a client asked the daemon to stop (POST
// /api/v1/shutdown with the token).
func (d *Daemon) Done() <-chan struct{} { return d.shutdown }

// RequestShutdown asks the process running the daemon to stop it.
func (d *Daemon) RequestShutdown() {
	d.shutdownOnce.Do(func() { close(d.shutdown) })
}

// Close stops the API, the node and the store, in that order, and reports
// every error. It is safe to call more than once.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			errs = append(errs, d.api.Shutdown(ctx))
			cancel()
		}
		errs = append(errs, d.closeMarket())
		errs = append(errs, d.closeCompute())
		errs = append(errs, d.closeChain())
		if d.events != nil {
			d.events.Close()
		}
		if d.data != nil {
			errs = append(errs, d.data.Close())
		}
		if d.node != nil {
			errs = append(errs, d.node.Close())
		}
		if d.db != nil {
			errs = append(errs, d.db.Close())
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// Home is the daemon's data directory.
func (d *Daemon) Home() Home { return d.cfg.Home }
