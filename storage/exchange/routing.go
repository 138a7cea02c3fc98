package exchange

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ContentRouting is the part of the DHT the exchange uses to announce and
// find holders of roots (kad-dht's *IpfsDHT implements it).
type ContentRouting interface {
	Provide(ctx context.Context, c cid.Cid, announce bool) error
	FindProvidersAsync(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo
}

// Announce tells the network that this node holds the DAG under root. Only
// roots are announced, never every block: a fetcher finds holders by root
// and asks them for the blocks under it.
func Announce(ctx context.Context, r ContentRouting, root cid.Cid) error {
	if err := r.Provide(ctx, root, true); err != nil {
		return fmt.Errorf("exchange: announce %s: %w", root, err)
	}
	return nil
}

// FindHolders returns up to max peers (other than self) that announced
// root, as found before ctx ends. The routing layer records their addresses
// so streams to them can be opened.
func FindHolders(ctx context.Context, r ContentRouting, root cid.Cid, self peer.ID, max int) []peer.ID {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []peer.ID
	for ai := range r.FindProvidersAsync(ctx, root, max+1) {
		if ai.ID == self {
			continue
		}
		out = append(out, ai.ID)
		if len(out) == max {
			break
		}
	}
	return out
}
