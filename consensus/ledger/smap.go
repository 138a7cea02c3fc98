package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
)

// smap is an immutable, sharded, hashed map from string keys to values. A new
// version shares every shard it did not change with the old one, so applying
// a block costs in proportion to the keys it touches, not to the state size,
// and the old version stays valid (Apply never mutates its input).
//
// Its root hash is sha256 over group hashes, each the sha256 over the hashes
// of groupSize consecutive shards; a shard's hash is sha256 over
// its keys in byte order, each as uvarint(len)||key||leaf, where leaf is the
// sha256 of the value's canonical encoding. Only shards changed by a block
// are re-hashed, and only changed values get a new leaf.
type smap[V any] struct {
	shards []*shard[V]
	groups [][32]byte // sha256 over the hashes of each run of groupSize shards
	root   [32]byte   // sha256 over groups
	n      int
}

// groupSize shards share a group hash, so a block re-hashes only the groups
// it touched plus the short list of group hashes, not every shard hash.
const groupSize = 128

// shard holds its entries sorted by key: lookups are a short binary search,
// copying a shard is one memmove, and hashing walks it in order.
type shard[V any] struct {
	es   []entry[V]
	hash [32]byte
}

type entry[V any] struct {
	k    string
	v    V
	leaf [32]byte
	ok   bool // leaf is up to date
}

func (sh *shard[V]) find(k string) (int, bool) {
	return slices.BinarySearchFunc(sh.es, k, func(e entry[V], k string) int { return strings.Compare(e.k, k) })
}

// shardOf picks a key's shard with FNV-1a, which is stable across machines
// and versions (the shard layout is part of the state hash).
func shardOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// emptyShardHash is the hash of a shard without keys.
var emptyShardHash = sha256.Sum256(nil)

func newSmap[V any](nShards int) *smap[V] {
	s := &smap[V]{shards: make([]*shard[V], nShards)}
	empty := &shard[V]{hash: emptyShardHash}
	for i := range s.shards {
		s.shards[i] = empty
	}
	s.groups = make([][32]byte, (nShards+groupSize-1)/groupSize)
	for g := range s.groups {
		s.groups[g] = s.groupHash(g)
	}
	s.root = s.computeRoot()
	return s
}

func (s *smap[V]) groupHash(g int) [32]byte {
	h := sha256.New()
	for _, sh := range s.shards[g*groupSize : min((g+1)*groupSize, len(s.shards))] {
		h.Write(sh.hash[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

func (s *smap[V]) computeRoot() [32]byte {
	h := sha256.New()
	for _, g := range s.groups {
		h.Write(g[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

func (s *smap[V]) get(k string) (V, bool) {
	sh := s.shards[shardOf(k, len(s.shards))]
	if i, ok := sh.find(k); ok {
		return sh.es[i].v, true
	}
	var zero V
	return zero, false
}

// Len is the number of keys.
func (s *smap[V]) Len() int { return s.n }

// each calls f for every key in a deterministic order (shard, then key).
func (s *smap[V]) each(f func(k string, v V) bool) {
	for _, sh := range s.shards {
		for _, e := range sh.es {
			if !f(e.k, e.v) {
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
	sh := t.shards[shardOf(k, len(t.shards))]
	if i, ok := sh.find(k); ok {
		return sh.es[i].v, true
	}
	var zero V
	return zero, false
}

// own returns shard i, copied on its first write in this overlay.
func (t *smapTx[V]) own(i int) *shard[V] {
	if !t.owned[i] {
		old := t.shards[i]
		t.shards[i] = &shard[V]{es: slices.Clone(old.es)}
		t.owned[i] = true
	}
	return t.shards[i]
}

func (t *smapTx[V]) set(k string, v V) {
	sh := t.own(shardOf(k, len(t.shards)))
	i, ok := sh.find(k)
	if ok {
		sh.es[i].v, sh.es[i].ok = v, false
		return
	}
	t.n++
	sh.es = slices.Insert(sh.es, i, entry[V]{k: k, v: v})
}

func (t *smapTx[V]) del(k string) {
	sh := t.own(shardOf(k, len(t.shards)))
	if i, ok := sh.find(k); ok {
		t.n--
		sh.es = slices.Delete(sh.es, i, i+1)
	}
}

// dirty reports whether any shard was written.
func (t *smapTx[V]) dirty() bool { return slices.Contains(t.owned, true) }

// each is smap.each over the overlay.
func (t *smapTx[V]) each(f func(k string, v V) bool) {
	for _, sh := range t.shards {
		for _, e := range sh.es {
			if !f(e.k, e.v) {
				return
			}
		}
	}
}

// hashShard computes the leaves that are out of date and the shard hash.
func hashShard[V any](sh *shard[V], enc func(dst []byte, v V) []byte, buf []byte) []byte {
	h := sha256.New()
	var lenb [binary.MaxVarintLen64]byte
	for i := range sh.es {
		e := &sh.es[i]
		if !e.ok {
			buf = enc(buf[:0], e.v)
			e.leaf = sha256.Sum256(buf)
			e.ok = true
		}
		h.Write(lenb[:binary.PutUvarint(lenb[:], uint64(len(e.k)))])
		h.Write([]byte(e.k))
		h.Write(e.leaf[:])
	}
	h.Sum(sh.hash[:0])
	return buf
}

// commit re-hashes the changed shards and returns the new immutable version.
// The overlay must not be used afterwards: its shards now belong to the
// result.
func (t *smapTx[V]) commit() *smap[V] {
	if !t.dirty() {
		return t.base
	}
	var buf []byte
	s := &smap[V]{shards: t.shards, groups: slices.Clone(t.base.groups), n: t.n}
	for i, sh := range t.shards {
		if t.owned[i] {
			buf = hashShard(sh, t.enc, buf)
		}
	}
	for g := range s.groups {
		if slices.Contains(t.owned[g*groupSize:min((g+1)*groupSize, len(t.owned))], true) {
			s.groups[g] = s.groupHash(g)
		}
	}
	s.root = s.computeRoot()
	t.shards, t.owned = nil, nil
	return s
}

// verify recomputes every leaf, shard hash and the root from scratch and
// reports whether they match the incremental ones (CheckInvariant uses it).
func (s *smap[V]) verify(enc func(dst []byte, v V) []byte) bool {
	n := 0
	for i, sh := range s.shards {
		if len(sh.es) == 0 {
			if sh.hash != emptyShardHash {
				return false
			}
			continue
		}
		if !slices.IsSortedFunc(sh.es, func(a, b entry[V]) int { return strings.Compare(a.k, b.k) }) {
			return false
		}
		c := &shard[V]{es: slices.Clone(sh.es)}
		for j := range c.es {
			if shardOf(c.es[j].k, len(s.shards)) != i || (j > 0 && c.es[j].k == c.es[j-1].k) {
				return false
			}
			c.es[j].ok = false
		}
		hashShard(c, enc, nil)
		if c.hash != sh.hash {
			return false
		}
		n += len(sh.es)
	}
	if n != s.n || len(s.groups) != (len(s.shards)+groupSize-1)/groupSize {
		return false
	}
	for g := range s.groups {
		if s.groupHash(g) != s.groups[g] {
			return false
		}
	}
	return s.computeRoot() == s.root
}
