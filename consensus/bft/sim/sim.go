// Package sim is a deterministic simulator for the bft state machine: a
// virtual clock, a seeded network (delays, loss, duplicates, reordering,
// partitions and healing), honest, Byzantine and crashing validators, and
// validator-set changes across heights. Every run checks safety (no two
// different commits at one height among honest nodes), that every commit
// carries a valid certificate, that no honest node double-signs (even across
// restarts), that every equivocation an honest node saw yields evidence,
// and liveness after the last fault heals.
//
// There are no goroutines: one event queue ordered by (virtual time,
// sequence number) drives everything, so a seed replays exactly.
//
// The per-node Application hook lets the ledger be plugged in: it proposes
// and validates values, applies each committed block (and can check its own
// invariants there), and supplies the validator set of each height. See
// DefaultApp and AppFactory.
//
// What the simulated node does around its machine is what the consensus
// Service must do: persist own messages before sending them (a crash may
// strike in between), rebroadcast its recent messages and ProofOfLock when
// it makes no progress, announce its height, and apply blocks received
// with a verified certificate from peers that are ahead (block sync).
//
// # Running
//
//	go test ./consensus/bft/sim                         # 1,000 seeds over Scenarios()
//	go test ./consensus/bft/sim -sim.seeds=100000       # more (also -e2e or GPUNODE_E2E=1)
//	go test ./consensus/bft/sim -run TestSim -sim.scenario byzantine-4 -seed 17 -v
//
// The last form replays one seed and prints its trace (every delivered
// message, timeout, crash, partition, sync and commit with its virtual
// time). A failing seed prints that command, the end of the trace, and the
// path of a file holding the whole trace.
package sim

import (
	"container/heap"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gpunode/gpunode/consensus/bft"
)

// Application is the per-node block layer of a simulated node.
type Application interface {
	bft.Application
	// Commit applies the block decided at height. An error fails the run
	// (use it to check invariants such as the ledger's supply).
	Commit(height uint64, v bft.Value, cert bft.Certificate) error
	// ValidatorSet returns the validator set of height; it is called for a
	// height only after all lower heights were committed on this node.
	ValidatorSet(height uint64) (*bft.ValidatorSet, error)
}

// NodeInfo describes a simulated node to an AppFactory.
type NodeInfo struct {
	Index int
	ID    string
	// Key is the node's Ed25519 key when the run signs with Ed25519 (see
	// Scenario.RealCrypto); otherwise only its seed is meaningful.
	Key ed25519.PrivateKey
	// Pool is every node of the run (validators at some height or not).
	Pool []bft.Validator
}

// AppFactory builds a node's application. It is called again when a crashed
// node restarts, with the heights it had committed replayed through Commit.
type AppFactory func(n NodeInfo) Application

// Behaviour is a set of Byzantine behaviours.
type Behaviour uint8

// Byzantine behaviours.
const (
	// Equivocate: every vote is signed twice, for two different values,
	// and the two are sent to different halves of the network.
	Equivocate Behaviour = 1 << iota
	// SplitProposals: as proposer, sign two different valid proposals and
	// send one to each partition (or half); colluding Byzantine validators
	// then vote for A towards the first and for B towards the second.
	SplitProposals
	// SpamRounds: periodically sign votes for far-future rounds and the
	// next height.
	SpamRounds
)

// Scenario describes a family of runs; a seed picks one run.
type Scenario struct {
	Name       string
	Validators int // nodes in the pool
	Heights    int // every honest node must commit this many heights
	Byzantine  int // Byzantine nodes (equal power)
	Behaviour  Behaviour
	Partitions int     // random partitions, each healed
	Crashes    int     // honest nodes crashed at once (possibly more than f), then restarted
	CrashProb  float64 // chance of crashing between persisting and sending
	Loss       float64 // message loss probability
	Duplicate  float64 // message duplication probability
	// ValsetChanges: the validator set changes per height, drawn from the
	// pool (at least 4 members, powers 1..10).
	ValsetChanges bool
	// Powers: random powers 1..10 for the fixed set (not with Byzantine).
	Powers bool
	// RealCrypto signs with Ed25519 in every seed. Otherwise only seeds
	// divisible by RealCryptoEvery do; the others sign with a keyed
	// SHA-256 that the simulator checks in place of Ed25519 (same signing
	// bytes, certificates and evidence checks, a fraction of the cost,
	// which matters under -race).
	RealCrypto bool
}

