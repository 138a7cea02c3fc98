// Package exchange moves content-addressed blocks between peers: a libp2p
// stream protocol to ask a peer for the blocks of a DAG under a root, a
// fetcher that walks the DAG and pulls its blocks from several peers over
// several streams at once, and root announcements on the DHT.
//
// # Wire
//
// The protocol is protocol.StreamProtocol(net, "exchange"). On a stream the
// client writes requests and the server answers every wanted CID, in order,
// with one response frame; the client pipelines requests so many blocks are
// in flight on each stream. Every message is length-prefixed (uvarint)
// deterministic CBOR with a hard limit checked before the body is read:
//
//	Request  {1: root CID, 2: [CID, ...]}              <= MaxRequestSize, <= MaxWants CIDs
//	Response {1: status, 2: CID, 3: size, 4: message}  <= MaxHeaderSize
//	         followed by size raw block bytes          <= MaxBlockSize
//
// Statuses: ok (block follows), not found (the server lacks it, or it is not
// under the root), error (the server could not read it, e.g. corrupt on
// disk), denied (the serving policy refuses this peer for this root; the
// stream ends), bad request (malformed or over a limit; the stream ends).
// Block bytes travel outside the CBOR so a megabyte block is read straight
// into its buffer.
//
// # Serving
//
// New registers the handler. The server answers only for CIDs reachable from
// the request's root in its own store, so an AllowFunc that grants a peer
// one root (e.g. the parties of a lease) cannot be used to read another.
//
// # Fetching
//
// Fetch(ctx, root, peers) fetches the root, then the blocks its links name,
// skipping blocks already in the store (a restarted fetch transfers only what
// is missing). Each peer gets WithStreamsPerPeer streams (default 2: one
// stream's rate hangs on where the muxer's per-stream receive window
// settles) with WithWindow blocks requested ahead on each; the server reads
// the next blocks from its store while it sends. On the fetching side a
// reader per stream hands blocks to the fetch's one processor goroutine,
// which verifies and stores them, so the muxers' windows keep draining.
// With AVX-512 the blocks are hashed 16 at a time, from whichever streams
// they came, in the vector unit (storage/internal/sha256x16, about 2.5x a
// SHA-NI stream); without it each reader hashes its blocks piece by piece
// as they arrive. Every block is checked against its CID
// before it is kept: by the exchange, or with WithStoreVerifies by the
// store's Put, or, for a store that has PutMany (storage.Blockstore), by
// PutMany on batches of up to 16 blocks, hashed together and indexed in one
// transaction. A peer that sends a wrong block or breaks the
// protocol is penalised (Penalty, WithBadPeerHook) and dropped, and its
// blocks go to the other peers; a peer whose streams fail is dropped the
// same way without penalty. Blocks are written to the store as they
// arrive, so memory stays bounded by peers x streams x (window + 1) + 20
// blocks whatever the DAG size (about 18 MiB per peer plus 20 MiB with the
// defaults and 1 MiB blocks).
// WithProgress reports blocks and bytes, and with
// WithContentSize the total content bytes, for a progress bar with an ETA.
//
// # Usage
//
// The node builds one Exchange over its block store:
//
//	ex, err := exchange.New(exchange.NewHost(h, net), bs, storage.Links,
//		exchange.WithStoreVerifies(func(err error) bool { return errors.Is(err, storage.ErrCIDMismatch) }),
//		exchange.WithContentSize(func(_ cid.Cid, b []byte) (int64, bool) {
//			n, err := storage.DecodeNode(b)
//			if err != nil {
//				return 0, false
//			}
//			return int64(n.Size), true
//		}),
//		exchange.WithAllow(policy))
//
// announces roots it holds with Announce(ctx, dht, root), and to get a root
// finds holders with FindHolders(ctx, dht, root, self, n) (or takes the
// peers of a lease) and calls ex.Fetch. The caller should pin the root (or
// hold the store's GC) while fetching, so a GC does not collect fetched
// blocks that are not pinned yet.
package exchange
