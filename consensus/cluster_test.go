package consensus_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/storage"
)

const testChain = "chaintest" // as in the internal tests (SameSigned signs with it)

var (
	testLogger   = consensus.TestLogger
	fastTimeouts = consensus.FastTimeouts
	stepOf       = consensus.StepOf
	sameSigned   = consensus.SameSigned
)

// member is one process of a test cluster: a libp2p node on loopback, an
// in-memory badger and the Service.
type member struct {
	key  crypto.PrivKey
	id   string
	node *node.Node
	db   *storage.DB
	kv   consensus.KV
	svc  *consensus.Service

	mu   sync.Mutex // guards sent
	sent []bft.Message
}

type cluster struct {
	t       *testing.T
	ctx     context.Context
	keys    *ledger.Keyring
	genesis *ledger.Genesis
	members []*member
}

// newCluster builds a genesis of nVals validators among nKeys funded keys.
func newCluster(t *testing.T, seed uint64, nKeys, nVals int) *cluster {
	t.Helper()
	keys := ledger.NewKeyring(rand.New(rand.NewPCG(seed, seed)), nKeys)
	g := keys.TestGenesis(testChain, nVals, 1_000_000_000, 1_000_000)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &cluster{t: t, ctx: ctx, keys: keys, genesis: g}
}

// start starts the member for key index i, connected to every running one.
func (c *cluster) start(i int) *member {
	t := c.t
	t.Helper()
	id := c.keys.IDs[i]
	m := &member{key: c.keys.Key(id), id: id}
	cfg := node.Config{
		Network: "chaintest", ChainID: testChain,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableQUIC: true,
		BootstrapTimeout: node.Duration(60 * time.Second),
		Logger:           testLogger(),
	}
	n, err := node.New(c.ctx, cfg, m.key)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	m.node = n
	t.Cleanup(func() { _ = n.Close() })
	db, err := storage.Open("", storage.WithInMemory(), storage.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m.db, m.kv = db, consensus.NewKV(db)
	for _, o := range c.members {
		if o != nil && o.node != nil {
			if err := n.Connect(c.ctx, o.node.AddrInfo()); err != nil {
				t.Fatalf("connect: %v", err)
			}
		}
	}
	c.startService(m)
	c.members = append(c.members, m)
	return m
}

func (c *cluster) startService(m *member) {
	c.t.Helper()
	svc, err := consensus.New(consensus.Config{Genesis: c.genesis, Key: m.key, KV: m.kv, Network: node.ChainNetwork(m.node),
		Timeouts: fastTimeouts, CommitWait: 50 * time.Millisecond, SyncInterval: 200 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		c.t.Fatalf("consensus.New: %v", err)
	}
	consensus.SetOnSend(svc, func(msg bft.Message) {
		m.mu.Lock()
		m.sent = append(m.sent, msg)
		m.mu.Unlock()
	})
	if err := svc.Start(); err != nil {
		c.t.Fatalf("Start: %v", err)
	}
	m.svc = svc
	c.t.Cleanup(func() { _ = svc.Close() })
}

// waitHeight waits until every given member committed height h.
func (c *cluster) waitHeight(h uint64, d time.Duration, ms ...*member) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done := true
		for _, m := range ms {
			if err := m.svc.Err(); err != nil {
				c.t.Fatalf("%s stopped: %v", m.id, err)
			}
			if m.svc.Height() < h {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			var hs []uint64
			for _, m := range ms {
				hs = append(hs, m.svc.Height())
			}
			c.t.Fatalf("timed out waiting for height %d: heights %v", h, hs)
		}
		<-tick.C
	}
}

// checkSameChain compares every member's blocks up to h and checks the
// supply invariant of the final states.
func (c *cluster) checkSameChain(h uint64, ms ...*member) {
	c.t.Helper()
	for height := uint64(1); height <= h; height++ {
		var want []byte
		for i, m := range ms {
			blk, _, err := m.svc.Block(height)
			if err != nil {
				c.t.Fatalf("%s block %d: %v", m.id, height, err)
			}
			data, _ := blk.Encode()
			if i == 0 {
				want = data
			} else if !bytes.Equal(data, want) {
				c.t.Fatalf("members 0 and %d differ at height %d", i, height)
			}
		}
	}
	for _, m := range ms {
		if err := ledger.CheckInvariant(m.svc.State()); err != nil {
			c.t.Fatalf("%s: %v", m.id, err)
		}
	}
}

// checkNoDoubleSign fails if m sent two different messages for one
// (height, round, type) slot.
func checkNoDoubleSign(t *testing.T, m *member) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bft.Message{}
	for _, msg := range m.sent {
		if msg.Author() != m.id {
			continue // a rebroadcast proof-of-lock vote of another validator
		}
		key := fmt.Sprintf("%d/%d/%d", msg.Height(), msg.Round(), stepOf(msg))
		old, ok := seen[key]
		if !ok {
			seen[key] = msg
			continue
		}
		if !sameSigned(old, msg) {
			t.Fatalf("%s double-signed %s: %s vs %s", m.id, key, old, msg)
		}
	}
}

