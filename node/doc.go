// Package node assembles one gpunode peer: the libp2p host (TCP and QUIC,
// Noise and TLS, yamux, identify, AutoNAT v2, optional relay and hole
// punching, an explicit resource manager and connection manager), the
// Kademlia DHT under the network's own protocol prefix, and gossipsub with
// strict signing, content-hash message IDs, envelope validation and peer
// scoring. Services (consensus, market, storage exchange, ...) reach the
// network only through it.
//
// # Usage
//
// The caller must:
//
//  1. Create the identity once with InitKey(filepath.Join(home, KeyFileName))
//     (Ed25519, mode 0600; it refuses to overwrite an existing key), and on
//     every later start load it with LoadKey. The peer ID is the account
//     address.
//  2. Fill a Config (at least Network; the rest has documented defaults,
//     applied by Config.Normalize) and call New(ctx, cfg, key). New listens,
//     connects to the configured bootstrap peers (only those, never public
//     IPFS ones), refreshes the DHT routing table once and starts gossipsub;
//     ctx bounds only this start-up.
//  3. For each gossip topic, call JoinTopic(name, validator) once. Every
//     message is first opened with protocol.Open for the node's chain ID
//     (any failure rejects it and lowers the sender's peer score), then
//     judged by the validator: Accept, Reject (penalise the sender) or
//     Ignore (drop silently, e.g. stale). Publish seals and sends a body;
//     Subscribe yields validated envelopes, the node's own publishes
//     included.
//  4. For request/response protocols, call SetStreamHandler(name, h) and
//     NewStream(ctx, peer, name); names become
//     protocol.StreamProtocol(network, name).
//  5. Call Close once done (it is idempotent): it leaves the topics and stops
//     gossipsub, the DHT and the host.
//
// # Peer scoring
//
// Every joined topic is scored alike: time in the mesh and first deliveries
// earn a little, each invalid message costs -100 * n^2 for n invalid
// messages (decaying over about an hour). Below -500 a peer gets no gossip,
// below -1000 no flood publishes, below -2500 its messages are ignored.
// PeerScore reads the latest score snapshot.
package node
