package consensus

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
	"github.com/gpunode/gpunode/storage"
)

// KV is what the Service needs of its database: one keyspace, atomic
// batches and an explicit durability barrier. NewKV adapts the node's
// storage.DB; tests wrap it to inject faults.
type KV interface {
	// Get returns the value under key or an error wrapping
	// storage.ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Iterate calls fn for every key with prefix, in byte order.
	Iterate(prefix []byte, fn func(key, val []byte) error) error
	// Write applies puts and deletes atomically: all or none.
	Write(puts []KVPair, deletes [][]byte) error
	// Sync makes every write so far durable (fsync).
	Sync() error
}

// KVPair is one put of a Write.
type KVPair struct{ Key, Val []byte }

// NewKV adapts the "consensus" keyspace of db.
func NewKV(db *storage.DB) KV { return storageKV{db: db, ks: db.Keyspace("consensus")} }

type storageKV struct {
	db *storage.DB
	ks *storage.Keyspace
}

func (s storageKV) Get(key []byte) ([]byte, error) { return s.ks.Get(key) }
func (s storageKV) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	return s.ks.Iterate(prefix, fn)
}
func (s storageKV) Sync() error { return s.db.Sync() }
func (s storageKV) Write(puts []KVPair, deletes [][]byte) error {
	return s.db.Update(func(tx *storage.Txn) error {
		for _, p := range puts {
			if err := tx.Put(s.ks, p.Key, p.Val); err != nil {
				return err
			}
		}
		for _, d := range deletes {
			if err := tx.Delete(s.ks, d); err != nil {
				return err
			}
		}
		return nil
	})
}

// Key layout of the consensus keyspace.
var (
	keyHeight   = []byte("h")  // uint64 height of the last stored block
	prefixBlock = []byte("b/") // + uint64 height -> storedBlock
	prefixTx    = []byte("t/") // + tx hash -> txLocation
	prefixWAL   = []byte("w/") // + uint64 seq -> WAL record
)

func u64key(prefix []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), v)
}

// StoredBlock is a committed block with the certificate that decided it,
// as kept in the block store and served by block sync.
type StoredBlock struct {
	Block       []byte          `cbor:"1,keyasint"` // ledger.Block.Encode()
	Certificate bft.Certificate `cbor:"2,keyasint"`
}

// txLocation says where a committed tx is.
type txLocation struct {
	Height uint64 `cbor:"1,keyasint"`
	Index  uint32 `cbor:"2,keyasint"`
	Error  string `cbor:"3,keyasint,omitempty"` // the failure receipt's error, if the body failed
}

// blockStore keeps committed blocks, their certificates and a tx index.
// The ledger state is not stored: it is a pure function of the blocks and
// is rebuilt (and its hash re-checked against every header) at start-up,
// so a block and "its" state can never be persisted out of step.
type blockStore struct{ kv KV }

// height returns the height of the last stored block (0 if none).
func (s blockStore) height() (uint64, error) {
	v, err := s.kv.Get(keyHeight)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: height record of %d bytes", ErrCorruptStore, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// get returns the stored block at height.
func (s blockStore) get(height uint64) (*StoredBlock, *ledger.Block, error) {
	v, err := s.kv.Get(u64key(prefixBlock, height))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %d", ErrNoBlock, height)
	}
	if err != nil {
		return nil, nil, err
	}
	var sb StoredBlock
	if err := protocol.Unmarshal(v, &sb); err != nil {
		return nil, nil, fmt.Errorf("%w: block %d: %w", ErrCorruptStore, height, err)
	}
	blk, err := ledger.DecodeBlock(sb.Block)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: block %d: %w", ErrCorruptStore, height, err)
	}
	return &sb, blk, nil
}

// txLocation returns where tx hash was committed.
func (s blockStore) tx(hash [32]byte) (txLocation, error) {
	v, err := s.kv.Get(append(append([]byte(nil), prefixTx...), hash[:]...))
	if err != nil {
		return txLocation{}, err
	}
	var loc txLocation
	if err := protocol.Unmarshal(v, &loc); err != nil {
		return txLocation{}, fmt.Errorf("%w: tx index: %w", ErrCorruptStore, err)
	}
	return loc, nil
}

// commitWrites returns the writes that store blk (committed by cert); the
// caller adds its WAL pruning so that both land in one atomic write.
func commitWrites(blk *ledger.Block, data []byte, cert bft.Certificate) ([]KVPair, error) {
	sb, err := protocol.Marshal(&StoredBlock{Block: data, Certificate: cert})
	if err != nil {
		return nil, err
	}
	h := blk.Header.Height
	return []KVPair{
		{Key: u64key(prefixBlock, h), Val: sb},
		{Key: keyHeight, Val: binary.BigEndian.AppendUint64(nil, h)},
	}, nil
}

// indexTxs writes the tx index of a stored block in batches small enough
// for any store. It runs after the block's own write (a crash in between
// is repaired at start-up, which re-indexes the top block) and is
// idempotent.
func (s blockStore) indexTxs(blk *ledger.Block, events []ledger.Event) error {
	failed := map[string]string{}
	for _, e := range events {
		if e.Kind == ledger.EventTxFailed {
			failed[e.Tx] = e.Error
		}
	}
	const batch = 1000
	var puts []KVPair
	for i, tx := range blk.Txs {
		th := ledger.TxHash(tx)
		loc := protocol.MustMarshal(&txLocation{Height: blk.Header.Height, Index: uint32(i), Error: failed[hex.EncodeToString(th[:])]})
		puts = append(puts, KVPair{Key: append(append([]byte(nil), prefixTx...), th[:]...), Val: loc})
		if len(puts) == batch || i == len(blk.Txs)-1 {
			if err := s.kv.Write(puts, nil); err != nil {
				return fmt.Errorf("consensus: index txs of block %d: %w", blk.Header.Height, err)
			}
			puts = puts[:0]
		}
	}
	return nil
}