// transfer signs a transfer of amount from key index from to index to.
func (c *cluster) transfer(from, to int, nonce, amount uint64) []byte {
	c.t.Helper()
	tx, err := ledger.NewTx(ledger.TxTransfer, nonce, 1, ledger.Transfer{To: c.keys.IDs[to], Amount: amount})
	if err != nil {
		c.t.Fatal(err)
	}
	raw, err := ledger.SignTx(c.keys.Key(c.keys.IDs[from]), testChain, time.Now(), tx)
	if err != nil {
		c.t.Fatal(err)
	}
	return raw
}

func TestValidatorsCommitTransfers(t *testing.T) {
	c := newCluster(t, 1, 6, 4)
	for i := range 4 {
		c.start(i)
	}
	vals := c.members
	c.waitHeight(2, 30*time.Second, vals...)
	// Txs from two senders, submitted at different validators.
	var hashes [][32]byte
	for n := range uint64(5) {
		for s, from := range []int{4, 5} {
			raw := c.transfer(from, s, n, 100+n)
			h, err := vals[int(n)%4].svc.Submit(c.ctx, raw)
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			hashes = append(hashes, h)
		}
	}
	// The tx index is written before the new state is published: wait for
	// the height of the last tx too, not only for its index entry.
	var last uint64
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hashes {
		for {
			if th, err := vals[0].svc.TxHeight(h); err == nil {
				last = max(last, th)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tx %x not committed; height %d, mempool %d", h[:4], vals[0].svc.Height(), vals[0].svc.Mempool().Len())
			}
			<-time.After(20 * time.Millisecond)
		}
	}
	top := max(vals[0].svc.Height(), last)
	c.waitHeight(top, 30*time.Second, vals...)
	c.checkSameChain(top, vals...)
	acct, _ := vals[1].svc.State().Account(c.keys.IDs[4])
	if acct.Nonce != 5 {
		t.Fatalf("sender nonce %d, want 5", acct.Nonce)
	}
	for _, m := range vals {
		checkNoDoubleSign(t, m)
	}
}

// e2e is set by `make e2e` (GPUNODE_E2E=1): the long variants.
var e2e = os.Getenv("GPUNODE_E2E") != ""

func TestFollowerCatchesUpByBlockSync(t *testing.T) {
	late := uint64(6)
	if e2e {
		late = 1000
	}
	c := newCluster(t, 2, 5, 4)
	for i := range 4 {
		c.start(i)
	}
	vals := c.members[:4]
	c.waitHeight(late, time.Duration(late)*time.Second, vals...)
	f := c.start(4) // not a validator, started late
	began := time.Now()
	top := vals[0].svc.Height() + 2
	c.waitHeight(top, 60*time.Second+time.Duration(top)*100*time.Millisecond, append(vals, f)...)
	t.Logf("follower caught up %d heights in %v", top, time.Since(began))
	c.checkSameChain(top, append(vals, f)...)
	f.mu.Lock()
	n := len(f.sent)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("follower sent %d consensus messages", n)
	}
}

func TestRestartedValidatorDoesNotDoubleSign(t *testing.T) {
	c := newCluster(t, 3, 4, 4)
	for i := range 4 {
		c.start(i)
	}
	vals := c.members
	c.waitHeight(3, 30*time.Second, vals...)
	// Restart one validator several times at arbitrary points of a height.
	m := vals[2]
	restarts := 2
	if e2e {
		restarts = 5
	}
	for range restarts {
		if err := m.svc.Close(); err != nil {
			t.Fatal(err)
		}
		c.startService(m)
		c.waitHeight(m.svc.Height()+2, 30*time.Second, vals...)
	}
	top := vals[0].svc.Height()
	c.waitHeight(top, 30*time.Second, vals...)
	c.checkSameChain(top, vals...)
	for _, v := range vals {
		checkNoDoubleSign(t, v)
		if n := consensus.PendingEvidence(v.svc); n != 0 {
			t.Fatalf("%s holds %d evidence items", v.id, n)
		}
	}
}
