package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
)

// engine is the Service's single-threaded core: the bft machine, the
// ledger state, the WAL and the block store, without goroutines, clock or
// network. Its methods return the effects (messages to send, timeouts to
// schedule, committed blocks) for the Service to carry out. A storage error
// is returned as is: the Service then stops, which is the crash the WAL is
// designed for (nothing unpersisted was sent).
type engine struct {
	chainID string
	self    string
	led     *ledger.Ledger
	genesis *ledger.Genesis
	kv      KV
	store   blockStore
	wal     *wal
	machine *bft.Machine
	pool    *Mempool
	now     func() time.Time
	log     *slog.Logger

	maxBlockBytes int
	maxEvidence   int

	state    *ledger.State
	vals     map[uint64]*bft.ValidatorSet // validator sets by height, near the tip
	pending  map[bft.Hash]*applied        // values proposed or validated at the current height
	own      []bft.Message                // own messages of the current height, for rebroadcast
	evpool   []ledger.Evidence
	evSeen   map[[32]byte]bool
	waiting  bool        // the machine decided; the next height waits for startNext
	verifier *txVerifier // the ledger's and the mempool's
}

// applied is a block executed on the current state.
type applied struct {
	blk    *ledger.Block
	data   []byte
	state  *ledger.State
	events []ledger.Event
}

// Committed is a block this node committed, with what it did: the Service's
// commit event.
type Committed struct {
	Height      uint64
	Hash        [32]byte
	Block       *ledger.Block
	Certificate bft.Certificate
	Events      []ledger.Event
	State       *ledger.State // the state after the block
}

// effects is what the caller must do after an engine call.
type effects struct {
	send      []bft.Message
	timeouts  []bft.Timeout
	committed []*Committed
}

type engineConfig struct {
	key           crypto.PrivKey // nil: follower
	self          string
	genesis       *ledger.Genesis
	kv            KV
	timeouts      bft.TimeoutConfig
	now           func() time.Time
	log           *slog.Logger
	mempoolSize   int
	maxBlockBytes int
	ledgerOptions []ledger.Option
}

// newEngine rebuilds the state from genesis and the stored blocks, reads
// the WAL and starts the machine at the next height with the node's own
// messages restored.
func newEngine(cfg engineConfig) (*engine, *effects, error) {
	verifier := newTxVerifier(cfg.genesis.ChainID, 1<<17)
	opts := append([]ledger.Option{ledger.WithEvidenceVerifier(EvidenceVerifier{}),
		ledger.WithVerifier(verifier)}, cfg.ledgerOptions...)
	led, err := ledger.New(opts...)
	if err != nil {
		return nil, nil, err
	}
	st, err := ledger.InitialState(cfg.genesis)
	if err != nil {
		return nil, nil, err
	}
	e := &engine{
		chainID: cfg.genesis.ChainID, self: cfg.self, led: led, genesis: cfg.genesis,
		kv: cfg.kv, store: blockStore{cfg.kv}, now: cfg.now, log: cfg.log,
		maxBlockBytes: cfg.maxBlockBytes, maxEvidence: 1024,
		state: st, vals: map[uint64]*bft.ValidatorSet{}, pending: map[bft.Hash]*applied{},
		evSeen: map[[32]byte]bool{}, verifier: verifier,
	}
	top, err := e.store.height()
	if err != nil {
		return nil, nil, err
	}
	for h := uint64(1); h <= top; h++ {
		sb, blk, err := e.store.get(h)
		if err != nil {
			return nil, nil, err
		}
		if err := e.checkCert(blk, &sb.Certificate); err != nil {
			return nil, nil, fmt.Errorf("%w: stored block %d: %w", ErrCorruptStore, h, err)
		}
		ns, evs, err := led.Apply(e.state, blk)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: stored block %d: %w", ErrCorruptStore, h, err)
		}
		e.setState(ns)
		if h == top {
			// The index of the top block may not have been written
			// before a crash.
			if err := e.store.indexTxs(blk, evs); err != nil {
				return nil, nil, err
			}
		}
	}
	e.pool = newMempool(e.chainID, led.Verifier(), e.state, cfg.mempoolSize)

	w, loaded, err := openWAL(cfg.kv)
	if err != nil {
		return nil, nil, err
	}
	e.wal = w
	if loaded.repaired {
		e.log.Warn("consensus: repaired a torn last WAL record")
	}
	next := e.state.Height() + 1
	var signed, locked []bft.Message
	var stale [][]byte
	for i, r := range loaded.records {
		switch {
		case r.Height < next:
			stale = append(stale, w.keys[i])
		case r.Height == next:
			if r.Message.Author() != cfg.self {
				// Only a proposal this node locked on (Ready.Persist) is
				// another's message in the WAL.
				if r.Message.Proposal == nil {
					return nil, nil, fmt.Errorf("%w: record of %s, this node is %s", ErrCorruptWAL, r.Message.Author(), cfg.self)
				}
				locked = append(locked, r.Message)
				continue
			}
			signed = append(signed, r.Message)
		default:
			return nil, nil, fmt.Errorf("%w: record for height %d but the block store ends at %d", ErrCorruptWAL, r.Height, next-1)
		}
	}
	if len(stale) > 0 {
		if err := cfg.kv.Write(nil, stale); err != nil {
			return nil, nil, err
		}
		w.pruned(next - 1)
	}
	var signer bft.Signer
	if cfg.key != nil {
		signer = cfg.key
	}
	id := cfg.self
	if cfg.key == nil {
		id = ""
	}
	e.machine, err = bft.New(bft.Config{ChainID: e.chainID, ID: id, Signer: signer, App: e, Timeouts: cfg.timeouts})
	if err != nil {
		return nil, nil, err
	}
	vals, err := e.valset(next)
	if err != nil {
		return nil, nil, err
	}
	if err := e.machine.StartHeight(next, vals, append(slices.Clip(locked), signed...)); err != nil {
		return nil, nil, fmt.Errorf("consensus: restore height %d: %w", next, err)
	}
	e.own = signed
	var out effects
	if err := e.drain(&out); err != nil {
		return nil, nil, err
	}
	return e, &out, nil
}

