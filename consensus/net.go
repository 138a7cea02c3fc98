package consensus

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// Network is what the Service needs of the libp2p node. node.ChainNetwork
// adapts a *node.Node (this package cannot import node, which wires the
// Service into the daemon).
type Network interface {
	// Join joins and subscribes to protocol.Topic(net, name); every message
	// passed protocol.Open for the chain and then v.
	Join(name string, v Validator) (Topic, error)
	// SetStreamHandler serves the request/response protocol name.
	SetStreamHandler(name string, h network.StreamHandler)
	// RemoveStreamHandler stops serving it.
	RemoveStreamHandler(name string)
	// NewStream opens a stream of protocol name to p.
	NewStream(ctx context.Context, p peer.ID, name string) (network.Stream, error)
}

// Verdict is a topic validator's judgement (as node.Verdict).
type Verdict int

// Verdicts; the zero Verdict counts as Reject.
const (
	Accept Verdict = iota + 1 // deliver and forward
	Reject                    // drop and penalise the sender
	Ignore                    // drop without penalty
)

// Validator judges an authenticated envelope; from is the forwarding peer
// (the node itself for its own publishes).
type Validator func(ctx context.Context, from peer.ID, env *protocol.Envelope) Verdict

// Received is a validated message.
type Received struct {
	Envelope *protocol.Envelope
	From     peer.ID
	Local    bool // the node's own publish
}

// Topic is a joined, subscribed topic.
type Topic interface {
	// Publish seals body as kind with the node's key and publishes it.
	Publish(ctx context.Context, kind protocol.Kind, body any) error
	// PublishRaw publishes an already sealed envelope.
	PublishRaw(ctx context.Context, data []byte) error
	// Next waits for the next validated message.
	Next(ctx context.Context) (*Received, error)
	// Close leaves the topic.
	Close() error
}