// Timing of the simulated network and timeouts, in virtual milliseconds.
const (
	minDelay      = 2
	maxDelay      = 40
	tickInterval  = 500 // rebroadcast and status
	syncCooldown  = 300 // between sync replies to one peer for one height
	faultsUntil   = 6000
	roundWindow   = 4
	livenessSlack = 10
	commitDelay   = 1 // rounds allowed per height after the last fault
)

// Timeouts used by simulated machines.
var Timeouts = bft.TimeoutConfig{
	Propose: 200 * time.Millisecond, ProposeDelta: 50 * time.Millisecond,
	Prevote: 100 * time.Millisecond, PrevoteDelta: 50 * time.Millisecond,
	Precommit: 100 * time.Millisecond, PrecommitDelta: 50 * time.Millisecond,
}

// RealCryptoEvery: seeds divisible by it use Ed25519 signatures.
const RealCryptoEvery = 16

// ChainID of simulated runs.
const ChainID = "sim-chain"

type eventKind uint8

const (
	evDeliver eventKind = iota
	evStatus
	evTimeout
	evTick
	evCrash
	evRestart
	evPartition
	evHeal
	evStart
	evSync
)

type event struct {
	at      int64
	seq     uint64
	kind    eventKind
	node    int
	from    int
	msg     bft.Message
	height  uint64 // evStatus
	timeout bft.Timeout
	inc     int
	groups  []int
	commit  *bft.Commit // evSync
	note    string      // evidence description in the trace
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int)   { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)     { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any       { old := *q; e := old[len(old)-1]; *q = old[:len(old)-1]; return e }
func (q queue) peekTime() int64 { return q[0].at }

type node struct {
	info        NodeInfo
	byzantine   bool
	alive       bool
	inc         int // incarnation: timers of a crashed incarnation are dropped
	m           *bft.Machine
	app         Application
	wal         map[uint64][]bft.Message // persisted own messages per height
	chain       []*bft.Commit            // block store: chain[h-1]
	lastSync    map[[2]uint64]int64      // (peer, height) -> time of last sync reply
	lastTick    [2]int64                 // (height, round) at the previous tick
	crashHeight uint64                   // height when it last crashed
}

func (n *node) height() uint64 { return uint64(len(n.chain)) + 1 }

// slot identifies what one signer may sign once.
type slot struct {
	author string
	height uint64
	round  int32
	kind   uint8 // 0 proposal, 1 prevote, 2 precommit
}

func slotOf(m bft.Message) slot {
	s := slot{author: m.Author(), height: m.Height(), round: m.Round()}
	if m.Vote != nil {
		s.kind = uint8(m.Vote.Type)
	}
	return s
}

func signBytes(m bft.Message) string {
	if m.Proposal != nil {
		return string(bft.ProposalSignBytes(ChainID, m.Proposal))
	}
	return string(bft.VoteSignBytes(ChainID, m.Vote))
}

// DefaultApp returns the factory of the built-in application for a pool:
// values are opaque texts naming their height and parent; the validator
// set is the whole pool, or with changes a seeded subset per height. Wrap
// it to add checks per committed block.
func DefaultApp(pool []bft.Validator, changes bool, seed uint64) AppFactory {
	sched := &schedule{pool: pool, changes: changes, seed: seed, sets: map[uint64]*bft.ValidatorSet{}}
	return func(n NodeInfo) Application { return &kvApp{id: n.ID, sched: sched} }
}

// simRun is the state of one run.
type simRun struct {
	sc      Scenario
	seed    uint64
	rng     *rand.Rand
	factory AppFactory
	now     int64
	seq     uint64
	q       queue
	nodes   []*node
	byID    map[string]int
	groups  []int // partition group per node; nil: no partition
	quiet   int64 // time of the last fault event

	trace   []*event
	signed  map[slot][]string         // distinct signed messages per slot
	seen    map[int]map[slot][]string // per honest node: distinct messages accepted at their height
	evid    map[int]map[slot]bool     // per honest node: evidence reported
	decided map[uint64]bft.Hash
	sigOK   map[string]bool
	real    bool                       // Ed25519 signatures (else fast keyed hashes)
	byPub   map[string]int             // public key -> node
	split   map[[2]uint64][2]bft.Value // (height, round) -> Byzantine proposer's two values
	stats   Stats
	err     error
}

// Stats summarises a run.
type Stats struct {
	Events, Delivered, Dropped int
	Commits                    int
	MaxRound                   int32
	Evidence                   int
	EndTime                    int64 // virtual ms
}

// Result is the outcome of a run.
type Result struct {
	Seed     uint64
	Scenario Scenario
	Stats    Stats
	// Chain is the decided hash per height (1-based index minus one).
	Chain []bft.Hash
	sim   *simRun
}

// Trace returns the run's delivered events, one line each.
func (r *Result) Trace() []string { return r.sim.formatTrace() }

// Error is a failed check, with the seed and the trace to replay it.
type Error struct {
	Seed     uint64
	Scenario string
	Err      error
	Trace    []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sim: scenario %s seed %d: %v (replay: go test ./consensus/bft/sim -run TestSim -sim.scenario %s -seed %d -v)", e.Scenario, e.Seed, e.Err, e.Scenario, e.Seed)
}

func (e *Error) Unwrap() error { return e.Err }

// Run executes scenario sc with seed. A nil factory uses the built-in
// application (values are opaque byte strings; sets from the scenario).
func Run(sc Scenario, seed uint64, factory AppFactory) (*Result, error) {
	s := &simRun{
		sc: sc, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)), factory: factory,
		byID: map[string]int{}, signed: map[slot][]string{}, seen: map[int]map[slot][]string{},
		evid: map[int]map[slot]bool{}, decided: map[uint64]bft.Hash{}, sigOK: map[string]bool{}, byPub: map[string]int{},
		real:  sc.RealCrypto || seed%RealCryptoEvery == 0,
		split: map[[2]uint64][2]bft.Value{},
	}
	if err := s.setup(); err != nil {
		return nil, err
	}
	s.loop()
	if s.err == nil {
		s.err = s.finalChecks()
	}
	res := &Result{Seed: seed, Scenario: sc, Stats: s.stats}
	for h := uint64(1); ; h++ {
		d, ok := s.decided[h]
		if !ok {
			break
		}
		res.Chain = append(res.Chain, d)
	}
	res.sim = s
	if s.err != nil {
		return res, &Error{Seed: seed, Scenario: sc.Name, Err: s.err, Trace: s.formatTrace()}
	}
	return res, nil
}