func (e *engine) setState(st *ledger.State) {
	e.state = st
	for h := range e.vals {
		if h+4 < st.Height() {
			delete(e.vals, h)
		}
	}
}

// valset returns the bft validator set of height (known up to the state's
// height + 2).
func (e *engine) valset(height uint64) (*bft.ValidatorSet, error) {
	if vs := e.vals[height]; vs != nil {
		return vs, nil
	}
	lv, err := ledger.ValidatorSet(e.state, height)
	if err != nil {
		return nil, err
	}
	vs, err := toBFTSet(lv)
	if err != nil {
		return nil, err
	}
	e.vals[height] = vs
	return vs, nil
}

// backlog reports whether the mempool holds at least a full block.
func (e *engine) backlog() bool {
	return e.pool.Full(int(e.state.Params().MaxBlockTxs), e.maxBlockBytes)
}

// height is the height being decided.
func (e *engine) height() uint64 { return e.state.Height() + 1 }

// step feeds one verified message.
func (e *engine) step(m bft.Message) (*effects, error) {
	var out effects
	err := e.machine.Step(m)
	if derr := e.drain(&out); derr != nil {
		return nil, derr
	}
	return &out, err
}

// timeout feeds a fired timeout.
func (e *engine) timeout(t bft.Timeout) (*effects, error) {
	var out effects
	e.machine.Timeout(t)
	if err := e.drain(&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Every engine call returns nil effects with an error when the store
// failed: the caller must stop (see engine). A non-nil effects with an
// error is a rejected input, for logging.

// startNext starts the height after the last commit.
func (e *engine) startNext() (*effects, error) {
	var out effects
	if !e.waiting {
		return &out, nil
	}
	e.waiting = false
	vals, err := e.valset(e.height())
	if err != nil {
		return nil, err
	}
	if err := e.machine.StartHeight(e.height(), vals, nil); err != nil {
		return nil, err
	}
	if err := e.drain(&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// drain carries out the machine's Ready: own messages go to the WAL (durably)
// before they are handed out for sending.
func (e *engine) drain(out *effects) error {
	for e.machine.HasReady() {
		rd := e.machine.Ready()
		// The proposal this node locks on, durable before the precommit
		// that names it is sent: after a restart the machine needs the
		// value itself to re-propose it (bft.Ready.Persist).
		for _, m := range rd.Persist {
			rec := &walRecord{Height: m.Height(), Round: m.Round(), Step: stepOf(m), Message: m}
			if err := e.wal.append(rec); err != nil {
				return err
			}
		}
		for _, m := range rd.Messages {
			rec := &walRecord{Height: m.Height(), Round: m.Round(), Step: stepOf(m), Message: m}
			if err := e.wal.append(rec); err != nil {
				return err
			}
			e.own = append(e.own, m)
			out.send = append(out.send, m)
		}
		out.timeouts = append(out.timeouts, rd.Timeouts...)
		for _, ev := range rd.Evidence {
			e.addEvidence(ev)
		}
		for _, err := range rd.Errors {
			e.log.Warn("consensus: machine", "err", err)
		}
		if rd.Commit != nil && rd.Commit.Height == e.height() {
			// (A lower height was already committed from an announcement
			// or block sync while the machine was still deciding it.)
			c, err := e.commitValue(rd.Commit.Value, rd.Commit.Certificate)
			if err != nil {
				return err
			}
			out.committed = append(out.committed, c)
		}
	}
	return nil
}

func stepOf(m bft.Message) bft.Step {
	switch {
	case m.Proposal != nil:
		return bft.StepPropose
	case m.Vote.Type == bft.Prevote:
		return bft.StepPrevote
	}
	return bft.StepPrecommit
}

func (e *engine) addEvidence(ev bft.Evidence) {
	le, err := toLedgerEvidence(ev)
	if err != nil {
		e.log.Warn("consensus: evidence", "err", err)
		return
	}
	h := le.Hash()
	if e.evSeen[h] || len(e.evpool) >= e.maxEvidence {
		return
	}
	e.evSeen[h] = true
	e.evpool = append(e.evpool, le)
	e.log.Warn("consensus: equivocation", "evidence", ev.String())
}

// ProposeValue implements bft.Application: a block of mempool txs and
// pending evidence, executed on the current state.
func (e *engine) ProposeValue(height uint64, round int32) (bft.Value, error) {
	if height != e.height() {
		return bft.Value{}, fmt.Errorf("consensus: propose at %d, state at %d", height, e.state.Height())
	}
	txs := e.pool.Reap(int(e.state.Params().MaxBlockTxs), e.maxBlockBytes)
	blk, ns, evs, skipped, err := e.led.Propose(e.state, ledger.Header{ChainID: e.chainID, Proposer: e.self, Time: e.now().UnixMilli()}, txs, e.evpool)
	if err != nil {
		return bft.Value{}, err
	}
	var drop [][]byte
	for _, sk := range skipped {
		if !errors.Is(sk.Err, ledger.ErrBlockFull) { // a full block is no fault of the tx
			drop = append(drop, sk.Tx)
		}
	}
	e.pool.Remove(drop)
	data, err := blk.Encode()
	if err != nil {
		return bft.Value{}, err
	}
	hash := bft.Hash(blk.Hash())
	e.pending[hash] = &applied{blk: blk, data: data, state: ns, events: evs}
	return bft.Value{Hash: hash, Data: data}, nil
}

// ValidateValue implements bft.Application: the block must decode, hash to
// v.Hash and apply to the current state.
func (e *engine) ValidateValue(height uint64, v bft.Value) error {
	if a := e.pending[v.Hash]; a != nil && bytes.Equal(a.data, v.Data) {
		return nil
	}
	if height != e.height() {
		return fmt.Errorf("consensus: validate at %d, state at %d", height, e.state.Height())
	}
	a, err := e.execute(v.Data)
	if err != nil {
		return err
	}
	if bft.Hash(a.blk.Hash()) != v.Hash {
		return fmt.Errorf("%w: value hash is not the block hash", ErrBadCommit)
	}
	e.pending[v.Hash] = a
	return nil
}

func (e *engine) execute(data []byte) (*applied, error) {
	blk, err := ledger.DecodeBlock(data)
	if err != nil {
		return nil, err
	}
	// Check the txs' signatures (those not verified yet) on all CPUs
	// first: Apply then finds them in the verifier's cache. A failure is
	// left for Apply to report.
	_ = verifyAll(e.verifier, e.chainID, blk.Txs, false)
	ns, evs, err := e.led.Apply(e.state, blk)
	if err != nil {
		return nil, err
	}
	return &applied{blk: blk, data: data, state: ns, events: evs}, nil
}

// commitValue persists the decided value; the machine waits for startNext.
func (e *engine) commitValue(v bft.Value, cert bft.Certificate) (*Committed, error) {
	a := e.pending[v.Hash]
	if a == nil {
		var err error
		if a, err = e.execute(v.Data); err != nil {
			return nil, fmt.Errorf("consensus: decided block does not apply: %w", err)
		}
	}
	c, err := e.persist(a, cert)
	if err != nil {
		return nil, err
	}
	e.waiting = true
	return c, nil
}

func (e *engine) checkCert(blk *ledger.Block, cert *bft.Certificate) error {
	if cert.Height != blk.Header.Height || cert.BlockHash != bft.Hash(blk.Hash()) {
		return fmt.Errorf("%w: certificate for %d/%s, block %d/%x", ErrBadCommit, cert.Height, cert.BlockHash, blk.Header.Height, blk.Hash())
	}
	vals, err := e.valset(blk.Header.Height)
	if err != nil {
		return err
	}
	if err := cert.Verify(e.chainID, vals); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCommit, err)
	}
	return nil
}

// applyCommitted applies a block decided elsewhere (block sync, a commit
// announcement) after checking its certificate against the height's set.
// A block at or below the current state is ignored.
func (e *engine) applyCommitted(sb *StoredBlock) (*effects, error) {
	var out effects
	blk, err := ledger.DecodeBlock(sb.Block)
	if err != nil {
		return &out, fmt.Errorf("%w: %w", ErrBadCommit, err)
	}
	if blk.Header.Height != e.height() {
		return &out, nil
	}
	if err := e.checkCert(blk, &sb.Certificate); err != nil {
		return &out, err
	}
	a := e.pending[sb.Certificate.BlockHash]
	if a == nil {
		ns, evs, err := e.led.Apply(e.state, blk)
		if err != nil {
			return &out, fmt.Errorf("%w: %w", ErrBadCommit, err)
		}
		a = &applied{blk: blk, data: sb.Block, state: ns, events: evs}
	}
	c, err := e.persist(a, sb.Certificate)
	if err != nil {
		return nil, err
	}
	out.committed = append(out.committed, c)
	e.waiting = true
	return &out, nil
}

// pendingBlock returns the data of a value validated at the current height.
func (e *engine) pendingBlock(h bft.Hash) []byte {
	if a := e.pending[h]; a != nil {
		return a.data
	}
	return nil
}

// persist writes the block, its certificate and tx index and deletes the
// height's WAL records in one atomic write, then moves to the new state.
func (e *engine) persist(a *applied, cert bft.Certificate) (*Committed, error) {
	h := a.blk.Header.Height
	puts, err := commitWrites(a.blk, a.data, cert)
	if err != nil {
		return nil, err
	}
	if err := e.kv.Write(puts, e.wal.pruneKeys(h)); err != nil {
		return nil, fmt.Errorf("consensus: store block %d: %w", h, err)
	}
	e.wal.pruned(h)
	if err := e.store.indexTxs(a.blk, a.events); err != nil {
		return nil, err
	}
	e.setState(a.state)
	e.pool.Update(a.state, a.blk.Txs)
	included := map[[32]byte]bool{}
	for i := range a.blk.Evidence {
		included[a.blk.Evidence[i].Hash()] = true
	}
	maxAge := a.state.Params().EvidenceMaxAge
	kept := e.evpool[:0]
	for _, ev := range e.evpool {
		if !included[ev.Hash()] && ev.Height+maxAge >= h {
			kept = append(kept, ev)
		}
	}
	e.evpool = kept
	e.pending = map[bft.Hash]*applied{}
	e.own = nil
	return &Committed{Height: h, Hash: a.blk.Hash(), Block: a.blk, Certificate: cert, Events: a.events, State: a.state}, nil
}
