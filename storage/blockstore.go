package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/gpunode/gpunode/storage/internal/sha256x16"
	"github.com/ipfs/go-cid"
)

// Sentinel errors of the block store.
var (
	ErrCorrupt   = errors.New("storage: stored block is corrupt")
	ErrNotPinned = errors.New("storage: not pinned")
)

// Keyspaces the block store uses in the node's database.
const (
	keyspaceBlocks = "blocks"      // CID -> index entry (size and links)
	keyspaceRefs   = "blocks.refs" // CID -> number of stored blocks linking to it
	keyspacePins   = "blocks.pins" // root CID -> pinned marker
)

type blockstoreConfig struct {
	log       *slog.Logger
	onCorrupt func(c cid.Cid, err error)
	noSync    bool
}

// BlockstoreOption configures NewBlockstore.
type BlockstoreOption func(*blockstoreConfig) error

// WithBlockLogger sets the block store's logger (default: the database's).
func WithBlockLogger(l *slog.Logger) BlockstoreOption {
	return func(c *blockstoreConfig) error {
		if l == nil {
			return errors.New("storage: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithCorruptionHandler sets a function called (synchronously, from the
// reading goroutine) whenever a stored block fails verification on read,
// after it has been dropped from the index.
func WithCorruptionHandler(fn func(c cid.Cid, err error)) BlockstoreOption {
	return func(c *blockstoreConfig) error { c.onCorrupt = fn; return nil }
}

// WithoutFsync skips the fsync of each block file and its directory before
// the block is indexed; Blockstore.Sync makes everything written so far
// durable in one call instead, and Import calls it before pinning. A crash
// before that may leave a torn or missing file under an index entry; reads
// verify every block, so such a block is reported corrupt and fetched again,
// never served. With 1 MiB blocks the per-block fsync costs more than the
// network, so a fetcher that wants full speed uses this and calls Sync when
// a transfer completes.
func WithoutFsync() BlockstoreOption {
	return func(c *blockstoreConfig) error { c.noSync = true; return nil }
}

// Blockstore holds content-addressed blocks: bytes in files under
// <dir>/blocks/<shard>/<cid>, where shard is the first digest byte in hex,
// and an index, reference counts and pins in the database. It is safe for
// concurrent use.
//
// A stored block's reference count is the number of stored blocks that link
// to it. GC removes blocks that are neither pinned nor referenced, which
// cascades down a DAG whose root is unpinned, so a pin keeps its whole DAG.
type Blockstore struct {
	db                *DB
	index, refs, pins *Keyspace
	blocksDir, tmpDir string
	sync              bool
	log               *slog.Logger
	onCorrupt         func(cid.Cid, error)
	gc                gcLock
	shards            [256]atomic.Bool // shard directory known to exist
}

// NewBlockstore opens the block store whose files live under dir (created if
// needed) and whose index lives in db.
func NewBlockstore(db *DB, dir string, opts ...BlockstoreOption) (*Blockstore, error) {
	cfg := blockstoreConfig{log: db.log}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if dir == "" {
		return nil, errors.New("storage: blockstore: empty directory")
	}
	b := &Blockstore{
		db:        db,
		index:     db.Keyspace(keyspaceBlocks),
		refs:      db.Keyspace(keyspaceRefs),
		pins:      db.Keyspace(keyspacePins),
		blocksDir: filepath.Join(dir, "blocks"),
		tmpDir:    filepath.Join(dir, "blocks", "tmp"),
		sync:      !cfg.noSync,
		log:       cfg.log.With("component", "blockstore"),
		onCorrupt: cfg.onCorrupt,
	}
	b.gc.init()
	if err := os.MkdirAll(b.tmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: blockstore: %w", err)
	}
	if b.sync {
		if err := syncDir(b.blocksDir); err != nil {
			return nil, fmt.Errorf("storage: blockstore: %w", err)
		}
	}
	// Shard directories are made on first use; note the existing ones.
	ents, err := os.ReadDir(b.blocksDir)
	if err != nil {
		return nil, fmt.Errorf("storage: blockstore: %w", err)
	}
	for _, e := range ents {
		var i byte
		if n, _ := fmt.Sscanf(e.Name(), "%02x", &i); n == 1 && e.IsDir() && e.Name() == fmt.Sprintf("%02x", i) {
			b.shards[i].Store(true)
		}
	}
	return b, nil
}

// path is where c's bytes live. c must have passed CheckCID.
func (b *Blockstore) path(c cid.Cid) string {
	return filepath.Join(b.blocksDir, fmt.Sprintf("%02x", shardOf(c)), c.String())
}

// shardOf is the first byte of c's sha2-256 digest.
func shardOf(c cid.Cid) byte {
	h := c.Hash()
	return h[len(h)-32]
}

// ensureShard creates c's shard directory the first time it is needed.
func (b *Blockstore) ensureShard(c cid.Cid) error {
	i := shardOf(c)
	if b.shards[i].Load() {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(b.blocksDir, fmt.Sprintf("%02x", i)), 0o755); err != nil {
		return err
	}
	if b.sync {
		if err := syncDir(b.blocksDir); err != nil {
			return err
		}
	}
	b.shards[i].Store(true)
	return nil
}

// verify checks data against c, which must have passed CheckCID.
func verify(c cid.Cid, data []byte) bool {
	h := c.Hash()
	sum := sha256.Sum256(data)
	return bytes.Equal(sum[:], h[len(h)-32:])
}

// indexEntry is what the index holds per block: its size and its links, so
// that removing a block can release its children's references without
// reading (possibly corrupt) block bytes.
type indexEntry struct {
	size  int
	links []cid.Cid
}

func (e indexEntry) encode() []byte {
	out := binary.AppendUvarint(nil, uint64(e.size))
	out = binary.AppendUvarint(out, uint64(len(e.links)))
	for _, l := range e.links {
		kb := l.Bytes()
		out = binary.AppendUvarint(out, uint64(len(kb)))
		out = append(out, kb...)
	}
	return out
}

func decodeIndexEntry(data []byte) (indexEntry, error) {
	bad := fmt.Errorf("%w: bad index entry", ErrCorrupt)
	size, n := binary.Uvarint(data)
	if n <= 0 || size > MaxBlockSize {
		return indexEntry{}, bad
	}
	data = data[n:]
	count, n := binary.Uvarint(data)
	if n <= 0 || count > uint64(len(data)) {
		return indexEntry{}, bad
	}
	data = data[n:]
	e := indexEntry{size: int(size), links: make([]cid.Cid, 0, count)}
	for range count {
		l, n := binary.Uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return indexEntry{}, bad
		}
		c, err := cid.Cast(data[n : n+int(l)])
		if err != nil {
			return indexEntry{}, bad
		}
		e.links = append(e.links, c)
		data = data[n+int(l):]
	}
	if len(data) != 0 {
		return indexEntry{}, bad
	}
	return e, nil
}

// Put stores data as block c after checking that data hashes to c
// (ErrCIDMismatch otherwise) and, for dag-cbor, that its links parse. The
// bytes reach a temporary file, are fsynced and renamed into place before
// the index says the block is present. Putting a block already held is a
// cheap no-op.
func (b *Blockstore) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckCID(c); err != nil {
		return fmt.Errorf("storage: put %s: %w", c, err)
	}
	if len(data) > MaxBlockSize {
		return fmt.Errorf("storage: put %s: %w: %d bytes > %d", c, ErrBlockTooLarge, len(data), MaxBlockSize)
	}
	if !verify(c, data) {
		return fmt.Errorf("storage: put %s: %w", c, ErrCIDMismatch)
	}
	links, err := Links(c, data)
	if err != nil {
		return fmt.Errorf("storage: put %s: %w", c, err)
	}
	b.gc.enter()
	defer b.gc.leave()
	key := c.Bytes()
	if ok, err := b.index.Has(key); err != nil {
		return fmt.Errorf("storage: put %s: %w", c, err)
	} else if ok {
		return nil
	}
	if err := b.writeFile(c, data); err != nil {
		return fmt.Errorf("storage: put %s: %w", c, err)
	}
	entry := indexEntry{size: len(data), links: links}.encode()
	err = b.db.Update(func(tx *Txn) error {
		if ok, err := tx.Has(b.index, key); err != nil || ok {
			return err // a concurrent Put of the same block won
		}
		if err := tx.Put(b.index, key, entry); err != nil {
			return err
		}
		for _, r := range countLinks(links) {
			if err := addRef(tx, b.refs, r.c, r.n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The file stays as an orphan until GC sweeps it; it is not indexed
		// so it is never served.
		return fmt.Errorf("storage: put %s: index: %w", c, err)
	}
	return nil
}

// Block is a block for PutMany: its CID and its bytes.
type Block struct {
	CID  cid.Cid
	Data []byte
}

// PutMany stores blocks as Put stores each one, but checks them together
// (hashing up to 16 at a time in the vector unit where the CPU has one, see
// storage/internal/sha256x16) and indexes them in one database transaction.
// If any block fails a check (its CID, its size, its hash, the links of a
// dag-cbor node) nothing is written and the error names that block: it
// wraps ErrCIDMismatch for a block that does not match its CID. Blocks
// already held, and repeats within blocks, are skipped. As with Put, every
// file reaches a temporary file, is fsynced (unless WithoutFsync) and
// renamed into place before the index says the block is present, so a
// crash or a failed commit leaves at most unindexed files, which GC sweeps.
// PutMany does not keep the blocks' bytes after it returns.
func (b *Blockstore) PutMany(ctx context.Context, blocks []Block) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, bl := range blocks {
		if err := CheckCID(bl.CID); err != nil {
			return fmt.Errorf("storage: put %s: %w", bl.CID, err)
		}
		if len(bl.Data) > MaxBlockSize {
			return fmt.Errorf("storage: put %s: %w: %d bytes > %d", bl.CID, ErrBlockTooLarge, len(bl.Data), MaxBlockSize)
		}
	}
	if i := verifyMany(blocks); i >= 0 {
		return fmt.Errorf("storage: put %s: %w", blocks[i].CID, ErrCIDMismatch)
	}
	type pending struct {
		Block
		key   []byte
		links []cid.Cid
	}
	todo := make([]pending, 0, len(blocks))
	seen := make(map[cid.Cid]bool, len(blocks))
	for _, bl := range blocks {
		if seen[bl.CID] {
			continue
		}
		seen[bl.CID] = true
		links, err := Links(bl.CID, bl.Data)
		if err != nil {
			return fmt.Errorf("storage: put %s: %w", bl.CID, err)
		}
		todo = append(todo, pending{Block: bl, key: bl.CID.Bytes(), links: links})
	}
	b.gc.enter()
	defer b.gc.leave()
	for _, p := range todo {
		if ok, err := b.index.Has(p.key); err != nil {
			return fmt.Errorf("storage: put %s: %w", p.CID, err)
		} else if ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err // the files written so far stay unindexed until GC
		}
		if err := b.writeFile(p.CID, p.Data); err != nil {
			return fmt.Errorf("storage: put %s: %w", p.CID, err)
		}
	}
	index := func(tx *Txn, p pending) error {
		if ok, err := tx.Has(b.index, p.key); err != nil || ok {
			return err // held already, or a concurrent Put of the same block won
		}
		if err := tx.Put(b.index, p.key, indexEntry{size: len(p.Data), links: p.links}.encode()); err != nil {
			return err
		}
		for _, r := range countLinks(p.links) {
			if err := addRef(tx, b.refs, r.c, r.n); err != nil {
				return err
			}
		}
		return nil
	}
	err := b.db.Update(func(tx *Txn) error {
		for _, p := range todo {
			if err := index(tx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Many large manifests: index them one transaction each, as Put
		// does; each block's entry and references still commit together.
		err = nil
		for _, p := range todo {
			if err = b.db.Update(func(tx *Txn) error { return index(tx, p) }); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("storage: put %d blocks: index: %w", len(blocks), err)
	}
	return nil
}

// verifyMany checks every block against its CID (which must have passed
// CheckCID), hashing them in batches, and returns the index of the first
// block that does not match, or -1.
func verifyMany(blocks []Block) int {
	msgs := make([][]byte, len(blocks))
	for i, bl := range blocks {
		msgs[i] = bl.Data
	}
	sums := make([][sha256.Size]byte, len(blocks))
	sha256x16.Sum(msgs, sums)
	for i, bl := range blocks {
		h := bl.CID.Hash()
		if !bytes.Equal(sums[i][:], h[len(h)-sha256.Size:]) {
			return i
		}
	}
	return -1
}

func (b *Blockstore) writeFile(c cid.Cid, data []byte) error {
	f, err := os.CreateTemp(b.tmpDir, "put-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && b.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	final := b.path(c)
	if err == nil {
		err = b.ensureShard(c)
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if b.sync {
		return syncDir(filepath.Dir(final))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type linkCount struct {
	c cid.Cid
	n int64
}

// countLinks folds repeated links (a file with identical chunks) into one
// count each, so a block costs one write per distinct child.
func countLinks(links []cid.Cid) []linkCount {
	var out []linkCount
	at := make(map[cid.Cid]int, len(links))
	for _, l := range links {
		if i, ok := at[l]; ok {
			out[i].n++
			continue
		}
		at[l] = len(out)
		out = append(out, linkCount{l, 1})
	}
	return out
}

// addRef changes c's reference count by delta; a count reaching zero is
// deleted.
func addRef(tx *Txn, refs *Keyspace, c cid.Cid, delta int64) error {
	n, err := getRef(tx, refs, c)
	if err != nil {
		return err
	}
	n += delta
	if n <= 0 {
		return tx.Delete(refs, c.Bytes())
	}
	return tx.Put(refs, c.Bytes(), binary.AppendUvarint(nil, uint64(n)))
}

func getRef(tx *Txn, refs *Keyspace, c cid.Cid) (int64, error) {
	v, err := tx.Get(refs, c.Bytes())
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, fmt.Errorf("%w: bad reference count for %s", ErrCorrupt, c)
	}
	return int64(n), nil
}

// Get returns block c, verified against c. A block not held gives
// ErrNotFound. A block whose file is missing or no longer matches gives
// ErrCorrupt: it is reported, its file removed and its index entry dropped,
// so Has answers false and a fetcher fetches it again.
func (b *Blockstore) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := CheckCID(c); err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", c, err)
	}
	v, err := b.index.Get(c.Bytes())
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", c, err)
	}
	e, err := decodeIndexEntry(v)
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", c, err)
	}
	data, err := readBlockFile(b.path(c), e.size)
	switch {
	case err != nil && !errors.Is(err, errFileSize):
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("storage: get %s: %w", c, err)
		}
		// GC may have removed the block since the index lookup.
		if ok, herr := b.index.Has(c.Bytes()); herr == nil && !ok {
			return nil, fmt.Errorf("storage: get %s: %w", c, ErrNotFound)
		}
		return nil, b.corrupt(c, err)
	case err != nil:
		return nil, b.corrupt(c, err)
	case !verify(c, data):
		return nil, b.corrupt(c, errors.New("content does not match CID"))
	}
	return data, nil
}

var errFileSize = errors.New("file size differs from index")

// readBlockFile reads a block file expected to hold size bytes, reading at
// most one byte more so an overgrown file costs no extra memory.
func readBlockFile(path string, size int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errFileSize, n, size)
	}
	return buf[:size], nil
}

// corrupt drops a block that failed verification: the file first, then the
// index entry with the references it held, so a concurrent Put of the same
// block either sees the entry (and the file goes; the block reads as
// missing) or does not (and its fresh file and entry stay).
func (b *Blockstore) corrupt(c cid.Cid, cause error) error {
	err := fmt.Errorf("storage: get %s: %w: %v", c, ErrCorrupt, cause)
	b.log.Warn("corrupt block dropped; it will be fetched again", "cid", c, "err", cause)
	if rerr := os.Remove(b.path(c)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		b.log.Error("removing corrupt block file", "cid", c, "err", rerr)
	}
	if derr := b.db.Update(func(tx *Txn) error { return b.unindex(tx, c) }); derr != nil {
		b.log.Error("unindexing corrupt block", "cid", c, "err", derr)
		err = fmt.Errorf("%w (unindex: %v)", err, derr)
	}
	if b.onCorrupt != nil {
		b.onCorrupt(c, err)
	}
	return err
}

// unindex removes c's index entry and releases the references its links
// held. It returns the links whose count dropped to zero.
func (b *Blockstore) unindex(tx *Txn, c cid.Cid) error {
	_, err := b.unindexFreed(tx, c)
	return err
}

func (b *Blockstore) unindexFreed(tx *Txn, c cid.Cid) (freed []cid.Cid, err error) {
	v, err := tx.Get(b.index, c.Bytes())
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := decodeIndexEntry(v)
	if err != nil {
		return nil, err
	}
	if err := tx.Delete(b.index, c.Bytes()); err != nil {
		return nil, err
	}
	for _, r := range countLinks(e.links) {
		if err := addRef(tx, b.refs, r.c, -r.n); err != nil {
			return nil, err
		}
		if n, err := getRef(tx, b.refs, r.c); err != nil {
			return nil, err
		} else if n == 0 {
			freed = append(freed, r.c)
		}
	}
	return freed, nil
}

// Has reports whether block c is held (according to the index; Get verifies
// the bytes).
func (b *Blockstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := CheckCID(c); err != nil {
		return false, fmt.Errorf("storage: has %s: %w", c, err)
	}
	return b.index.Has(c.Bytes())
}

// Size returns the size of block c, or ErrNotFound.
func (b *Blockstore) Size(ctx context.Context, c cid.Cid) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := CheckCID(c); err != nil {
		return 0, fmt.Errorf("storage: size %s: %w", c, err)
	}
	v, err := b.index.Get(c.Bytes())
	if err != nil {
		return 0, fmt.Errorf("storage: size %s: %w", c, err)
	}
	e, err := decodeIndexEntry(v)
	if err != nil {
		return 0, fmt.Errorf("storage: size %s: %w", c, err)
	}
	return e.size, nil
}

// Pin keeps root and every block below it through GC. The root need not be
// held yet: pinning before fetching a DAG protects the blocks as they
// arrive. Pinning twice is the same as once.
func (b *Blockstore) Pin(ctx context.Context, root cid.Cid) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckCID(root); err != nil {
		return fmt.Errorf("storage: pin %s: %w", root, err)
	}
	return b.pins.Put(root.Bytes(), []byte{1})
}

// Unpin releases a pin; ErrNotPinned if root is not pinned. The blocks stay
// until the next GC.
func (b *Blockstore) Unpin(ctx context.Context, root cid.Cid) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckCID(root); err != nil {
		return fmt.Errorf("storage: unpin %s: %w", root, err)
	}
	return b.db.Update(func(tx *Txn) error {
		ok, err := tx.Has(b.pins, root.Bytes())
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("storage: unpin %s: %w", root, ErrNotPinned)
		}
		return tx.Delete(b.pins, root.Bytes())
	})
}