func (s *simRun) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("t=%d: %s", s.now, fmt.Sprintf(format, args...))
	}
}

func (s *simRun) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *simRun) setup() error {
	sc := s.sc
	if sc.Validators < 1 || sc.Heights < 1 || 3*sc.Byzantine >= sc.Validators && sc.Byzantine > 0 {
		return fmt.Errorf("sim: bad scenario %+v", sc)
	}
	pool := make([]bft.Validator, sc.Validators)
	keys := make([]ed25519.PrivateKey, sc.Validators)
	for i := range pool {
		seed := sha256.Sum256(fmt.Appendf(nil, "sim-key/%d/%d", s.seed, i))
		if s.real {
			keys[i] = ed25519.NewKeyFromSeed(seed[:])
		} else {
			// Fast signatures only need the seed; deriving the public key
			// costs a scalar multiplication per node and run.
			pub := sha256.Sum256(seed[:])
			keys[i] = ed25519.PrivateKey(append(seed[:], pub[:]...))
		}
		pool[i] = bft.Validator{ID: fmt.Sprintf("n%d", i), PubKey: keys[i].Public().(ed25519.PublicKey), Power: 1}
		if sc.Powers {
			pool[i].Power = 1 + s.rng.Int64N(10)
		}
		s.byID[pool[i].ID] = i
		s.byPub[string(pool[i].PubKey)] = i
	}
	byz := s.rng.Perm(sc.Validators)[:sc.Byzantine]
	if s.factory == nil {
		s.factory = DefaultApp(pool, sc.ValsetChanges, s.seed)
	}
	for i := range pool {
		n := &node{info: NodeInfo{Index: i, ID: pool[i].ID, Key: keys[i], Pool: pool}, wal: map[uint64][]bft.Message{}, lastSync: map[[2]uint64]int64{}}
		n.byzantine = slices.Contains(byz, i)
		s.nodes = append(s.nodes, n)
		s.seen[i] = map[slot][]string{}
		s.evid[i] = map[slot]bool{}
	}
	// Faults, all before faultsUntil.
	honest := []int{}
	for i, n := range s.nodes {
		if !n.byzantine {
			honest = append(honest, i)
		}
	}
	for range sc.Partitions {
		at := s.rng.Int64N(faultsUntil / 2)
		groups := make([]int, sc.Validators)
		for i := range groups {
			groups[i] = s.rng.IntN(2)
		}
		s.push(&event{at: at, kind: evPartition, groups: groups})
		heal := at + 200 + s.rng.Int64N(faultsUntil/2)
		s.push(&event{at: heal, kind: evHeal})
		s.quiet = max(s.quiet, heal)
	}
	if sc.Crashes > 0 {
		at := s.rng.Int64N(faultsUntil / 2)
		back := at + 300 + s.rng.Int64N(faultsUntil/2)
		for _, i := range honest[:min(sc.Crashes, len(honest))] {
			s.push(&event{at: at + s.rng.Int64N(50), kind: evCrash, node: i})
			s.push(&event{at: back + s.rng.Int64N(200), kind: evRestart, node: i})
		}
		s.quiet = max(s.quiet, back+200)
	}
	for _, n := range s.nodes {
		n.alive = true
		s.start(n)
		s.push(&event{at: s.rng.Int64N(tickInterval), kind: evTick, node: n.info.Index, inc: n.inc})
	}
	return nil
}

