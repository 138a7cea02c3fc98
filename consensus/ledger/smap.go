package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"maps"
	"slices"
)

// smap is an immutable, sharded, hashed map from string keys to values. A new
// version shares every shard it did not change with the old one, so applying
// a block costs in proportion to the keys it touches, not to the state size,
// and the old version stays valid (Apply never mutates its input).
//
// Its root hash is sha256 over the shard hashes; a shard's hash is sha256 over
// its keys in byte order, each as uvarint(len)||key||leaf, where leaf is the
// sha256 of the value's canonical encoding. Only shards changed by a block
// are re-hashed, and only changed values get a new leaf.
type smap[V any] struct {
	shards []*shard[V]
	root   [32]byte
	n      int
}

type shard[V any] struct {
	m    map[string]entry[V]
	keys []string // sorted
	hash [32]byte
}

type entry[V any] struct {
	v    V
	leaf [32]byte
	ok   bool // leaf is up to date
}

// shardOf picks a key's shard with FNV-1a, which is stable across machines
// and versions (the shard layout is part of the state hash).
func shardOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

func newSmap[V any](nShards int) *smap[V] {
	s := &smap[V]{shards: make([]*shard[V], nShards)}
	empty := &shard[V]{hash: sha256.Sum256(nil)}
	for i := range s.shards {
		s.shards[i] = empty
	}
	s.root = s.computeRoot()
	return s
}

func (s *smap[V]) computeRoot() [32]byte {
	h := sha256.New()
	for _, sh := range s.shards {
		h.Write(sh.hash[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

func (s *smap[V]) get(k string) (V, bool) {
	e, ok := s.shards[shardOf(k, len(s.shards))].m[k]
	return e.v, ok
}

// Len is the number of keys.
func (s *smap[V]) Len() int { return s.n }

// each calls f for every key in a deterministic order (shard, then key).
func (s *smap[V]) each(f func(k string, v V) bool) {
	for _, sh := range s.shards {
		for _, k := range sh.keys {
			if !f(k, sh.m[k].v) {
				return
			}
		}
	}
}

// smapTx is a writable overlay of an smap, used while applying one block.
type smapTx[V any] struct {
	base   *smap[V]
	shards []*shard[V]
	owned  []bool
	n      int
	enc    func(dst []byte, v V) []byte
}

func (s *smap[V]) begin(enc func(dst []byte, v V) []byte) *smapTx[V] {
	return &smapTx[V]{base: s, shards: slices.Clone(s.shards), owned: make([]bool, len(s.shards)), n: s.n, enc: enc}
}

func (t *smapTx[V]) get(k string) (V, bool) {
	e, ok := t.shards[shardOf(k, len(t.shards))].m[k]
	return e.v, ok
}

func (t *smapTx[V]) own(i int) *shard[V] {
	if !t.owned[i] {
		old := t.shards[i]
		t.shards[i] = &shard[V]{m: maps.Clone(old.m), keys: old.keys}
		if t.shards[i].m == nil {
			t.shards[i].m = make(map[string]entry[V])
		}
		t.owned[i] = true
	}
	return t.shards[i]
}

func (t *smapTx[V]) set(k string, v V) {
	sh := t.own(shardOf(k, len(t.shards)))
	if _, ok := sh.m[k]; !ok {
		t.n++
	}
	sh.m[k] = entry[V]{v: v}
}

func (t *smapTx[V]) del(k string) {
	sh := t.own(shardOf(k, len(t.shards)))
	if _, ok := sh.m[k]; ok {
		t.n--
		delete(sh.m, k)
	}
}

// dirty reports whether any shard was written.
func (t *smapTx[V]) dirty() bool { return slices.Contains(t.owned, true) }

// each is smap.each over the overlay; keys added in this block are visited
// in order too.
func (t *smapTx[V]) each(f func(k string, v V) bool) {
	for i, sh := range t.shards {
		keys := sh.keys
		if t.owned[i] {
			keys = slices.Sorted(maps.Keys(sh.m))
		}
		for _, k := range keys {
			if !f(k, sh.m[k].v) {
				return
			}
		}
	}
}

// commit re-hashes the changed shards and returns the new immutable version.
func (t *smapTx[V]) commit() *smap[V] {
	changed := false
	var buf []byte
	for i, sh := range t.shards {
		if !t.owned[i] {
			continue
		}
		changed = true
		sh.keys = slices.Sorted(maps.Keys(sh.m))
		h := sha256.New()
		var lenb [binary.MaxVarintLen64]byte
		for _, k := range sh.keys {
			e := sh.m[k]
			if !e.ok {
				buf = t.enc(buf[:0], e.v)
				e.leaf = sha256.Sum256(buf)
				e.ok = true
				sh.m[k] = e
			}
			h.Write(lenb[:binary.PutUvarint(lenb[:], uint64(len(k)))])
			h.Write([]byte(k))
			h.Write(e.leaf[:])
		}
		h.Sum(sh.hash[:0])
	}
	if !changed {
		return t.base
	}
	s := &smap[V]{shards: t.shards, n: t.n}
	s.root = s.computeRoot()
	// The overlay must not be used after commit: its shards now belong to s.
	t.shards, t.owned = nil, nil
	return s
}

// verify recomputes every shard hash and the root from scratch and reports
// whether they match the incremental ones (CheckInvariant uses it).
func (s *smap[V]) verify(enc func(dst []byte, v V) []byte) bool {
	n := 0
	var buf []byte
	for _, sh := range s.shards {
		if !slices.IsSorted(sh.keys) || len(sh.keys) != len(sh.m) {
			return false
		}
		h := sha256.New()
		var lenb [binary.MaxVarintLen64]byte
		for _, k := range sh.keys {
			e, ok := sh.m[k]
			if !ok {
				return false
			}
			buf = enc(buf[:0], e.v)
			leaf := sha256.Sum256(buf)
			h.Write(lenb[:binary.PutUvarint(lenb[:], uint64(len(k)))])
			h.Write([]byte(k))
			h.Write(leaf[:])
		}
		var got [32]byte
		h.Sum(got[:0])
		if got != sh.hash {
			return false
		}
		n += len(sh.keys)
	}
	return n == s.n && s.computeRoot() == s.root
}