// Pins lists the pinned roots in byte order of their CIDs.
func (b *Blockstore) Pins(ctx context.Context) ([]cid.Cid, error) {
	var out []cid.Cid
	err := b.pins.Iterate(nil, func(k, _ []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := cid.Cast(k)
		if err != nil {
			return fmt.Errorf("%w: bad pin key: %v", ErrCorrupt, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// IsPinned reports whether root is pinned.
func (b *Blockstore) IsPinned(ctx context.Context, root cid.Cid) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := CheckCID(root); err != nil {
		return false, fmt.Errorf("storage: pinned %s: %w", root, err)
	}
	return b.pins.Has(root.Bytes())
}

// Sync makes every block written so far durable (needed only WithoutFsync;
// otherwise Put already did).
func (b *Blockstore) Sync() error {
	if !b.sync {
		if err := syncFS(b.blocksDir); err != nil {
			return fmt.Errorf("storage: sync blocks: %w", err)
		}
	}
	return nil
}

// HoldGC keeps GC from starting until release is called; a GC already
// running finishes first. Hold it while writing a DAG bottom-up (children
// before the block that links them) until its root is pinned or linked.
// Holds nest and may be taken by many goroutines at once; a goroutine
// holding one must not call GC, which would wait for it forever.
func (b *Blockstore) HoldGC() (release func()) {
	b.gc.enter()
	return sync.OnceFunc(b.gc.leave)
}

// GCStats reports what a GC removed.
type GCStats struct {
	Blocks  int   // blocks removed from the index
	Bytes   int64 // their total size
	Orphans int   // files removed that no index entry named (left by a crash or failed write)
}

// GC removes every block that is neither pinned nor linked from a remaining
// block, then files that no index entry names. It waits for writers holding
// HoldGC (and Puts in flight) and keeps new ones waiting while it runs.
func (b *Blockstore) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	b.gc.lock()
	defer b.gc.unlock()

	var work []cid.Cid
	err := b.db.View(func(tx *Txn) error {
		return tx.Iterate(b.index, nil, func(k, _ []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, err := cid.Cast(k)
			if err != nil {
				return fmt.Errorf("%w: bad index key: %v", ErrCorrupt, err)
			}
			collectable, err := b.collectable(tx, c)
			if collectable {
				work = append(work, c)
			}
			return err
		})
	})
	if err != nil {
		return st, fmt.Errorf("storage: gc: %w", err)
	}
	for len(work) > 0 {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		c := work[len(work)-1]
		work = work[:len(work)-1]
		var size int
		var freed []cid.Cid
		removed := false
		err := b.db.Update(func(tx *Txn) error {
			freed, removed = nil, false
			// A Pin may have landed since the scan.
			if ok, err := b.collectable(tx, c); err != nil || !ok {
				return err
			}
			v, err := tx.Get(b.index, c.Bytes())
			if err != nil {
				return err
			}
			e, err := decodeIndexEntry(v)
			if err != nil {
				return err
			}
			size = e.size
			freed, err = b.unindexFreed(tx, c)
			removed = err == nil
			return err
		})
		if err != nil {
			return st, fmt.Errorf("storage: gc %s: %w", c, err)
		}
		if !removed {
			continue
		}
		if err := os.Remove(b.path(c)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("storage: gc %s: %w", c, err)
		}
		st.Blocks++
		st.Bytes += int64(size)
		for _, f := range freed {
			if ok, err := b.index.Has(f.Bytes()); err != nil {
				return st, fmt.Errorf("storage: gc: %w", err)
			} else if ok {
				work = append(work, f)
			}
		}
	}
	n, err := b.sweep(ctx)
	st.Orphans = n
	if err != nil {
		return st, fmt.Errorf("storage: gc: sweep: %w", err)
	}
	b.log.Info("garbage collected", "blocks", st.Blocks, "bytes", st.Bytes, "orphans", st.Orphans)
	return st, nil
}

// collectable reports whether c is held, unpinned and unreferenced.
func (b *Blockstore) collectable(tx *Txn, c cid.Cid) (bool, error) {
	if ok, err := tx.Has(b.index, c.Bytes()); err != nil || !ok {
		return false, err
	}
	if ok, err := tx.Has(b.pins, c.Bytes()); err != nil || ok {
		return false, err
	}
	n, err := getRef(tx, b.refs, c)
	return n == 0 && err == nil, err
}

// sweep removes temporary files and block files without an index entry.
// It runs under the GC lock, so no write is in flight.
func (b *Blockstore) sweep(ctx context.Context) (int, error) {
	removed := 0
	tmps, err := os.ReadDir(b.tmpDir)
	if err != nil {
		return 0, err
	}
	for _, t := range tmps {
		if err := os.Remove(filepath.Join(b.tmpDir, t.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	for i := range 256 {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if !b.shards[i].Load() {
			continue // never created
		}
		dir := filepath.Join(b.blocksDir, fmt.Sprintf("%02x", i))
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		for _, e := range ents {
			c, err := cid.Decode(e.Name())
			if err == nil {
				if ok, err := b.index.Has(c.Bytes()); err != nil {
					return removed, err
				} else if ok {
					continue
				}
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// gcLock lets any number of writers run together and GC run alone. Unlike
// sync.RWMutex it lets a writer enter while GC is only waiting, so a
// goroutine holding HoldGC can still Put (a nested read lock on an RWMutex
// would deadlock against a waiting GC); GC may wait longer in exchange.
type gcLock struct {
	mu      sync.Mutex
	cond    *sync.Cond // signalled on mu when writers or running change
	writers int        // guarded by mu
	running bool       // GC in progress; guarded by mu
}

func (g *gcLock) init() { g.cond = sync.NewCond(&g.mu) }

func (g *gcLock) enter() {
	g.mu.Lock()
	for g.running {
		g.cond.Wait()
	}
	g.writers++
	g.mu.Unlock()
}

func (g *gcLock) leave() {
	g.mu.Lock()
	g.writers--
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *gcLock) lock() {
	g.mu.Lock()
	for g.running || g.writers > 0 {
		g.cond.Wait()
	}
	g.running = true
	g.mu.Unlock()
}

func (g *gcLock) unlock() {
	g.mu.Lock()
	g.running = false
	g.cond.Broadcast()
	g.mu.Unlock()
}
