package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
	"github.com/gpunode/gpunode/storage"
)

// Publisher receives the Service's events for the API event stream
// (api.Events satisfies it): "chain.block" per committed block and
// "chain.tx" per ledger event of a tx.
type Publisher interface {
	Publish(typ string, data any)
}

// Config configures a Service.
type Config struct {
	// Genesis defines the chain (required).
	Genesis *ledger.Genesis
	// LedgerOptions extend the ledger with more transaction types and
	// end-of-block hooks (the market's settlement, package market/settle).
	// Every node of a chain must run the same set.
	LedgerOptions []ledger.Option
	// Key is the node's key (required): it signs consensus messages when the
	// node is a validator, and the txs the node submits itself.
	Key crypto.PrivKey
	// KV is the consensus keyspace (NewKV(db)); required.
	KV KV
	// Network is the libp2p node (node.ChainNetwork); nil runs the chain
	// without a network (a single validator, or tests).
	Network Network
	// Follower never signs, even with the key in the validator set.
	Follower bool
	// Timeouts are the round timeouts (default: propose 1s, prevote and
	// precommit 500ms, +250ms per round).
	Timeouts bft.TimeoutConfig
	// CommitWait is the pause after a commit before the next height starts,
	// which paces empty blocks and lets late precommits arrive. Default
	// 100ms. It is skipped while the mempool holds at least a full block's
	// txs: then the pause would only delay txs that are ready (a burst
	// commits in back-to-back blocks).
	CommitWait time.Duration
	// RebroadcastMin and RebroadcastMax bound the rebroadcast period of the
	// node's latest own messages: it starts at Min after each new message and
	// doubles up to Max. Defaults 500ms and 4s.
	RebroadcastMin, RebroadcastMax time.Duration
	// SyncInterval is how often the node checks whether a peer is ahead and
	// block-syncs from it. Default 500ms.
	SyncInterval time.Duration
	// TxGossipDelay is how long a submitted tx waits for others to be
	// gossiped with it in one KindTxBatch message (a full batch goes at
	// once). Default 5ms.
	TxGossipDelay time.Duration
	// MempoolSize bounds the mempool (default 100,000 txs).
	MempoolSize int
	// MaxBlockBytes bounds a proposed block's txs (default 3 MiB, under the
	// proposal envelope limit).
	MaxBlockBytes int
	// Events, if set, receives chain.block and chain.tx events.
	Events Publisher
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for block header times; default time.Now.
	Now func() time.Time
}

// Service runs consensus for one node: the bft machine in validator or
// follower mode over the consensus topic, the mempool fed by the txs topic
// and Submit, the WAL, the block store, timers, rebroadcast, block sync and
// commit events. One goroutine (the loop) owns the engine; gossipsub
// validators and the API read an atomically published view.
type Service struct {
	cfg  Config
	log  *slog.Logger
	self peer.ID
	eng  *engine // owned by the loop after Start
	pool *Mempool

	consensus, txs, blocks Topic

	inbox chan func() // work for the loop
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	fatal atomic.Pointer[error] // the storage error that stopped consensus

	view atomic.Pointer[chainView]

	hooksMu sync.Mutex // guards hooks
	hooks   []func(*Committed)

	submitMu sync.Mutex // serialises nonce assignment of the node's own txs

	batchMu    sync.Mutex // guards batch and batchBytes
	batch      [][]byte   // submitted txs not yet gossiped
	batchBytes int
	batchStart chan struct{} // (capacity 1) a batch has started
	batchFull  chan struct{} // (capacity 1) a batch reached its target size

	decodedMu sync.Mutex                           // guards decoded
	decoded   map[*protocol.Envelope]*bft.Proposal // proposals validateConsensus decoded, for readTopic

	pendingStart *effects          // the restore's effects, carried out by Start
	onSend       func(bft.Message) // tests: every message published

	// Loop-only fields.
	rebroadcast    *time.Timer
	rebroadcastGap time.Duration
	heightSince    time.Time // when the height being decided started
	syncing        atomic.Bool
	maxSeen        atomic.Uint64 // highest height seen from peers
	maxSeenPeer    atomic.Pointer[peer.ID]
}

