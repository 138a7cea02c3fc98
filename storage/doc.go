// Package storage is a node's persistent state: one badger database split
// into a keyspace per subsystem, the content-addressed block store, and the
// chunker that turns files into blocks under one root CID.
package storage
