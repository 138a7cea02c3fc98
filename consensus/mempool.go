package consensus

import (
	"fmt"
	"slices"
	"sync"

	"github.com/gpunode/gpunode/consensus/ledger"
)

// Mempool holds verified txs waiting for a block, per sender in nonce
// order. A tx is admitted when its signature verifies (through the node's
// caching txVerifier, so block execution does not verify it again), its fee
// is at least MinFee and payable from the sender's balance, and its nonce is
// not below the sender's account nonce nor too far above it. It is bounded;
// after each commit the included txs leave and the rest are re-checked
// against the new state. Safe for concurrent use: the topic validator adds
// from gossipsub's goroutines.
type Mempool struct {
	chainID  string
	verifier ledger.Verifier
	max      int
	maxGap   uint64

	mu      sync.Mutex // guards the fields below
	state   *ledger.State
	senders map[string]*senderQueue
	order   []string // senders by first arrival, for fair reaping
	byHash  map[[32]byte]*mtx
	bytes   int // total size of the held txs
}

type mtx struct {
	raw    []byte
	hash   [32]byte
	sender string
	nonce  uint64
	fee    uint64
}

type senderQueue struct{ txs map[uint64]*mtx }

func newMempool(chainID string, v ledger.Verifier, st *ledger.State, max int) *Mempool {
	return &Mempool{chainID: chainID, verifier: v, max: max, maxGap: 1024, state: st,
		senders: map[string]*senderQueue{}, byHash: map[[32]byte]*mtx{}}
}

// Len is the number of txs held.
func (m *Mempool) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byHash)
}

// Full reports whether the held txs would fill a block of maxTxs txs or
// maxBytes bytes.
func (m *Mempool) Full(maxTxs, maxBytes int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byHash) >= maxTxs || m.bytes >= maxBytes
}

// Has reports whether the tx with hash is held.
func (m *Mempool) Has(hash [32]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byHash[hash] != nil
}

// NextNonce is the nonce the sender's next tx should carry: its account
// nonce plus the consecutive txs already waiting.
func (m *Mempool) NextNonce(sender string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, _ := m.state.Account(sender)
	n := a.Nonce
	if q := m.senders[sender]; q != nil {
		for q.txs[n] != nil {
			n++
		}
	}
	return n
}

// Add verifies and admits raw. It returns the tx's hash; ErrKnownTx if it
// is already held (not a failure of the sender).
func (m *Mempool) Add(raw []byte) ([32]byte, error) {
	vt, err := m.verifier.VerifyTx(m.chainID, raw)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: %w", ErrTxRejected, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byHash[vt.Hash] != nil {
		return vt.Hash, ErrKnownTx
	}
	if err := m.check(vt.Sender, vt.Tx.Nonce, vt.Tx.Fee); err != nil {
		return vt.Hash, err
	}
	if len(m.byHash) >= m.max {
		return vt.Hash, ErrMempoolFull
	}
	q := m.senders[vt.Sender]
	if q == nil {
		q = &senderQueue{txs: map[uint64]*mtx{}}
		m.senders[vt.Sender] = q
		m.order = append(m.order, vt.Sender)
	}
	if old := q.txs[vt.Tx.Nonce]; old != nil {
		return vt.Hash, fmt.Errorf("%w: nonce %d of %s already waiting", ErrTxRejected, vt.Tx.Nonce, vt.Sender)
	}
	t := &mtx{raw: raw, hash: vt.Hash, sender: vt.Sender, nonce: vt.Tx.Nonce, fee: vt.Tx.Fee}
	q.txs[t.nonce] = t
	m.byHash[t.hash] = t
	m.bytes += len(raw)
	return t.hash, nil
}

// check is the admission rule against the current state; mu is held.
func (m *Mempool) check(sender string, nonce, fee uint64) error {
	p := m.state.Params()
	if fee < p.MinFee {
		return fmt.Errorf("%w: fee %d below minimum %d", ErrTxRejected, fee, p.MinFee)
	}
	a, _ := m.state.Account(sender)
	if nonce < a.Nonce {
		return fmt.Errorf("%w: nonce %d already used (account nonce %d)", ErrTxRejected, nonce, a.Nonce)
	}
	if nonce-a.Nonce > m.maxGap {
		return fmt.Errorf("%w: nonce %d too far ahead of %d", ErrTxRejected, nonce, a.Nonce)
	}
	if a.Balance < fee {
		return fmt.Errorf("%w: balance %d cannot pay fee %d", ErrTxRejected, a.Balance, fee)
	}
	return nil
}

// Reap returns up to maxTxs txs totalling at most maxBytes, each sender's
// in consecutive nonce order from its account nonce, senders round-robin by
// arrival.
func (m *Mempool) Reap(maxTxs, maxBytes int) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]uint64, len(m.order))
	for _, s := range m.order {
		a, _ := m.state.Account(s)
		next[s] = a.Nonce
	}
	var out [][]byte
	size := 0
	for progress := true; progress && len(out) < maxTxs; {
		progress = false
		for _, s := range m.order {
			if len(out) >= maxTxs {
				break
			}
			t := m.senders[s].txs[next[s]]
			if t == nil || size+len(t.raw) > maxBytes {
				continue
			}
			out = append(out, t.raw)
			size += len(t.raw)
			next[s]++
			progress = true
		}
	}
	return out
}

// Update moves the pool to st after a commit: txs of the block (and any
// other tx whose nonce is now used) leave, the rest are re-checked.
func (m *Mempool) Update(st *ledger.State, included [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = st
	for _, raw := range included {
		if t := m.byHash[ledger.TxHash(raw)]; t != nil {
			m.remove(t)
		}
	}
	for _, t := range m.byHash {
		if m.check(t.sender, t.nonce, t.fee) != nil {
			m.remove(t)
		}
	}
	m.order = slices.DeleteFunc(m.order, func(s string) bool { return m.senders[s] == nil })
}

// Remove drops the given txs (e.g. ones the ledger refused in Propose).
func (m *Mempool) Remove(raws [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, raw := range raws {
		if t := m.byHash[ledger.TxHash(raw)]; t != nil {
			m.remove(t)
		}
	}
	m.order = slices.DeleteFunc(m.order, func(s string) bool { return m.senders[s] == nil })
}

// remove drops t; mu is held. The sender leaves order in the caller.
func (m *Mempool) remove(t *mtx) {
	delete(m.byHash, t.hash)
	m.bytes -= len(t.raw)
	q := m.senders[t.sender]
	if q == nil {
		return
	}
	delete(q.txs, t.nonce)
	if len(q.txs) == 0 {
		delete(m.senders, t.sender)
	}
}
