package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gpunode/gpunode/api"
	"github.com/gpunode/gpunode/node"
)

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: join the network in the given roles",
		Long: `run starts this node: the libp2p host, the DHT, gossipsub, the store, the
services of its roles and the HTTP API. It prints its listen addresses, then
runs until Ctrl-C (SIGINT) or SIGTERM, and shuts down cleanly.

Every flag is also an environment variable (GPUNODE_<FLAG>, upper case, '-'
as '_') and a key of <home>/config.toml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := resolveHome(cmd)
			if err != nil {
				return err
			}
			if err := applySettings(cmd, home); err != nil {
				return err
			}
			cfg, err := daemonConfig(cmd, home)
			if err != nil {
				return err
			}
			return runDaemon(cmd.Context(), cmd, cfg)
		},
	}
	addHomeFlag(cmd)
	f := cmd.Flags()
	f.String("network", "devnet", "network name (in the DHT prefix, every topic and the chain ID)")
	f.String("chain-id", "", "chain ID inside every signed message (default: the network name, or the genesis file's)")
	f.StringSlice("role", []string{"provider"}, "roles: provider, renter, validator (comma-separated)")
	f.StringSlice("listen", []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}, "libp2p listen multiaddrs")
	f.StringSlice("bootstrap", nil, "bootstrap peers (multiaddrs ending in /p2p/<peer ID>); only these are used")
	f.String("dht-mode", "server", "DHT mode: server for reachable nodes, client for nodes others cannot dial")
	f.Bool("relay-service", false, "offer a circuit relay v2 service to peers behind NAT")
	f.Bool("relay-client", false, "use circuit relays and hole punching when behind NAT")
	f.Bool("mdns", false, "discover peers on the local network with mDNS")
	f.Int("conn-low", node.DefaultConnMgrLow, "connection manager low water mark")
	f.Int("conn-high", node.DefaultConnMgrHigh, "connection manager high water mark")
	f.Bool("disable-quic", false, "leave the QUIC transport out")
	f.String("api-listen", api.DefaultAddr, "HTTP API address (loopback unless --api-allow-remote)")
	f.Bool("api-allow-remote", false, "allow the API to listen on a non-loopback address")
	f.Int64("data-serve-rate", 0, "bytes per second this node serves to other peers (0: no cap)")
	f.Uint64("price", node.DefaultPrice, "provider: price per segment of CPU (wasm) work")
	f.Uint64("gpu-price", 0, "provider: price per segment per GPU for GPU work (0: no GPU work)")
	f.Uint32("slots", 2, "provider: segments run at once")
	f.String("region", "", "provider: region announced in offers")
	f.Uint64("price-surcharge", 0, "provider: percent added to the price at full load (utilisation pricing; 0: list price)")
	f.Duration("auction", 3*time.Second, "renter: default length of an auction round")
	f.String("log-level", "info", "log level: debug, info, warn, error")
	f.String("log-format", "text", "log format: text or json")
	return cmd
}

func daemonConfig(cmd *cobra.Command, home string) (node.DaemonConfig, error) {
	f := cmd.Flags()
	str := func(n string) string { v, _ := f.GetString(n); return v }
	list := func(n string) []string { v, _ := f.GetStringSlice(n); return v }
	boolean := func(n string) bool { v, _ := f.GetBool(n); return v }
	integer := func(n string) int { v, _ := f.GetInt(n); return v }

	logger, err := newLogger(str("log-level"), str("log-format"))
	if err != nil {
		return node.DaemonConfig{}, err
	}
	roles, err := node.ParseRoles(list("role"))
	if err != nil {
		return node.DaemonConfig{}, err
	}
	var p2p node.Config
	p2p.Network = str("network")
	p2p.ChainID = str("chain-id")
	p2p.ListenAddrs = list("listen")
	p2p.Bootstrap = list("bootstrap")
	p2p.DHTMode = str("dht-mode")
	p2p.RelayService = boolean("relay-service")
	p2p.RelayClient = boolean("relay-client")
	p2p.MDNS = boolean("mdns")
	p2p.DisableQUIC = boolean("disable-quic")
	p2p.ConnMgr.Low = integer("conn-low")
	p2p.ConnMgr.High = integer("conn-high")
	p2p.Logger = logger
	return node.DaemonConfig{
		Home:           node.Home(home),
		P2P:            p2p,
		Roles:          roles,
		APIListen:      str("api-listen"),
		APIAllowRemote: boolean("api-allow-remote"),
		Data:           dataConfig(f),
		Market:         marketConfig(f),
		Logger:         logger,
	}, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

func runDaemon(ctx context.Context, cmd *cobra.Command, cfg node.DaemonConfig) error {
	d, err := node.StartDaemon(ctx, cfg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "gpunode %s on network %s as %s\n", d.PeerID(), cfg.P2P.Network, strings.Join(node.RoleNames(cfg.Roles), ","))
	for _, a := range d.Addrs() {
		fmt.Fprintf(out, "listening on %s\n", a)
	}
	fmt.Fprintf(out, "api on %s%s\n", d.APIURL(), api.Prefix)
	select {
	case <-ctx.Done():
	case <-d.Done():
	}
	cfg.Logger.Info("shutting down")
	if err := d.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	cfg.Logger.Info("stopped")
	return nil
}

func dataConfig(f *pflag.FlagSet) node.DataConfig {
	rate, _ := f.GetInt64("data-serve-rate")
	return node.DataConfig{ServeRate: rate}
}

func marketConfig(f *pflag.FlagSet) node.MarketConfig {
	price, _ := f.GetUint64("price")
	gpuPrice, _ := f.GetUint64("gpu-price")
	slots, _ := f.GetUint32("slots")
	region, _ := f.GetString("region")
	auction, _ := f.GetDuration("auction")
	surcharge, _ := f.GetUint64("price-surcharge")
	return node.MarketConfig{Price: price, GPUPrice: gpuPrice, Slots: slots, Region: region, AuctionWindow: auction, Surcharge: surcharge}
}
