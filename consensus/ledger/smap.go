package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
	"sync/atomic"
)

// smap is an immutable, sharded, hashed map from string keys to values,
// stored as a two-level tree: a short top-level slice of groups, each a
// slice of groupSize shard pointers. A new version copies only the top
// level, the groups it writes and the shards it writes, and shares
// everything else with the old version, so applying a block costs in
// proportion to the keys it touches, not to the shard count, and the old
// version stays valid (Apply never mutates its input).
//
// Its root hash is sha256 over group hashes, each the sha256 over the hashes
// of the group's groupSize consecutive shards; a shard's hash is sha256 over
// its keys in byte order, each as uvarint(len)||key||leaf, where leaf is the
// sha256 of the value's canonical encoding. Only shards changed by a block
// are re-hashed, only their groups get a new group hash, and only changed
// values get a new leaf.
type smap[V any] struct {
	groups  []*group[V] // shard i is groups[i/groupSize].shards[i%groupSize]
	nShards int
	root    [32]byte // sha256 over the group hashes
	n       int
}

// groupSize shards form a group: the unit of copying and of the group hash.
// It is part of the state hash layout.
const groupSize = 128

// group is a run of groupSize consecutive shards (fewer in the last group).
type group[V any] struct {
	shards []*shard[V]
	hash   [32]byte // sha256 over the shard hashes
	n      int      // keys in the group's shards, so walks skip empty groups
	gen    uint64   // the smapTx that made this copy; only it may write here
}

