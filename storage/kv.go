package storage

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// kv is the narrow key-value interface between keyspaces and badger. It
// exists so a test can put a fault-injecting layer in between (badger has no
// pluggable file system to fail under it).
type kv interface {
	// view runs fn in a read-only snapshot.
	view(fn func(r kvReader) error) error
	// update runs fn in a read-write transaction and commits it if fn
	// returns nil; otherwise nothing fn wrote is applied. It returns
	// badger.ErrConflict (wrapped) when a concurrent transaction won.
	update(fn func(w kvWriter) error) error
	sync() error
	close() error
}

type kvReader interface {
	// get returns a copy of the value, or ErrNotFound.
	get(key []byte) ([]byte, error)
	// iterate calls fn for each key with prefix in order. The slices are
	// only valid during the call.
	iterate(prefix []byte, fn func(key, val []byte) error) error
}

type kvWriter interface {
	kvReader
	set(key, val []byte) error
	delete(key []byte) error
}

// badgerKV is the real kv.
type badgerKV struct{ db *badger.DB }

func (b badgerKV) view(fn func(r kvReader) error) error {
	return b.db.View(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
}

func (b badgerKV) update(fn func(w kvWriter) error) error {
	return b.db.Update(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
}

func (b badgerKV) sync() error  { return b.db.Sync() }
func (b badgerKV) close() error { return b.db.Close() }

type badgerTxn struct{ txn *badger.Txn }

func (t badgerTxn) get(key []byte) ([]byte, error) {
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (t badgerTxn) iterate(prefix []byte, fn func(key, val []byte) error) error {
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	var val []byte
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var err error
		if val, err = item.ValueCopy(val[:0]); err != nil {
			return err
		}
		if err := fn(item.Key(), val); err != nil {
			return err
		}
	}
	return nil
}

func (t badgerTxn) set(key, val []byte) error { return t.txn.Set(key, val) }
func (t badgerTxn) delete(key []byte) error   { return t.txn.Delete(key) }

// wrapKV annotates a backend error with the operation that failed, keeping
// the sentinel ErrNotFound unwrapped-comparable.
func wrapKV(op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("storage: %s: %w", op, err)
}