// chainView is what other goroutines may read: immutable once published.
type chainView struct {
	state  *ledger.State
	height uint64 // being decided
	vals   *bft.ValidatorSet
	next   *bft.ValidatorSet // of height+1
	round  int32
	step   bft.Step
}

// New opens the chain: it rebuilds the state from the stored blocks and
// restores the WAL, but sends nothing until Start.
func New(cfg Config) (*Service, error) {
	if cfg.Genesis == nil || cfg.Key == nil || cfg.KV == nil {
		return nil, fmt.Errorf("%w: Genesis, Key and KV are required", ErrBadRequest)
	}
	if cfg.Timeouts == (bft.TimeoutConfig{}) {
		cfg.Timeouts = bft.TimeoutConfig{Propose: time.Second, ProposeDelta: 250 * time.Millisecond,
			Prevote: 500 * time.Millisecond, PrevoteDelta: 250 * time.Millisecond,
			Precommit: 500 * time.Millisecond, PrecommitDelta: 250 * time.Millisecond}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.CommitWait, 100*time.Millisecond)
	def(&cfg.RebroadcastMin, 500*time.Millisecond)
	def(&cfg.RebroadcastMax, 4*time.Second)
	def(&cfg.SyncInterval, 500*time.Millisecond)
	def(&cfg.TxGossipDelay, 5*time.Millisecond)
	if cfg.MempoolSize <= 0 {
		cfg.MempoolSize = 100_000
	}
	if cfg.MaxBlockBytes <= 0 {
		cfg.MaxBlockBytes = 3 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	key := cfg.Key
	if cfg.Follower {
		key = nil
	}
	eng, first, err := newEngine(engineConfig{
		key: key, self: self.String(), genesis: cfg.Genesis, kv: cfg.KV, timeouts: cfg.Timeouts,
		now: cfg.Now, log: cfg.Logger, mempoolSize: cfg.MempoolSize, maxBlockBytes: cfg.MaxBlockBytes,
		ledgerOptions: cfg.LedgerOptions,
	})
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, self: self, eng: eng, pool: eng.pool, inbox: make(chan func(), 1024),
		batchStart: make(chan struct{}, 1), batchFull: make(chan struct{}, 1)}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.publishView()
	s.pendingStart = first
	return s, nil
}

// Start joins the topics, serves block sync and starts the loop.
func (s *Service) Start() error {
	if n := s.cfg.Network; n != nil {
		var err error
		if s.consensus, err = n.Join(protocol.TopicConsensus, s.validateConsensus); err != nil {
			return err
		}
		if s.txs, err = n.Join(protocol.TopicTxs, s.validateTx); err != nil {
			return err
		}
		if s.blocks, err = n.Join(protocol.TopicBlocks, s.validateAnnouncement); err != nil {
			return err
		}
		n.SetStreamHandler(syncProtocol, s.serveSync)
		// The txs topic's messages are handled by its validator; reading
		// them only keeps the subscription (the mesh membership) drained.
		for _, t := range []Topic{s.consensus, s.blocks, s.txs} {
			s.wg.Add(1)
			go s.readTopic(t)
		}
		s.wg.Add(1)
		go s.gossipTxs()
	}
	s.rebroadcast = time.NewTimer(time.Hour)
	s.rebroadcast.Stop()
	s.wg.Add(1)
	go s.loop(s.pendingStart)
	s.pendingStart = nil
	return nil
}

// Close stops the loop and leaves the topics. The store stays open (it is
// the daemon's).
func (s *Service) Close() error {
	s.stop()
	if n := s.cfg.Network; n != nil {
		n.RemoveStreamHandler(syncProtocol)
		for _, t := range []Topic{s.consensus, s.txs, s.blocks} {
			if t != nil {
				_ = t.Close()
			}
		}
	}
	s.wg.Wait()
	return nil
}

// Err is the error that stopped consensus (a storage failure), or nil.
func (s *Service) Err() error {
	if p := s.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// OnCommit registers f to be called, on the loop, for every committed
// block in order. f must not block for long.
func (s *Service) OnCommit(f func(*Committed)) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.hooks = append(s.hooks, f)
}

// PeerID is this node's ID (its account).
func (s *Service) PeerID() peer.ID { return s.self }

// ChainID is the chain's ID.
func (s *Service) ChainID() string { return s.cfg.Genesis.ChainID }

