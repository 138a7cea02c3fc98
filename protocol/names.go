package protocol

import (
	"fmt"
	"regexp"

	libp2pprotocol "github.com/libp2p/go-libp2p/core/protocol"
)

// Gossipsub topic names. Topic(net, name) gives the full topic.
const (
	TopicOffers    = "offers"
	TopicJobs      = "jobs"
	TopicBids      = "bids"
	TopicTxs       = "txs"
	TopicConsensus = "consensus"
	TopicBlocks    = "blocks"
)

var networkName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidateNetwork checks that name can be a network name: lower-case letters,
// digits and dashes, at most 63 characters. It appears in every topic, stream
// protocol and the DHT prefix, so networks never mix.
func ValidateNetwork(name string) error {
	if !networkName.MatchString(name) {
		return fmt.Errorf("protocol: invalid network name %q (want lower-case letters, digits, '-', at most 63)", name)
	}
	return nil
}

// Topic is the gossipsub topic for name on network: "/gpunode/<net>/<name>/1".
func Topic(network, name string) string {
	return "/gpunode/" + network + "/" + name + "/1"
}

// StreamProtocol is the libp2p stream protocol ID for a request/response
// protocol name on network: "/gpunode/<net>/<name>/1.0.0".
func StreamProtocol(network, name string) libp2pprotocol.ID {
	return libp2pprotocol.ID("/gpunode/" + network + "/" + name + "/1.0.0")
}

// DHTPrefix is the Kademlia protocol prefix of network: "/gpunode/<net>". The
// DHT appends "/kad/1.0.0".
func DHTPrefix(network string) libp2pprotocol.ID {
	return libp2pprotocol.ID("/gpunode/" + network)
}