// shard holds its entries sorted by key: lookups are a short binary search,
// copying a shard is one memmove, and hashing walks it in order.
type shard[V any] struct {
	es   []entry[V]
	hash [32]byte
	gen  uint64 // as group.gen
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

// txGen numbers smapTx overlays. A group or shard whose gen is an
// overlay's own was copied by that overlay and may be written in place;
// every other one is shared with committed versions and is never written.
// Generation 0 (the empty shard of newSmap) belongs to no overlay.
var txGen atomic.Uint64

func newSmap[V any](nShards int) *smap[V] {
	s := &smap[V]{groups: make([]*group[V], (nShards+groupSize-1)/groupSize), nShards: nShards}
	empty := &shard[V]{hash: emptyShardHash}
	// Every full group starts as the same empty group (only the last one
	// may be shorter): immutable, like everything of generation 0.
	var full *group[V]
	for g := range s.groups {
		if n := min(groupSize, nShards-g*groupSize); n < groupSize || full == nil {
			s.groups[g] = emptyGroup(empty, n)
			if n == groupSize {
				full = s.groups[g]
			}
			continue
		}
		s.groups[g] = full
	}
	s.root = computeRoot(s.groups)
	return s
}

// emptyGroup is a group of n shards, all of them empty.
func emptyGroup[V any](empty *shard[V], n int) *group[V] {
	g := &group[V]{shards: make([]*shard[V], n)}
	for i := range g.shards {
		g.shards[i] = empty
	}
	g.hash = g.computeHash()
	return g
}

func (g *group[V]) computeHash() [32]byte {
	h := sha256.New()
	for _, sh := range g.shards {
		h.Write(sh.hash[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

func computeRoot[V any](groups []*group[V]) [32]byte {
	h := sha256.New()
	for _, g := range groups {
		h.Write(g.hash[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

// lookup finds k in the tree groups of nShards shards.
func lookup[V any](groups []*group[V], nShards int, k string) (V, bool) {
	i := shardOf(k, nShards)
	sh := groups[i/groupSize].shards[i%groupSize]
	if j, ok := sh.find(k); ok {
		return sh.es[j].v, true
	}
	var zero V
	return zero, false
}

// walk calls f for every key in shard order, then key order, until f
// returns false.
func walk[V any](groups []*group[V], f func(k string, v V) bool) {
	for _, g := range groups {
		if g.n == 0 {
			continue
		}
		for _, sh := range g.shards {
			for _, e := range sh.es {
				if !f(e.k, e.v) {
					return
				}
			}
		}
	}
}

func (s *smap[V]) get(k string) (V, bool) { return lookup(s.groups, s.nShards, k) }

// Len is the number of keys.
func (s *smap[V]) Len() int { return s.n }

// each calls f for every key in a deterministic order (shard, then key).
func (s *smap[V]) each(f func(k string, v V) bool) { walk(s.groups, f) }

// smapTx is a writable overlay of an smap, used while applying one block.
// It is not safe for concurrent use; distinct overlays of one smap are.
type smapTx[V any] struct {
	base   *smap[V]
	groups []*group[V] // base.groups until the first write, then a copy
	gen    uint64
	copied []int // indices of the groups this overlay copied
	n      int
	enc    func(dst []byte, v V) []byte
}

func (s *smap[V]) begin(enc func(dst []byte, v V) []byte) *smapTx[V] {
	return &smapTx[V]{base: s, groups: s.groups, gen: txGen.Add(1), n: s.n, enc: enc}
}

func (t *smapTx[V]) get(k string) (V, bool) { return lookup(t.groups, t.base.nShards, k) }

// own returns shard i and its group, copying each on its first write in
// this overlay (and the top level on the overlay's first write).
func (t *smapTx[V]) own(i int) (*group[V], *shard[V]) {
	if t.gen == 0 {
		panic("ledger: smapTx used after commit")
	}
	gi, si := i/groupSize, i%groupSize
	g := t.groups[gi]
	if g.gen != t.gen {
		if len(t.copied) == 0 {
			t.groups = slices.Clone(t.groups)
		}
		g = &group[V]{shards: slices.Clone(g.shards), n: g.n, gen: t.gen}
		t.groups[gi] = g
		t.copied = append(t.copied, gi)
	}
	sh := g.shards[si]
	if sh.gen != t.gen {
		sh = &shard[V]{es: slices.Clone(sh.es), gen: t.gen}
		g.shards[si] = sh
	}
	return g, sh
}

func (t *smapTx[V]) set(k string, v V) {
	g, sh := t.own(shardOf(k, t.base.nShards))
	i, ok := sh.find(k)
	if ok {
		sh.es[i].v, sh.es[i].ok = v, false
		return
	}
	t.n++
	g.n++
	sh.es = slices.Insert(sh.es, i, entry[V]{k: k, v: v})
}

func (t *smapTx[V]) del(k string) {
	g, sh := t.own(shardOf(k, t.base.nShards))
	if i, ok := sh.find(k); ok {
		t.n--
		g.n--
		sh.es = slices.Delete(sh.es, i, i+1)
	}
}

// dirty reports whether any shard was written.
func (t *smapTx[V]) dirty() bool { return len(t.copied) > 0 }

// each is smap.each over the overlay.
func (t *smapTx[V]) each(f func(k string, v V) bool) { walk(t.groups, f) }

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

// commit re-hashes the copied shards and groups and returns the new
// immutable version. The overlay must not be used afterwards: its groups
// and shards now belong to the result.
func (t *smapTx[V]) commit() *smap[V] {
	if !t.dirty() {
		t.gen = 0
		return t.base
	}
	var buf []byte
	for _, gi := range t.copied {
		g := t.groups[gi]
		for _, sh := range g.shards {
			if sh.gen == t.gen {
				buf = hashShard(sh, t.enc, buf)
			}
		}
		g.hash = g.computeHash()
	}
	s := &smap[V]{groups: t.groups, nShards: t.base.nShards, root: computeRoot(t.groups), n: t.n}
	t.groups, t.copied, t.gen = nil, nil, 0
	return s
}

// verify recomputes every leaf, shard hash, group hash, key count and the
// root from scratch and reports whether they match the incremental ones
// (CheckInvariant uses it).
func (s *smap[V]) verify(enc func(dst []byte, v V) []byte) bool {
	if len(s.groups) != (s.nShards+groupSize-1)/groupSize {
		return false
	}
	n := 0
	// The hash of a group without keys depends only on its length: computed
	// once per length, from the definition.
	emptyHash := map[int][32]byte{}
	for gi, g := range s.groups {
		if len(g.shards) != min(groupSize, s.nShards-gi*groupSize) {
			return false
		}
		gn := 0
		for si, sh := range g.shards {
			if !sh.verify(gi*groupSize+si, s.nShards, enc) {
				return false
			}
			gn += len(sh.es)
		}
		want, ok := emptyHash[len(g.shards)]
		if gn > 0 || !ok {
			want = g.computeHash()
			if gn == 0 {
				emptyHash[len(g.shards)] = want
			}
		}
		if gn != g.n || want != g.hash {
			return false
		}
		n += gn
	}
	return n == s.n && computeRoot(s.groups) == s.root
}

// verify checks that the shard, number i of nShards, holds only its own
// keys, sorted and unique, and that its hash and leaves are up to date.
func (sh *shard[V]) verify(i, nShards int, enc func(dst []byte, v V) []byte) bool {
	if len(sh.es) == 0 {
		return sh.hash == emptyShardHash
	}
	c := &shard[V]{es: slices.Clone(sh.es)}
	for j := range c.es {
		if shardOf(c.es[j].k, nShards) != i || (j > 0 && c.es[j].k <= c.es[j-1].k) {
			return false
		}
		c.es[j].ok = false
	}
	hashShard(c, enc, nil)
	return c.hash == sh.hash
}