// State is the ledger state after the last committed block.
func (s *Service) State() *ledger.State { return s.view.Load().state }

// Height is the height of the last committed block.
func (s *Service) Height() uint64 { return s.view.Load().state.Height() }

// Mempool is the node's mempool.
func (s *Service) Mempool() *Mempool { return s.pool }

// Block returns the committed block at height with its certificate.
func (s *Service) Block(height uint64) (*ledger.Block, *bft.Certificate, error) {
	sb, blk, err := s.eng.store.get(height)
	if err != nil {
		return nil, nil, err
	}
	return blk, &sb.Certificate, nil
}

// TxHeight returns the height of the block that committed the tx with
// hash, or an error wrapping ErrNotFound.
func (s *Service) TxHeight(hash [32]byte) (uint64, error) {
	loc, err := s.eng.store.tx(hash)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("%w: tx %x", ErrNotFound, hash[:8])
	}
	return loc.Height, err
}

// do runs f on the loop and waits for it; false once the Service stopped.
func (s *Service) do(f func()) bool {
	done := make(chan struct{})
	if !s.post(func() { f(); close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// post runs f on the loop; false once the Service stopped.
func (s *Service) post(f func()) bool {
	select {
	case s.inbox <- f:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Service) loop(first *effects) {
	defer s.wg.Done()
	s.handle(first, nil)
	tick := time.NewTicker(s.cfg.SyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.rebroadcast.Stop()
			return
		case f := <-s.inbox:
			f()
		case <-s.rebroadcast.C:
			s.doRebroadcast()
		case <-tick.C:
			s.maybeSync()
		}
		if s.Err() != nil {
			return
		}
	}
}

// handle carries out an engine call's effects, or stops consensus on a
// storage error.
func (s *Service) handle(out *effects, err error) {
	if err != nil {
		if out == nil {
			s.die(err)
			return
		}
		s.log.Debug("consensus: step", "err", err)
	}
	if out == nil {
		return
	}
	for _, m := range out.send {
		s.publishMessage(m)
	}
	if len(out.send) > 0 {
		s.rebroadcastGap = s.cfg.RebroadcastMin
		s.rebroadcast.Reset(s.rebroadcastGap)
	}
	for _, t := range out.timeouts {
		t := t
		time.AfterFunc(t.Duration, func() {
			s.post(func() { s.handle(s.eng.timeout(t)) })
		})
	}
	for _, c := range out.committed {
		s.onCommitted(c)
	}
	if len(out.committed) > 0 {
		wait := s.cfg.CommitWait
		if s.eng.backlog() {
			wait = 0
		}
		time.AfterFunc(wait, func() {
			s.post(func() { s.handle(s.eng.startNext()) })
		})
	}
	s.publishView()
}

// die stops consensus after a storage failure: continuing could send a
// message the WAL does not hold. The process should restart.
func (s *Service) die(err error) {
	s.log.Error("consensus: stopping after a storage failure", "err", err)
	s.fatal.Store(&err)
	s.stop()
}

func (s *Service) publishView() {
	e := s.eng
	v := &chainView{state: e.state, height: e.height()}
	if old := s.view.Load(); old == nil || old.height != v.height {
		s.heightSince = time.Now()
	}
	v.vals, _ = e.valset(v.height)
	v.next, _ = e.valset(v.height + 1)
	ms := e.machine.State()
	v.round, v.step = ms.Round, ms.Step
	s.view.Store(v)
}

func (s *Service) onCommitted(c *Committed) {
	s.log.Debug("consensus: committed", "height", c.Height, "txs", len(c.Block.Txs), "hash", fmt.Sprintf("%x", c.Hash[:4]))
	if s.blocks != nil && !s.cfg.Follower {
		ann := &Announcement{Height: c.Height, Certificate: c.Certificate}
		if err := s.blocks.Publish(s.ctx, protocol.KindBlock, ann); err != nil && s.ctx.Err() == nil {
			s.log.Debug("consensus: announce", "err", err)
		}
	}
	s.hooksMu.Lock()
	hooks := append([]func(*Committed){}, s.hooks...)
	s.hooksMu.Unlock()
	for _, f := range hooks {
		f(c)
	}
	if ev := s.cfg.Events; ev != nil {
		ev.Publish("chain.block", blockSummary(c))
		for _, e := range c.Events {
			if e.Tx != "" {
				ev.Publish("chain.tx", e)
			}
		}
	}
}

// BlockSummary is the chain.block event and the short form of a block.
type BlockSummary struct {
	Height    uint64 `json:"height"`
	Hash      string `json:"hash"`
	Time      int64  `json:"time"`
	Proposer  string `json:"proposer"`
	Txs       int    `json:"txs"`
	StateHash string `json:"state_hash"`
	Round     int32  `json:"round"`
}

func blockSummary(c *Committed) BlockSummary {
	return BlockSummary{Height: c.Height, Hash: fmt.Sprintf("%x", c.Hash), Time: c.Block.Header.Time,
		Proposer: c.Block.Header.Proposer, Txs: len(c.Block.Txs), StateHash: fmt.Sprintf("%x", c.Block.Header.StateHash),
		Round: c.Certificate.Round}
}

// Announcement is the commit notice published on the blocks topic: the
// certificate of a block; the block itself comes from the proposal or
// block sync.
type Announcement struct {
	Height      uint64          `cbor:"1,keyasint"`
	Certificate bft.Certificate `cbor:"2,keyasint"`
}

func (s *Service) publishMessage(m bft.Message) {
	if s.onSend != nil {
		s.onSend(m)
	}
	if s.consensus == nil {
		return
	}
	var err error
	if m.Proposal != nil {
		err = s.consensus.Publish(s.ctx, protocol.KindProposal, m.Proposal)
	} else {
		err = s.consensus.Publish(s.ctx, protocol.KindVote, m.Vote)
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Debug("consensus: publish", "msg", m.String(), "err", err)
	}
}

// doRebroadcast re-seals the node's latest own messages of the height (a
// new envelope, so gossip's duplicate filter lets it through) with the
// proof of lock, and backs off.
func (s *Service) doRebroadcast() {
	own := s.eng.own
	if len(own) > 6 {
		own = own[len(own)-6:]
	}
	for _, m := range own {
		s.publishMessage(m)
	}
	for _, m := range s.eng.machine.ProofOfLock() {
		s.publishMessage(m)
	}
	s.rebroadcastGap = min(2*s.rebroadcastGap, s.cfg.RebroadcastMax)
	if s.rebroadcastGap <= 0 {
		s.rebroadcastGap = s.cfg.RebroadcastMin
	}
	s.rebroadcast.Reset(s.rebroadcastGap)
}

// decodeConsensus turns an authenticated envelope into a bft message.
func decodeConsensus(env *protocol.Envelope) (bft.Message, error) {
	switch env.Kind {
	case protocol.KindProposal:
		var p bft.Proposal
		if err := env.Decode(&p); err != nil {
			return bft.Message{}, err
		}
		return bft.Message{Proposal: &p}, nil
	case protocol.KindVote:
		var v bft.Vote
		if err := env.Decode(&v); err != nil {
			return bft.Message{}, err
		}
		return bft.Message{Vote: &v}, nil
	}
	return bft.Message{}, fmt.Errorf("%w: kind %q on the consensus topic", ErrBadRequest, env.Kind)
}

// validateConsensus is the consensus topic's validator. Messages for the
// height being decided and the next one are verified against that height's
// set: bad ones are rejected. Other heights are ignored (a far-ahead one
// tells the node to block-sync). The envelope's author must be a validator
// too, so only validators can re-seal (rebroadcast) votes.
func (s *Service) validateConsensus(_ context.Context, from peer.ID, env *protocol.Envelope) Verdict {
	if from == s.self {
		// The node's own proposal or vote, sealed from a bft.Message: no
		// need to decode it (a proposal carries a whole block) before it
		// goes out.
		if env.Kind != protocol.KindProposal && env.Kind != protocol.KindVote {
			return Reject
		}
		return Accept
	}
	m, err := decodeConsensus(env)
	if err != nil {
		return Reject
	}
	v := s.view.Load()
	h := m.Height()
	var vals *bft.ValidatorSet
	switch {
	case h == v.height:
		vals = v.vals
	case h == v.height+1:
		vals = v.next
	case h > v.height+1:
		s.noteHeight(h-1, from)
		return Ignore
	default:
		return Ignore
	}
	if vals == nil {
		return Ignore
	}
	author, err := env.AuthorID()
	if err != nil {
		return Reject
	}
	if _, ok := vals.Get(author.String()); !ok {
		return Reject
	}
	if err := bft.VerifyMessage(s.cfg.Genesis.ChainID, vals, m); err != nil {
		return Reject
	}
	if m.Proposal != nil {
		s.keepDecoded(env, m.Proposal)
	}
	return Accept
}

// maxDecoded bounds the proposals kept between validateConsensus and
// readTopic; one that gossipsub validated but never delivered is dropped
// when the bound is reached (readTopic would decode it again).
const maxDecoded = 64

// keepDecoded hands the decoded proposal of env to readTopic, which then
// need not decode it (with its whole block) again. The envelope is the one
// the subscription delivers (node passes it on from the validator).
func (s *Service) keepDecoded(env *protocol.Envelope, p *bft.Proposal) {
	s.decodedMu.Lock()
	defer s.decodedMu.Unlock()
	if s.decoded == nil || len(s.decoded) >= maxDecoded {
		s.decoded = map[*protocol.Envelope]*bft.Proposal{}
	}
	s.decoded[env] = p
}

// takeDecoded returns and forgets the proposal keepDecoded kept for env.
func (s *Service) takeDecoded(env *protocol.Envelope) *bft.Proposal {
	s.decodedMu.Lock()
	defer s.decodedMu.Unlock()
	p := s.decoded[env]
	delete(s.decoded, env)
	return p
}

func (s *Service) noteHeight(h uint64, from peer.ID) {
	for {
		cur := s.maxSeen.Load()
		if h <= cur {
			return
		}
		if s.maxSeen.CompareAndSwap(cur, h) {
			s.maxSeenPeer.Store(&from)
			return
		}
	}
}

// validateAnnouncement checks a commit announcement's certificate when the
// height's set is known; a far-ahead one only triggers block sync.
func (s *Service) validateAnnouncement(_ context.Context, from peer.ID, env *protocol.Envelope) Verdict {
	if env.Kind != protocol.KindBlock {
		return Reject
	}
	var a Announcement
	if err := env.Decode(&a); err != nil || a.Certificate.Height != a.Height {
		return Reject
	}
	if from == s.self {
		return Accept
	}
	v := s.view.Load()
	switch {
	case a.Height < v.height:
		return Ignore
	case a.Height > v.height:
		s.noteHeight(a.Height, from)
		return Ignore
	}
	if err := a.Certificate.Verify(s.cfg.Genesis.ChainID, v.vals); err != nil {
		return Reject
	}
	s.noteHeight(a.Height, from)
	return Accept
}

// validateTx admits a gossiped tx, or a batch of them, to the mempool.
// A tx that fails verification (signature, chain, shape: the same answer
// on every node) rejects the message and so penalises the peer that sent
// it; a tx the mempool refuses for the current state only stays out (it
// may be valid elsewhere) and the message is accepted. The node's own
// publishes always pass.
func (s *Service) validateTx(_ context.Context, from peer.ID, env *protocol.Envelope) Verdict {
	if from == s.self {
		return Accept
	}
	switch env.Kind {
	case protocol.KindTx:
		raw, err := protocol.Marshal(env)
		if err != nil {
			return Reject
		}
		if s.pool.Has(ledger.TxHash(raw)) {
			return Accept
		}
		// The topic's envelope check (protocol.Open) has verified the
		// signature: prime the verifier instead of checking it again.
		if err := s.eng.verifier.prime(raw, env); err != nil {
			return Reject
		}
		if _, err := s.pool.Add(raw); err != nil && !errors.Is(err, ErrKnownTx) {
			return Ignore
		}
		return Accept
	case KindTxBatch:
		b, err := DecodeTxBatch(env.Payload)
		if err != nil {
			return Reject
		}
		if err := verifyAll(s.eng.verifier, s.cfg.Genesis.ChainID, b.Txs, true); err != nil {
			s.log.Debug("consensus: rejected tx batch", "from", from, "err", err)
			return Reject
		}
		for _, raw := range b.Txs {
			_, _ = s.pool.Add(raw) // verified above: only state refusals remain
		}
		return Accept
	}
	return Reject
}

func (s *Service) readTopic(t Topic) {
	defer s.wg.Done()
	for {
		r, err := t.Next(s.ctx)
		if err != nil {
			return
		}
		if r.Local {
			continue
		}
		env := r.Envelope
		switch env.Kind {
		case protocol.KindProposal, protocol.KindVote:
			m := bft.Message{Proposal: s.takeDecoded(env)}
			if m.Proposal == nil {
				var err error
				if m, err = decodeConsensus(env); err != nil {
					continue
				}
			}
			s.post(func() { s.handle(s.eng.step(m)) })
		case protocol.KindBlock:
			var a Announcement
			if env.Decode(&a) != nil {
				continue
			}
			from := r.From
			s.post(func() { s.onAnnouncement(&a, from) })
		}
	}
}

// onAnnouncement commits a block announced by its certificate when the node
// holds the proposal for it; otherwise block sync fetches it.
func (s *Service) onAnnouncement(a *Announcement, from peer.ID) {
	if a.Height != s.eng.height() {
		return
	}
	data := s.eng.pendingBlock(a.Certificate.BlockHash)
	if data == nil {
		s.noteHeight(a.Height, from)
		return
	}
	out, err := s.eng.applyCommitted(&StoredBlock{Block: data, Certificate: a.Certificate})
	if out == nil {
		s.handle(nil, err)
		return
	}
	if err != nil {
		s.log.Debug("consensus: announcement", "err", err)
	}
	s.handle(out, nil)
}

// Submit admits a signed tx (a KindTx envelope) to the mempool and queues
// it for gossip: within Config.TxGossipDelay it goes out with the other
// txs submitted meanwhile in one KindTxBatch message (alone as itself).
// It returns the tx hash.
func (s *Service) Submit(ctx context.Context, raw []byte) ([32]byte, error) {
	h, err := s.pool.Add(raw)
	if err != nil && !errors.Is(err, ErrKnownTx) {
		return h, err
	}
	if s.txs == nil {
		return h, nil
	}
	if err := ctx.Err(); err != nil {
		return h, err
	}
	s.batchMu.Lock()
	s.batch = append(s.batch, raw)
	s.batchBytes += len(raw)
	first, full := len(s.batch) == 1, len(s.batch) >= batchTargetTxs || s.batchBytes >= batchTargetBytes
	s.batchMu.Unlock()
	if first {
		signal(s.batchStart)
	}
	if full {
		signal(s.batchFull)
	}
	return h, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// gossipTxs publishes the submitted txs: a batch goes when it is full or
// TxGossipDelay after its first tx.
func (s *Service) gossipTxs() {
	defer s.wg.Done()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		full := false
		select {
		case <-s.ctx.Done():
			return
		case <-s.batchStart:
		case <-s.batchFull:
			full = true
		}
		if !full {
			wait.Reset(s.cfg.TxGossipDelay)
			select {
			case <-s.ctx.Done():
				return
			case <-wait.C:
			case <-s.batchFull:
				wait.Stop()
			}
		}
		s.batchMu.Lock()
		txs := s.batch
		s.batch, s.batchBytes = nil, 0
		s.batchMu.Unlock()
		for _, b := range splitBatches(txs) {
			var err error
			if len(b) == 1 {
				err = s.txs.PublishRaw(s.ctx, b[0])
			} else {
				err = s.txs.Publish(s.ctx, KindTxBatch, &TxBatch{Txs: b})
			}
			if err != nil && s.ctx.Err() == nil {
				s.log.Debug("consensus: gossip txs", "txs", len(b), "err", err)
			}
		}
	}
}

// SubmitOwn signs a tx of the node's own account with the next free nonce
// and submits it. fee 0 means the chain's minimum fee.
func (s *Service) SubmitOwn(ctx context.Context, typ ledger.TxType, fee uint64, body any) ([32]byte, uint64, error) {
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	if fee == 0 {
		fee = s.State().Params().MinFee
	}
	nonce := s.pool.NextNonce(s.self.String())
	tx, err := ledger.NewTx(typ, nonce, fee, body)
	if err != nil {
		return [32]byte{}, 0, err
	}
	raw, err := ledger.SignTx(s.cfg.Key, s.ChainID(), s.cfg.Now(), tx)
	if err != nil {
		return [32]byte{}, 0, err
	}
	h, err := s.Submit(ctx, raw)
	return h, nonce, err
}
