// Package storage is a node's persistent state: one badger database split
// into a keyspace per subsystem, the content-addressed block store, and the
// chunker that turns files into blocks under one root CID.
//
// # Key-value store
//
// Open opens the node's single badger database; Keyspace gives each
// subsystem ("consensus", "market", "blocks", ...) its own namespace in it,
// and DB.Update writes to several keyspaces atomically. A failed write
// returns an error and changes nothing. Writes are not fsynced one by one
// (badger batches them); a caller that needs a write durable before it acts
// on it, such as a validator recording its last vote, calls DB.Sync or opens
// the database WithSyncWrites. Values are limited to DB.MaxValueSize (under
// 1 MiB in memory, 128 MiB on disk by default).
//
// Tests use WithInMemory, or WithLowMemory on a temporary directory; both
// keep badger to a few MiB, so many nodes fit in one test process.
//
// # Block store
//
// NewBlockstore keeps block bytes as files in a sharded tree under a
// directory and their index, pins and reference counts in the database.
// Every block is checked against its CID when written and again when read; a
// block whose file no longer matches is reported, dropped from the index and
// never returned, so a fetcher sees it as missing and fetches it again.
// PutMany writes a batch of blocks as Put writes each, hashing them
// together (16 at a time in the vector unit on CPUs with AVX-512) and
// indexing them in one transaction; a bad block in the batch stores nothing.
//
// Each block file is fsynced before it is indexed, unless the store was
// opened WithoutFsync, in which case Blockstore.Sync flushes everything in one
// call (Import does so before pinning; a fetcher calls it when a transfer
// completes).
//
// A block stays until garbage collection finds it neither pinned nor linked
// from another stored block. Writers that store a DAG bottom-up (chunks
// before their manifest) hold HoldGC until they have pinned the root, so a
// concurrent GC cannot take the children of a manifest not yet written.
//
// # Files
//
// Import and ImportReader cut files into raw blocks (1 MiB by default) listed
// by dag-cbor manifest nodes under one root; Export writes them back. Both
// stream, so memory use does not grow with the file size.
package storage
