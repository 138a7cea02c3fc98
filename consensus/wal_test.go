package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/storage"
)

// memKV is an in-memory KV for engine tests (the Service tests use badger).
type memKV struct {
	mu sync.Mutex // guards m
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(key []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (k *memKV) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	k.mu.Lock()
	var keys []string
	for key := range k.m {
		if strings.HasPrefix(key, string(prefix)) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, key := range keys {
		vals[i] = bytes.Clone(k.m[key])
	}
	k.mu.Unlock()
	for i, key := range keys {
		if err := fn([]byte(key), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (k *memKV) Write(puts []KVPair, deletes [][]byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range puts {
		k.m[string(p.Key)] = bytes.Clone(p.Val)
	}
	for _, d := range deletes {
		delete(k.m, string(d))
	}
	return nil
}

func (k *memKV) Sync() error { return nil }

var errInjected = errors.New("injected fault")

// faultKV fails its failAt-th durable operation (each Write and each Sync,
// counted from 0), like pebble's errorfs fault loop. With torn set, a
// failing single-record write leaves half of its value behind, as a crash
// in the middle of writing it would.
type faultKV struct {
	KV
	failAt int
	torn   bool
	n      int
	fired  bool
}

func (f *faultKV) hit() bool {
	n := f.n
	f.n++
	if n == f.failAt {
		f.fired = true
		return true
	}
	return false
}

func (f *faultKV) Write(puts []KVPair, deletes [][]byte) error {
	if f.hit() {
		if f.torn && len(puts) == 1 && len(deletes) == 0 {
			p := puts[0]
			_ = f.KV.Write([]KVPair{{Key: p.Key, Val: p.Val[:len(p.Val)/2]}}, nil)
		}
		return fmt.Errorf("%w: write %d", errInjected, f.n-1)
	}
	return f.KV.Write(puts, deletes)
}

func (f *faultKV) Sync() error {
	if f.hit() {
		return fmt.Errorf("%w: sync %d", errInjected, f.n-1)
	}
	return f.KV.Sync()
}

// driver plays the three other validators of a 4-validator chain against
// the engine of validator self, message by message.
type driver struct {
	t    *testing.T
	keys *ledger.Keyring
	g    *ledger.Genesis
	self string
	sent []bft.Message // every message the engine handed out for sending
}

func newDriver(t *testing.T) *driver { return newDriverSeed(t, 7) }

func newDriverSeed(t *testing.T, seed uint64) *driver {
	keys := ledger.NewKeyring(rand.New(rand.NewPCG(seed, seed)), 4)
	return &driver{t: t, keys: keys, g: keys.TestGenesis(testChain, 4, 1_000_000_000, 1_000_000), self: keys.IDs[0]}
}

func (d *driver) open(kv KV) (*engine, error) {
	e, out, err := newEngine(engineConfig{
		key: d.keys.Key(d.self), self: d.self, genesis: d.g, kv: kv, timeouts: fastTimeouts,
		now: func() time.Time { return time.UnixMilli(1000) }, log: testLogger(), mempoolSize: 100, maxBlockBytes: 1 << 20,
	})
	if err != nil {
		return nil, err
	}
	d.record(out)
	return e, nil
}

func (d *driver) record(out *effects) {
	if out != nil {
		d.sent = append(d.sent, out.send...)
	}
}

func (d *driver) sign(id string, msg []byte) []byte {
	sig, err := d.keys.Key(id).Sign(msg)
	if err != nil {
		d.t.Fatal(err)
	}
	return sig
}

// proposal builds and signs proposer's block for the engine's next height;
// variant changes the header time, so variants are different blocks.
func (d *driver) proposal(e *engine, proposer string, variant int64) bft.Message {
	blk, _, _, _, err := e.led.Propose(e.state, ledger.Header{ChainID: testChain, Proposer: proposer, Time: 5000 + variant}, nil, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	data, _ := blk.Encode()
	p := &bft.Proposal{Height: blk.Header.Height, Round: 0, POLRound: -1, Value: bft.Value{Hash: bft.Hash(blk.Hash()), Data: data}, Proposer: proposer}
	p.Signature = d.sign(proposer, bft.ProposalSignBytes(testChain, p))
	return bft.Message{Proposal: p}
}

func (d *driver) vote(id string, typ bft.VoteType, h uint64, hash bft.Hash) bft.Message {
	v := &bft.Vote{Type: typ, Height: h, Round: 0, BlockHash: hash, Validator: id}
	v.Signature = d.sign(id, bft.VoteSignBytes(testChain, v))
	return bft.Message{Vote: v}
}

// run drives e until it committed target. At every height the proposer
// (when it is not the engine) equivocates: the first life sees proposal Y
// before X, later lives X before Y, so an engine that forgot its prevote
// would sign a second, different one. The others vote for X.
func (d *driver) run(e *engine, target uint64, life int) error {
	for e.state.Height() < target {
		// The driver's equivocations are the means, not the subject: keep
		// them out of the engine's blocks so no one is jailed and the
		// set stays at four.
		e.evpool = nil
		if e.waiting {
			out, err := e.startNext()
			if err != nil {
				return err
			}
			d.record(out)
		}
		h := e.height()
		vals, err := e.valset(h)
		if err != nil {
			return err
		}
		proposer := vals.Proposer(h, 0)
		var feed []bft.Message
		var x bft.Hash
		if proposer == d.self {
			for _, m := range e.own {
				if m.Proposal != nil && m.Proposal.Round == 0 {
					x = m.Proposal.Value.Hash
				}
			}
			if x.IsZero() {
				d.t.Fatalf("height %d: the engine is the proposer but proposed nothing", h)
			}
		} else {
			px, py := d.proposal(e, proposer, 0), d.proposal(e, proposer, 1)
			x = px.Proposal.Value.Hash
			feed = []bft.Message{py, px}
			if life > 0 {
				feed = []bft.Message{px, py}
			}
		}
		var others []string
		for _, v := range vals.Validators() {
			if v.ID != d.self {
				others = append(others, v.ID)
			}
		}
		for _, o := range others {
			feed = append(feed, d.vote(o, bft.Prevote, h, x))
		}
		for _, o := range others {
			feed = append(feed, d.vote(o, bft.Precommit, h, x))
		}
		for _, m := range feed {
			out, err := e.step(m)
			if out == nil {
				return err
			}
			d.record(out)
		}
		if e.state.Height() < h {
			d.t.Fatalf("height %d not committed after a full round (state %s)", h, e.machine.State())
		}
	}
	return nil
}

func (d *driver) checkNoDoubleSign(context string) {
	d.t.Helper()
	seen := map[string]bft.Message{}
	for _, m := range d.sent {
		key := fmt.Sprintf("%d/%d/%d", m.Height(), m.Round(), stepOf(m))
		if old, ok := seen[key]; ok && !sameSigned(old, m) {
			d.t.Fatalf("%s: double sign at %s: %s vs %s", context, key, old, m)
		}
		seen[key] = m
	}
}

// TestWALFaultLoop is acceptance 3: a crash at every durable write (each
// WAL append, each sync, each block commit), lost or torn, never leads to a
// double sign after restart, and the restarted node still commits.
func TestWALFaultLoop(t *testing.T) {
	const target = 4
	// A clean run counts the durable operations.
	d := newDriver(t)
	clean := &faultKV{KV: newMemKV(), failAt: -1}
	e, err := d.open(clean)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.run(e, target, 0); err != nil {
		t.Fatal(err)
	}
	d.checkNoDoubleSign("clean run")
	proposed := 0
	for _, m := range d.sent {
		if m.Proposal != nil {
			proposed++
		}
	}
	if proposed == 0 {
		t.Fatalf("the engine proposed at none of %d heights: the loop would not cover its proposals", target)
	}
	total := clean.n
	if total < 3*target {
		t.Fatalf("only %d durable operations in %d heights", total, target)
	}
	for _, torn := range []bool{false, true} {
		for i := 0; i < total; i++ {
			name := fmt.Sprintf("fail op %d (torn %v)", i, torn)
			d := newDriver(t)
			base := newMemKV()
			fk := &faultKV{KV: base, failAt: i, torn: torn}
			e, err := d.open(fk)
			if err == nil {
				err = d.run(e, target, 0)
			}
			if !fk.fired {
				t.Fatalf("%s: fault never fired (err %v)", name, err)
			}
			if !errors.Is(err, errInjected) {
				t.Fatalf("%s: got %v, want the injected fault", name, err)
			}
			// Restart on what reached the store.
			e2, err := d.open(base)
			if err != nil {
				t.Fatalf("%s: restart: %v", name, err)
			}
			if err := d.run(e2, target, 1); err != nil {
				t.Fatalf("%s: after restart: %v", name, err)
			}
			d.checkNoDoubleSign(name)
		}
	}
}

// walRecords returns the WAL keys of kv in order.
func walRecords(t *testing.T, kv KV) [][]byte {
	var keys [][]byte
	if err := kv.Iterate(prefixWAL, func(k, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// midHeight leaves the engine's WAL holding its prevote and precommit of a
// height that is not committed.
func midHeight(t *testing.T) (*driver, *memKV) {
	d := newDriver(t)
	kv := newMemKV()
	e, err := d.open(kv)
	if err != nil {
		t.Fatal(err)
	}
	// Commit height 1 and then find a height the engine does not propose.
	if err := d.run(e, 1, 0); err != nil {
		t.Fatal(err)
	}
	for {
		if out, err := e.startNext(); err != nil {
			t.Fatal(err)
		} else {
			d.record(out)
		}
		h := e.height()
		vals, _ := e.valset(h)
		p := vals.Proposer(h, 0)
		if p == d.self {
			if err := d.run(e, h, 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		px := d.proposal(e, p, 0)
		feed := []bft.Message{px}
		for _, v := range vals.Validators() {
			if v.ID != d.self {
				feed = append(feed, d.vote(v.ID, bft.Prevote, h, px.Proposal.Value.Hash))
			}
		}
		for _, m := range feed {
			if _, err := e.step(m); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(walRecords(t, kv)); n < 2 {
			t.Fatalf("%d WAL records mid-height, want prevote and precommit", n)
		}
		return d, kv
	}
}

func TestWALCorruptMiddleStopsStartup(t *testing.T) {
	d, kv := midHeight(t)
	keys := walRecords(t, kv)
	v, _ := kv.Get(keys[0])
	v[len(v)-1] ^= 0xff
	_ = kv.Write([]KVPair{{Key: keys[0], Val: v}}, nil)
	before := slices.Clone(walRecords(t, kv))
	_, err := d.open(kv)
	if !errors.Is(err, ErrCorruptWAL) {
		t.Fatalf("start-up with a corrupt middle record: %v, want ErrCorruptWAL", err)
	}
	if !strings.Contains(err.Error(), "record 1 of") {
		t.Fatalf("error does not say which record: %v", err)
	}
	if after := walRecords(t, kv); len(after) != len(before) {
		t.Fatalf("failed start-up changed the WAL: %d records, was %d", len(after), len(before))
	}
}

func TestWALTornLastRecordRepaired(t *testing.T) {
	d, kv := midHeight(t)
	keys := walRecords(t, kv)
	last := keys[len(keys)-1]
	v, _ := kv.Get(last)
	_ = kv.Write([]KVPair{{Key: last, Val: v[:len(v)-3]}}, nil)
	e, err := d.open(kv)
	if err != nil {
		t.Fatalf("start-up with a torn last record: %v", err)
	}
	if n := len(walRecords(t, kv)); n != len(keys)-1 {
		t.Fatalf("%d records after repair, want %d", n, len(keys)-1)
	}
	// The last record is the precommit; before it, the prevote and the
	// proposal it locked on (not this node's message).
	if len(e.own) != len(keys)-2 {
		t.Fatalf("restored %d own messages, want %d", len(e.own), len(keys)-2)
	}
}

// The proposal a node locks on is in its WAL before its precommit goes
// out; restarted, the node still holds that block and, proposer in a later
// round, re-proposes it (POLRound 0) instead of a new block, which locked
// validators could not accept.
func TestWALKeepsLockedProposal(t *testing.T) {
	d, kv := midHeight(t)
	var locked *bft.Proposal
	for _, k := range walRecords(t, kv) {
		v, _ := kv.Get(k)
		rec, err := decodeWALRecord(v)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Message.Proposal != nil && rec.Message.Author() != d.self {
			locked = rec.Message.Proposal
		}
	}
	if locked == nil || len(locked.Value.Data) == 0 {
		t.Fatal("the WAL does not hold the proposal this node locked on")
	}
	d.sent = nil
	e, err := d.open(kv)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.machine.State(); st.LockedHash != locked.Value.Hash {
		t.Fatalf("after restart locked on %x, want %x", st.LockedHash, locked.Value.Hash)
	}
	h := e.height()
	vals, _ := e.valset(h)
	var others []string
	for _, v := range vals.Validators() {
		if v.ID != d.self {
			others = append(others, v.ID)
		}
	}
	vote := func(id string, typ bft.VoteType, r int32) bft.Message {
		v := &bft.Vote{Type: typ, Height: h, Round: r, Validator: id} // nil vote
		v.Signature = d.sign(id, bft.VoteSignBytes(testChain, v))
		return bft.Message{Vote: v}
	}
	// Rounds fail (the others vote nil) until this node proposes.
	for r := int32(0); r < int32(2*len(vals.Validators())); r++ {
		for _, m := range d.sent {
			if p := m.Proposal; p != nil && p.Proposer == d.self {
				if p.Value.Hash != locked.Value.Hash || !bytes.Equal(p.Value.Data, locked.Value.Data) || p.POLRound != 0 {
					t.Fatalf("round %d: proposed %x (POL %d, %d bytes), want the locked block %x with POL 0", p.Round, p.Value.Hash, p.POLRound, len(p.Value.Data), locked.Value.Hash)
				}
				return
			}
		}
		var timeouts []bft.Timeout
		for _, typ := range []bft.VoteType{bft.Prevote, bft.Precommit} {
			for _, o := range others {
				out, err := e.step(vote(o, typ, r))
				if out == nil {
					t.Fatal(err)
				}
				d.record(out)
				timeouts = append(timeouts, out.timeouts...)
			}
		}
		for _, to := range timeouts {
			if to.Round == r && to.Step == bft.StepPrecommit {
				out, err := e.timeout(to)
				if out == nil {
					t.Fatal(err)
				}
				d.record(out)
			}
		}
	}
	t.Fatal("this node never proposed after its restart")
}