// start (re)creates a node's machine and application at its next height.
func (s *simRun) start(n *node) {
	n.app = s.factory(n.info)
	for _, c := range n.chain {
		if err := n.app.Commit(c.Height, c.Value, c.Certificate); err != nil {
			s.fail("%s: replaying height %d: %v", n.info.ID, c.Height, err)
			return
		}
	}
	m, err := bft.New(bft.Config{ChainID: ChainID, ID: n.info.ID, Signer: signer{s, n}, App: n.app, Timeouts: Timeouts, RoundWindow: roundWindow})
	if err != nil {
		s.fail("%v", err)
		return
	}
	n.m = m
	s.startHeight(n)
}

func (s *simRun) startHeight(n *node) {
	h := n.height()
	vs, err := n.app.ValidatorSet(h)
	if err != nil {
		s.fail("%s: validator set of %d: %v", n.info.ID, h, err)
		return
	}
	if err := n.m.StartHeight(h, vs, n.wal[h]); err != nil {
		s.fail("%s: start height %d: %v", n.info.ID, h, err)
		return
	}
	s.drain(n)
}

type signer struct {
	s *simRun
	n *node
}

func (k signer) Sign(msg []byte) ([]byte, error) { return k.s.sign(k.n, msg), nil }

// sign signs msg as n: Ed25519, or (fast mode) a keyed SHA-256 that only
// the simulator checks.
func (s *simRun) sign(n *node, msg []byte) []byte {
	if !s.real {
		sum := fastSig(n.info.Key, msg)
		return sum[:]
	}
	return ed25519.Sign(n.info.Key, msg)
}

