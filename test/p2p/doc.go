// Package p2p tests the node package's libp2p layer with many real nodes on
// loopback TCP: DHT bootstrap and routing tables, gossip reach, and the
// rejection and scoring of bad messages.
package p2p
