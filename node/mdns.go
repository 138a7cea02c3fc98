package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// mdnsConnectTimeout bounds one dial to a peer found on the local link.
const mdnsConnectTimeout = 10 * time.Second

// mdnsServiceName is per network, so LAN peers of other networks are not
// even dialled.
func mdnsServiceName(network string) string { return "_gpunode-" + network + "._udp" }

// mdnsNotifee dials every peer announced on the local link; the DHT and
// gossipsub then pick the connection up.
type mdnsNotifee struct {
	n   *Node
	ctx context.Context // the node's run context: dials stop at Close
}

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.id {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(m.ctx, mdnsConnectTimeout)
		defer cancel()
		if err := m.n.host.Connect(ctx, ai); err != nil {
			m.n.log.Debug("mDNS peer unreachable", "found", ai.ID, "err", err)
			return
		}
		m.n.log.Debug("mDNS peer connected", "found", ai.ID)
	}()
}

func (n *Node) startMDNS(ctx context.Context) (interface{ Close() error }, error) {
	s := mdns.NewMdnsService(n.host, mdnsServiceName(n.cfg.Network), mdnsNotifee{n: n, ctx: ctx})
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}