func fastSig(key ed25519.PrivateKey, msg []byte) [32]byte {
	h := sha256.New()
	h.Write(key.Seed())
	h.Write(msg)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (s *simRun) done() bool {
	for _, n := range s.nodes {
		if !n.byzantine && len(n.chain) < s.sc.Heights {
			return false
		}
	}
	return true
}

// deadline bounds liveness: after the last fault, each height gets
// livenessSlack rounds, starting from the highest round any node reached.
func (s *simRun) deadline() int64 {
	var maxR int32
	for _, n := range s.nodes {
		maxR = max(maxR, n.m.State().Round)
	}
	perHeight := int64(0)
	for r := maxR; r < maxR+livenessSlack; r++ {
		perHeight += (Timeouts.Duration(bft.StepPropose, r) + Timeouts.Duration(bft.StepPrevote, r) + Timeouts.Duration(bft.StepPrecommit, r)).Milliseconds() + 4*maxDelay
	}
	return s.quiet + tickInterval + int64(s.sc.Heights)*perHeight
}

func (s *simRun) loop() {
	limit := int64(-1)
	for s.err == nil && len(s.q) > 0 {
		if s.done() {
			return
		}
		if limit < 0 && s.q.peekTime() > s.quiet {
			limit = s.deadline()
		}
		if limit >= 0 && s.q.peekTime() > limit {
			var behind []string
			for _, n := range s.nodes {
				if !n.byzantine && len(n.chain) < s.sc.Heights {
					st := n.m.State()
					behind = append(behind, fmt.Sprintf("%s %s alive=%v", n.info.ID, st, n.alive))
				}
			}
			s.fail("liveness: not all honest nodes reached height %d within %dms after the last fault at %dms: %s", s.sc.Heights, limit-s.quiet, s.quiet, strings.Join(behind, "; "))
			return
		}
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		s.stats.Events++
		s.stats.EndTime = s.now
		s.handle(e)
	}
}

func (s *simRun) handle(e *event) {
	switch e.kind {
	case evPartition:
		s.groups = e.groups
		s.trace = append(s.trace, e)
	case evHeal:
		s.groups = nil
		s.trace = append(s.trace, e)
	case evCrash:
		n := s.nodes[e.node]
		if n.alive {
			s.crash(n)
			s.trace = append(s.trace, e)
		}
	case evRestart:
		n := s.nodes[e.node]
		if !n.alive {
			n.alive = true
			n.inc++
			s.trace = append(s.trace, e)
			s.start(n)
			s.push(&event{at: s.now + tickInterval, kind: evTick, node: e.node, inc: n.inc})
		}
	case evStart:
		n := s.nodes[e.node]
		if n.alive && n.inc == e.inc && n.m.State().Decided {
			s.startHeight(n)
		}
	case evTimeout:
		n := s.nodes[e.node]
		if n.alive && n.inc == e.inc {
			s.trace = append(s.trace, e)
			n.m.Timeout(e.timeout)
			s.drain(n)
		}
	case evTick:
		n := s.nodes[e.node]
		if n.alive && n.inc == e.inc {
			s.tick(n)
			s.push(&event{at: s.now + tickInterval, kind: evTick, node: e.node, inc: n.inc})
		}
	case evStatus:
		n := s.nodes[e.node]
		if !n.alive || s.cut(e.from, e.node) {
			return
		}
		s.syncPeer(n, e.from, e.height)
	case evDeliver:
		s.deliver(e)
	case evSync:
		n := s.nodes[e.node]
		if !n.alive || s.cut(e.from, e.node) || e.commit.Height != n.height() {
			return
		}
		s.trace = append(s.trace, e)
		s.syncCommit(n, e.commit)
	}
}

func (s *simRun) crash(n *node) {
	n.crashHeight = n.height()
	n.alive = false
	n.inc++
	n.m = nil
	n.app = nil
}

// cut reports whether a partition separates from and to; Byzantine senders
// reach everyone.
func (s *simRun) cut(from, to int) bool {
	return s.groups != nil && s.groups[from] != s.groups[to] && !s.nodes[from].byzantine
}

func (s *simRun) deliver(e *event) {
	n := s.nodes[e.node]
	if !n.alive || s.cut(e.from, e.node) {
		s.stats.Dropped++
		return
	}
	s.stats.Delivered++
	s.trace = append(s.trace, e)
	st := n.m.State()
	err := n.m.Step(e.msg)
	switch {
	case errors.Is(err, bft.ErrPastHeight):
		s.syncPeer(n, e.from, e.msg.Height())
	case err == nil && s.sc.Byzantine > 0 && !n.byzantine && e.msg.Height() == st.Height && e.msg.Round() <= st.Round+roundWindow:
		// Track what this honest node accepted, to demand evidence for every
		// equivocation it saw.
		sl := slotOf(e.msg)
		sb := signBytes(e.msg)
		if !slices.Contains(s.seen[e.node][sl], sb) {
			s.seen[e.node][sl] = append(s.seen[e.node][sl], sb)
		}
	}
	s.drain(n)
}

// syncPeer plays block sync: a node that sees a peer behind sends it the
// proposal and precommits that decided the peer's height.
func (s *simRun) syncPeer(n *node, peer int, h uint64) {
	if h >= n.height() || h == 0 {
		return
	}
	key := [2]uint64{uint64(peer), h}
	if last, ok := n.lastSync[key]; ok && s.now-last < syncCooldown {
		return
	}
	n.lastSync[key] = s.now
	// The decided block with its certificate: the peer verifies and applies
	// it without its machine deciding (its machine may never reach a quorum
	// by itself when an equivocator's first vote there differs from the
	// one in the certificate).
	if s.rng.Float64() < s.sc.Loss {
		return
	}
	s.push(&event{at: s.now + s.delay(), kind: evSync, node: peer, from: n.info.Index, commit: n.chain[h-1]})
}

// syncCommit is the follower path of block sync: verify the certificate
// against this node's validator set, validate the block, apply it and move
// the machine to the next height.
func (s *simRun) syncCommit(n *node, c *bft.Commit) {
	vs, err := n.app.ValidatorSet(c.Height)
	if err != nil {
		s.fail("%v", err)
		return
	}
	if err := c.Certificate.VerifyWith(ChainID, vs, s.verify); err != nil || c.Certificate.BlockHash != c.Value.Hash {
		s.fail("%s: synced certificate does not verify: %v", n.info.ID, err)
		return
	}
	if err := n.app.ValidateValue(c.Height, c.Value); err != nil {
		s.fail("%s: synced block invalid: %v", n.info.ID, err)
		return
	}
	s.commit(n, c)
	if s.err == nil {
		s.startHeight(n)
	}
}

// tick is a node's own rebroadcast timer. It only acts when the node made
// no progress since its previous tick: then it announces its height (peers
// ahead of it answer with block sync) and rebroadcasts its messages.
func (s *simRun) tick(n *node) {
	h := n.height()
	st := n.m.State()
	progress := [2]int64{int64(h), int64(st.Round)}
	if progress != n.lastTick {
		n.lastTick = progress
		return
	}
	for i := range s.nodes {
		if i != n.info.Index {
			s.sendStatus(n.info.Index, i, h)
		}
	}
	// Rebroadcast own messages of the latest two rounds at this height, and
	// own prevotes for values in any round: they may be a proof of lock
	// some node needs to accept a re-proposal.
	r := st.Round
	for _, m := range n.wal[h] {
		if m.Round() >= r-1 || m.Vote != nil && m.Vote.Type == bft.Prevote && !m.Vote.BlockHash.IsZero() {
			if n.byzantine {
				s.byzantineSend(n, m)
			} else {
				s.broadcast(n, m)
			}
		}
	}
	if !n.byzantine {
		for _, m := range n.m.ProofOfLock() {
			s.broadcast(n, m)
		}
	}
	if n.byzantine && s.sc.Behaviour&SpamRounds != 0 {
		for range 3 {
			v := &bft.Vote{Type: bft.VoteType(1 + s.rng.IntN(2)), Height: h + uint64(s.rng.IntN(2)), Round: r + 1 + s.rng.Int32N(1000), Validator: n.info.ID}
			if s.rng.IntN(2) == 0 {
				v.BlockHash = sha256.Sum256(fmt.Appendf(nil, "spam %d", s.rng.Uint64()))
			}
			s.signAndSend(n, v)
		}
	}
}

func (s *simRun) sendStatus(from, to int, h uint64) {
	if s.rng.Float64() < s.sc.Loss {
		return
	}
	s.push(&event{at: s.now + s.delay(), kind: evStatus, node: to, from: from, height: h})
}

func (s *simRun) delay() int64 { return minDelay + s.rng.Int64N(maxDelay-minDelay) }

// send puts one message on the wire from -> to: lost, delayed, duplicated.
func (s *simRun) send(from, to int, m bft.Message) {
	if from == to {
		return
	}
	if s.rng.Float64() < s.sc.Loss {
		s.stats.Dropped++
		return
	}
	s.push(&event{at: s.now + s.delay(), kind: evDeliver, node: to, from: from, msg: m})
	if s.rng.Float64() < s.sc.Duplicate {
		s.push(&event{at: s.now + s.delay(), kind: evDeliver, node: to, from: from, msg: m})
	}
}

func (s *simRun) broadcast(n *node, m bft.Message) {
	for i := range s.nodes {
		s.send(n.info.Index, i, m)
	}
}

// drain handles a node's Ready until it is empty.
func (s *simRun) drain(n *node) {
	for s.err == nil && n.alive && n.m.HasReady() {
		rd := n.m.Ready()
		for _, m := range rd.Messages {
			h := m.Height()
			n.wal[h] = append(n.wal[h], m) // persist before sending
			s.record(n, m)
		}
		for _, m := range rd.Persist {
			n.wal[m.Height()] = append(n.wal[m.Height()], m)
		}
		if len(rd.Messages) > 0 && !n.byzantine && s.now < s.quiet && s.rng.Float64() < s.sc.CrashProb {
			// Crash after the write-ahead record, before anything is sent.
			s.crash(n)
			restart := s.now + 50 + s.rng.Int64N(300)
			s.push(&event{at: restart, kind: evRestart, node: n.info.Index})
			s.quiet = max(s.quiet, restart)
			return
		}
		for _, m := range rd.Messages {
			if n.byzantine {
				s.byzantineSend(n, m)
				continue
			}
			s.broadcast(n, m)
			if m.Proposal != nil && m.Proposal.POLRound >= 0 {
				for _, pol := range n.m.ProofOfLock() {
					s.broadcast(n, pol)
				}
			}
		}
		for _, t := range rd.Timeouts {
			s.push(&event{at: s.now + t.Duration.Milliseconds(), kind: evTimeout, node: n.info.Index, timeout: t, inc: n.inc})
		}
		for _, ev := range rd.Evidence {
			s.evidence(n, ev)
		}
		if c := rd.Commit; c != nil {
			s.commit(n, c)
			// The next height starts as its own event, like the Service
			// does after applying the block.
			s.push(&event{at: s.now + commitDelay, kind: evStart, node: n.info.Index, inc: n.inc})
		}
	}
}

// record registers a signed message; an honest node signing two different
// messages for one slot fails the run.
func (s *simRun) record(n *node, m bft.Message) {
	sl := slotOf(m)
	sb := signBytes(m)
	if slices.Contains(s.signed[sl], sb) {
		return
	}
	s.signed[sl] = append(s.signed[sl], sb)
	if !n.byzantine && len(s.signed[sl]) > 1 {
		s.fail("honest %s double-signed %+v: %s", n.info.ID, sl, m)
	}
	if st := n.m; st != nil {
		s.stats.MaxRound = max(s.stats.MaxRound, m.Round())
	}
}

func (s *simRun) evidence(n *node, ev bft.Evidence) {
	s.stats.Evidence++
	s.trace = append(s.trace, &event{at: s.now, kind: evDeliver, node: -1, from: n.info.Index, note: ev.String()})
	off, ok := s.byID[ev.Offender()]
	if !ok || !s.nodes[off].byzantine {
		s.fail("%s reported evidence against honest %s: %s", n.info.ID, ev.Offender(), &ev)
		return
	}
	vs, err := n.app.ValidatorSet(ev.Height())
	if err != nil {
		s.fail("%v", err)
		return
	}
	if err := ev.VerifyWith(ChainID, vs, s.verify); err != nil {
		s.fail("%s: evidence does not verify: %v", n.info.ID, err)
		return
	}
	var sl slot
	if ev.VoteA != nil {
		sl = slotOf(bft.Message{Vote: ev.VoteA})
	} else {
		sl = slotOf(bft.Message{Proposal: ev.ProposalA})
	}
	s.evid[n.info.Index][sl] = true
}

func (s *simRun) commit(n *node, c *bft.Commit) {
	s.trace = append(s.trace, &event{at: s.now, kind: evDeliver, node: -2, from: n.info.Index, msg: bft.Message{Proposal: &c.Proposal}})
	if c.Height != n.height() {
		s.fail("%s committed height %d at height %d", n.info.ID, c.Height, n.height())
		return
	}
	if c.Value.Hash != c.Certificate.BlockHash || c.Proposal.Value.Hash != c.Value.Hash {
		s.fail("%s: commit value, proposal and certificate disagree", n.info.ID)
		return
	}
	vs, err := n.app.ValidatorSet(c.Height)
	if err != nil {
		s.fail("%v", err)
		return
	}
	if err := c.Certificate.VerifyWith(ChainID, vs, s.verify); err != nil {
		s.fail("%s: certificate of height %d: %v", n.info.ID, c.Height, err)
		return
	}
	if _, ok := s.decided[c.Height]; !ok && !s.sc.ValsetChanges {
		s.checkHalted(c.Height)
	}
	if !n.byzantine {
		if d, ok := s.decided[c.Height]; ok && d != c.Value.Hash {
			s.fail("SAFETY: %s committed %s at height %d, another honest node committed %s", n.info.ID, c.Value.Hash, c.Height, d)
			return
		}
		s.decided[c.Height] = c.Value.Hash
	}
	if err := n.app.Commit(c.Height, c.Value, c.Certificate); err != nil {
		s.fail("%s: application commit of height %d: %v", n.info.ID, c.Height, err)
		return
	}
	n.chain = append(n.chain, c)
	s.stats.Commits++
}

// verify is a caching ed25519.Verify (the same precommits appear in many
// nodes' certificates), or the check of a fast signature.
func (s *simRun) verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if !s.real {
		i, ok := s.byPub[string(pub)]
		if !ok {
			return false
		}
		want := fastSig(s.nodes[i].info.Key, msg)
		return string(want[:]) == string(sig)
	}
	key := string(pub) + string(sig) + string(msg)
	ok, hit := s.sigOK[key]
	if !hit {
		ok = ed25519.Verify(pub, msg, sig)
		s.sigOK[key] = ok
	}
	return ok
}

// checkHalted fails the run when a height is decided for the first time
// while more than 1/3 of the power is crashed, beyond the heights the
// crashed nodes had reached: a quorum there would need a vote from one of
// them.
func (s *simRun) checkHalted(h uint64) {
	var down, total int64
	var maxH uint64
	for _, n := range s.nodes {
		p := n.info.Pool[n.info.Index].Power
		total += p
		if !n.alive {
			down += p
			maxH = max(maxH, n.crashHeight)
		}
	}
	if 3*down > total && h > maxH {
		s.fail("height %d decided while %d of %d power was crashed at heights <= %d: the chain should halt", h, down, total, maxH)
	}
}

// finalChecks: every equivocation an honest node accepted both halves of
// produced evidence at that node.
func (s *simRun) finalChecks() error {
	for i, seen := range s.seen {
		n := s.nodes[i]
		if n.byzantine {
			continue
		}
		for sl, msgs := range seen {
			if len(msgs) > 1 && !s.evid[i][sl] {
				return fmt.Errorf("%s accepted %d different messages for %+v but reported no evidence", n.info.ID, len(msgs), sl)
			}
		}
	}
	return nil
}

func (s *simRun) formatTrace() []string {
	out := make([]string, 0, len(s.trace)+1)
	out = append(out, fmt.Sprintf("scenario %s seed %d: %+v", s.sc.Name, s.seed, s.sc))
	for _, e := range s.trace {
		var l string
		switch e.kind {
		case evPartition:
			l = fmt.Sprintf("partition %v", e.groups)
		case evHeal:
			l = "heal"
		case evCrash:
			l = fmt.Sprintf("crash n%d", e.node)
		case evRestart:
			l = fmt.Sprintf("restart n%d", e.node)
		case evTimeout:
			l = fmt.Sprintf("timeout n%d %s h=%d r=%d", e.node, e.timeout.Step, e.timeout.Height, e.timeout.Round)
		case evSync:
			l = fmt.Sprintf("sync n%d->n%d h=%d v=%s", e.from, e.node, e.commit.Height, e.commit.Value.Hash)
		case evDeliver:
			switch e.node {
			case -1:
				l = fmt.Sprintf("n%d reports %s", e.from, e.note)
			case -2:
				l = fmt.Sprintf("commit n%d h=%d v=%s", e.from, e.msg.Proposal.Height, e.msg.Proposal.Value.Hash)
			default:
				l = fmt.Sprintf("deliver n%d->n%d %s", e.from, e.node, e.msg)
			}
		}
		out = append(out, fmt.Sprintf("%7d %s", e.at, l))
	}
	return out
}
