package bft

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TimeoutConfig sets the round timeouts. The timeout of a step in round r is
// Base + r*Delta, so rounds slow down until the network's delay fits.
type TimeoutConfig struct {
	Propose, ProposeDelta     time.Duration
	Prevote, PrevoteDelta     time.Duration
	Precommit, PrecommitDelta time.Duration
}

// DefaultTimeouts returns CometBFT-like timeouts: propose 3s+500ms*r,
// prevote and precommit 1s+500ms*r.
func DefaultTimeouts() TimeoutConfig {
	return TimeoutConfig{
		Propose: 3 * time.Second, ProposeDelta: 500 * time.Millisecond,
		Prevote: time.Second, PrevoteDelta: 500 * time.Millisecond,
		Precommit: time.Second, PrecommitDelta: 500 * time.Millisecond,
	}
}

// Duration returns the timeout of step in round.
func (c TimeoutConfig) Duration(step Step, round int32) time.Duration {
	r := time.Duration(round)
	switch step {
	case StepPropose:
		return c.Propose + r*c.ProposeDelta
	case StepPrevote:
		return c.Prevote + r*c.PrevoteDelta
	default:
		return c.Precommit + r*c.PrecommitDelta
	}
}

// Config configures a Machine.
type Config struct {
	// ChainID is part of every signature's bytes.
	ChainID string
	// ID is this node's validator ID. A node whose ID is not in a height's
	// validator set (or is empty) follows that height without signing.
	ID string
	// Signer signs this node's proposals and votes; required when ID is set.
	Signer Signer
	// App proposes and validates values; required.
	App Application
	// Timeouts; zero means DefaultTimeouts.
	Timeouts TimeoutConfig
	// RoundWindow is how many rounds beyond the current one the machine stores
	// messages for (default 4). Messages further ahead only count towards the
	// round-skip rule, which bounds the memory a Byzantine validator can fill
	// by spamming future rounds.
	RoundWindow int32
	// FutureBuffer bounds the messages buffered for the next height (default
	// 4096); they are replayed by StartHeight.
	FutureBuffer int
}

// Timeout asks the caller to call Machine.Timeout(t) after t.Duration.
type Timeout struct {
	Height   uint64
	Round    int32
	Step     Step
	Duration time.Duration
}

// Commit is a decided value with the proposal that carried it and the
// certificate that proves the decision.
type Commit struct {
	Height      uint64
	Value       Value
	Proposal    Proposal
	Certificate Certificate
}

// Ready is what the caller must do after Step, Timeout or StartHeight, in
// this order: persist Messages and Persist durably, then broadcast Messages
// (not Persist); schedule Timeouts; apply Commit (then call StartHeight for
// the next height); hand Evidence to the block builder. Errors are Signer
// and Application failures, for logging.
type Ready struct {
	Messages []Message
	// Persist holds the proposal whose value this node just locked on: after
	// a restart it needs the value itself, not only the hash its precommit
	// names, to re-propose it (else a set of locked nodes can stall forever).
	Persist  []Message
	Timeouts []Timeout
	Commit   *Commit
	Evidence []Evidence
	Errors   []error
}

// IsEmpty reports whether rd holds nothing to do.
func (rd *Ready) IsEmpty() bool {
	return len(rd.Messages) == 0 && len(rd.Persist) == 0 && len(rd.Timeouts) == 0 && rd.Commit == nil && len(rd.Evidence) == 0 && len(rd.Errors) == 0
}

// voteSet holds the votes of one (round, type). The first vote of each
// validator counts towards total (the "2f+1 of any value" rules); per value,
// a validator's vote counts once in byHash. An equivocator's second vote
// also counts for its value when that value is relevant (proposed in the
// round, or re-proposed with the round as proof of lock): such a vote is a
// valid signed message for the value, and two values can still not both
// reach more than 2/3 unless more than 1/3 of the power equivocates. Votes
// for irrelevant values beyond the first are dropped after yielding
// evidence, which bounds the memory an equivocator can fill.
type voteSet struct {
	first    map[string]*Vote
	total    int64
	byHash   map[Hash]*tally
	reported map[string]bool // evidence already emitted for this validator
}

type tally struct {
	votes map[string]*Vote
	power int64
}

func (vs *voteSet) power(h Hash) int64 {
	if t := vs.byHash[h]; t != nil {
		return t.power
	}
	return 0
}

// quorumHashes returns the hashes with more than 2/3 of the power, sorted.
// There is at most one unless more than 1/3 of the power equivocates.
func (vs *voteSet) quorumHashes(vals *ValidatorSet) []Hash {
	var out []Hash
	for h, t := range vs.byHash {
		if vals.HasQuorum(t.power) {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// maxOtherProposals bounds the alternative proposals kept per round.
const maxOtherProposals = 4

// proposalEntry is a stored proposal and its validity, asked of the
// application at most once: 0 unknown, 1 valid, -1 invalid.
type proposalEntry struct {
	p     *Proposal
	valid int8
}

type roundState struct {
	// proposal is the first proposal received: the one this node prevotes
	// on. others holds different proposals of an equivocating proposer (or
	// the same hash with other data) whose value has votes in this round,
	// at most one per hash, so that a value decided by others can still be
	// decided here.
	proposal *proposalEntry
	others   map[Hash]*proposalEntry
	reported bool // proposal equivocation already reported
	votes    [2]voteSet
	// "for the first time" guards of Algorithm 1.
	prevoteTimeout, precommitTimeout, validUpdated bool
}

// Machine is the Tendermint state machine for one node. It is not safe for
// concurrent use; the caller serialises Step, Timeout, StartHeight and Ready.
type Machine struct {
	cfg Config

	started bool
	decided bool
	height  uint64
	vals    *ValidatorSet
	order   []string // proposer order at height
	signing bool     // cfg.ID is in vals

	round       int32
	step        Step
	lockedRound int32
	lockedHash  Hash
	validRound  int32
	validValue  Value
	validData   bool // validValue.Data is known (not after a restart that restored only the hash)

	rounds   map[int32]*roundState
	roundIDs []int32          // keys of rounds, ascending, for deterministic scans
	maxRound map[string]int32 // highest round each validator was seen in

	future     []Message // for height+1
	futureSeen map[string]bool

	ready Ready
}

// New returns a Machine; call StartHeight before stepping it.
func New(cfg Config) (*Machine, error) {
	if cfg.App == nil {
		return nil, fmt.Errorf("%w: App is required", ErrInvalidConfig)
	}
	if cfg.ID != "" && cfg.Signer == nil {
		return nil, fmt.Errorf("%w: Signer is required with an ID", ErrInvalidConfig)
	}
	if cfg.Timeouts == (TimeoutConfig{}) {
		cfg.Timeouts = DefaultTimeouts()
	}
	if cfg.RoundWindow <= 0 {
		cfg.RoundWindow = 4
	}
	if cfg.FutureBuffer <= 0 {
		cfg.FutureBuffer = 4096
	}
	return &Machine{cfg: cfg, futureSeen: map[string]bool{}}, nil
}

// State is a snapshot of the machine's position and locks.
type State struct {
	Height      uint64
	Round       int32
	Step        Step
	Decided     bool // the height is decided; the machine waits for StartHeight
	LockedRound int32
	LockedHash  Hash
	ValidRound  int32
	ValidHash   Hash
}

func (s State) String() string {
	d := ""
	if s.Decided {
		d = " decided"
	}
	return fmt.Sprintf("h=%d r=%d %s%s locked=%d/%s valid=%d/%s", s.Height, s.Round, s.Step, d, s.LockedRound, s.LockedHash, s.ValidRound, s.ValidHash)
}

// State returns the machine's current state.
func (m *Machine) State() State {
	return State{Height: m.height, Round: m.round, Step: m.step, Decided: m.decided,
		LockedRound: m.lockedRound, LockedHash: m.lockedHash, ValidRound: m.validRound, ValidHash: m.validValue.Hash}
}

// Proposer returns the proposer of round at the current height.
func (m *Machine) Proposer(round int32) string { return m.order[int(round)%len(m.order)] }

// ProofOfLock returns the prevotes this node holds for its valid value in
// its valid round (nil if it has none). Rebroadcast them with the node's
// own messages: a re-proposal of the value (POL round = valid round) is
// only accepted by nodes that hold these prevotes, and some of them may
// come from validators that sent them to part of the network only.
func (m *Machine) ProofOfLock() []Message {
	rs := m.rounds[m.validRound]
	if m.validRound < 0 || rs == nil {
		return nil
	}
	var out []Message
	if t := rs.votes[Prevote-1].byHash[m.validValue.Hash]; t != nil {
		for _, v := range t.votes {
			out = append(out, Message{Vote: cloneVote(v)})
		}
	}
	slices.SortFunc(out, func(a, b Message) int { return strings.Compare(a.Vote.Validator, b.Vote.Validator) })
	return out
}

// HasReady reports whether Ready would return something to do.
func (m *Machine) HasReady() bool { return !m.ready.IsEmpty() }

// Ready returns the pending effects and clears them.
func (m *Machine) Ready() Ready {
	rd := m.ready
	m.ready = Ready{}
	return rd
}

// StartHeight begins height with its validator set. After a restart, wal
// holds what Ready.Messages and Ready.Persist gave for height (this node's
// own messages and the proposals it locked on): the machine resumes at the
// latest round and step it signed in, re-locks on its latest precommitted
// value and never signs a different message for a slot it already signed.
// Messages buffered for height are replayed.
func (m *Machine) StartHeight(height uint64, vals *ValidatorSet, wal []Message) error {
	if vals == nil {
		return fmt.Errorf("%w: nil validator set", ErrInvalidValidators)
	}
	if m.started && height <= m.height {
		return fmt.Errorf("%w: height %d is not after %d", ErrInvalidConfig, height, m.height)
	}
	var maxR int32
	for _, s := range wal {
		if err := s.check(); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if s.Height() != height || s.Vote != nil && s.Author() != m.cfg.ID {
			return fmt.Errorf("%w: restore: %s is not this node's message at height %d", ErrInvalidMessage, s, height)
		}
		if s.Author() == m.cfg.ID {
			maxR = max(maxR, s.Round())
		}
	}
	future := m.future
	if height != m.height+1 {
		future = nil
	}
	*m = Machine{
		cfg: m.cfg, started: true, height: height, vals: vals, order: vals.ProposerOrder(height),
		round: maxR, step: StepPropose, lockedRound: -1, validRound: -1,
		rounds: map[int32]*roundState{}, maxRound: map[string]int32{}, futureSeen: map[string]bool{},
		ready: m.ready,
	}
	_, m.signing = vals.Get(m.cfg.ID)
	for _, s := range wal {
		if _, err := m.record(s); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	rs := m.rs(m.round)
	switch {
	case rs.votes[Precommit-1].first[m.cfg.ID] != nil:
		m.step = StepPrecommit
		m.schedule(StepPrecommit)
	case rs.votes[Prevote-1].first[m.cfg.ID] != nil:
		m.step = StepPrevote
		m.schedule(StepPrevote)
	default:
		m.startRound(m.round)
	}
	for _, f := range future {
		_, _ = m.record(f) // not members of this height's set, stale, ...: dropped
	}
	m.process()
	return nil
}

// Step feeds one verified message (see VerifyMessage) into the machine. A
// nil error means the message is acceptable for propagation, including a
// second, conflicting message of an equivocating validator (which yields
// Evidence in Ready). Messages for the next height are buffered;
// ErrPastHeight tells the caller the sender may need block sync.
func (m *Machine) Step(msg Message) error {
	if !m.started {
		return ErrNotStarted
	}
	if err := msg.check(); err != nil {
		return err
	}
	switch h := msg.Height(); {
	case h < m.height:
		return fmt.Errorf("%w: %d < %d", ErrPastHeight, h, m.height)
	case h == m.height+1:
		return m.buffer(msg)
	case h > m.height:
		return fmt.Errorf("%w: %d > %d", ErrFutureHeight, h, m.height)
	}
	changed, err := m.record(msg)
	if err != nil {
		return err
	}
	if changed {
		m.process()
	}
	return nil
}

func (m *Machine) buffer(msg Message) error {
	var key []byte
	if msg.Proposal != nil {
		key = ProposalSignBytes(m.cfg.ChainID, msg.Proposal)
	} else {
		key = VoteSignBytes(m.cfg.ChainID, msg.Vote)
	}
	if m.futureSeen[string(key)] {
		return nil
	}
	if len(m.future) >= m.cfg.FutureBuffer {
		return fmt.Errorf("%w: next-height buffer full", ErrFutureHeight)
	}
	m.futureSeen[string(key)] = true
	m.future = append(m.future, cloneMessage(msg))
	return nil
}

func cloneMessage(msg Message) Message {
	if msg.Proposal != nil {
		p := *msg.Proposal
		p.Value.Data = bytes.Clone(p.Value.Data)
		p.Signature = bytes.Clone(p.Signature)
		return Message{Proposal: &p}
	}
	return Message{Vote: cloneVote(msg.Vote)}
}

// Timeout handles a timeout scheduled through Ready. Stale timeouts are
// ignored.
func (m *Machine) Timeout(t Timeout) {
	if !m.started || m.decided || t.Height != m.height || t.Round != m.round {
		return
	}
	switch {
	case t.Step == StepPropose && m.step == StepPropose:
		m.vote(Prevote, Hash{})
		m.step = StepPrevote
	case t.Step == StepPrevote && m.step == StepPrevote:
		m.vote(Precommit, Hash{})
		m.step = StepPrecommit
	case t.Step == StepPrecommit:
		m.startRound(m.round + 1)
	default:
		return
	}
	m.process()
}

func (m *Machine) rs(r int32) *roundState {
	rs := m.rounds[r]
	if rs == nil {
		rs = &roundState{}
		for i := range rs.votes {
			rs.votes[i] = voteSet{first: map[string]*Vote{}, byHash: map[Hash]*tally{}}
		}
		m.rounds[r] = rs
		i, _ := slices.BinarySearch(m.roundIDs, r)
		m.roundIDs = slices.Insert(m.roundIDs, i, r)
	}
	return rs
}

// record stores a message of the current height. It reports whether the
// machine's view changed (so the rules must be re-evaluated).
func (m *Machine) record(msg Message) (bool, error) {
	author := msg.Author()
	val, ok := m.vals.Get(author)
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownValidator, author)
	}
	r := msg.Round()
	if msg.Proposal != nil && m.Proposer(r) != author {
		return false, fmt.Errorf("%w: %q at round %d", ErrWrongProposer, author, r)
	}
	changed := false
	if mr, ok := m.maxRound[author]; !ok || r > mr {
		m.maxRound[author] = r
		changed = r > m.round
	}
	if r > m.round+m.cfg.RoundWindow {
		return changed, nil
	}
	rs := m.rs(r)
	if p := msg.Proposal; p != nil {
		return m.recordProposal(rs, p) || changed, nil
	}
	v := msg.Vote
	vs := &rs.votes[v.Type-1]
	if old := vs.first[author]; old != nil {
		if old.BlockHash == v.BlockHash {
			return changed, nil // a duplicate
		}
		if !vs.reported[author] {
			if ev := newVoteEvidence(m.cfg.ChainID, old, v); ev != nil {
				if vs.reported == nil {
					vs.reported = map[string]bool{}
				}
				vs.reported[author] = true
				m.ready.Evidence = append(m.ready.Evidence, *ev)
			}
		}
		if !m.relevant(r, v.BlockHash) {
			return changed, nil
		}
	} else {
		vs.first[author] = cloneVote(v)
		vs.total += val.Power
	}
	t := vs.byHash[v.BlockHash]
	if t == nil {
		t = &tally{votes: map[string]*Vote{}}
		vs.byHash[v.BlockHash] = t
	}
	if t.votes[author] != nil {
		return changed, nil
	}
	t.votes[author] = cloneVote(v)
	t.power += val.Power
	if author == m.cfg.ID && v.Type == Precommit && !v.BlockHash.IsZero() && r > m.lockedRound {
		// Our own precommit, replayed after a restart: it was a lock.
		m.lockedRound, m.lockedHash = r, v.BlockHash
		if m.validRound < r {
			m.validRound, m.validValue, m.validData = r, Value{Hash: v.BlockHash}, false
		}
	}
	return true, nil
}

// recordProposal stores a proposal of the round's proposer and reports
// whether it is new.
func (m *Machine) recordProposal(rs *roundState, p *Proposal) bool {
	if rs.proposal == nil {
		rs.proposal = &proposalEntry{p: cloneMessage(Message{Proposal: p}).Proposal}
		return true
	}
	first := rs.proposal.p
	h := p.Value.Hash
	if first.Value.Hash == h && first.POLRound == p.POLRound && bytes.Equal(first.Value.Data, p.Value.Data) {
		return false // a duplicate
	}
	if !rs.reported {
		if ev := newProposalEvidence(m.cfg.ChainID, first, p); ev != nil {
			rs.reported = true
			m.ready.Evidence = append(m.ready.Evidence, *ev)
		}
	}
	if old := rs.others[h]; old != nil && old.valid >= 0 {
		return false // keep one plausible proposal per hash
	} else if old == nil && len(rs.others) >= maxOtherProposals {
		return false
	}
	if rs.others == nil {
		rs.others = map[Hash]*proposalEntry{}
	}
	rs.others[h] = &proposalEntry{p: cloneMessage(Message{Proposal: p}).Proposal}
	return true
}

// relevant reports whether an equivocator's extra vote for h in round r is
// worth counting: h is nil, proposed in r, or re-proposed with r as its
// proof-of-lock round.
func (m *Machine) relevant(r int32, h Hash) bool {
	if h.IsZero() {
		return true
	}
	for _, rr := range m.roundIDs {
		rs := m.rounds[rr]
		if rs.proposal != nil && rs.proposal.p.Value.Hash == h && (rr == r || rs.proposal.p.POLRound == r) {
			return true
		}
		if e := rs.others[h]; e != nil && (rr == r || e.p.POLRound == r) {
			return true
		}
	}
	return false
}

// candidate returns a valid stored proposal of round r whose value has hash
// h, or nil.
func (m *Machine) candidate(r int32, h Hash) *proposalEntry {
	rs := m.rounds[r]
	if rs == nil {
		return nil
	}
	if e := rs.proposal; e != nil && e.p.Value.Hash == h && m.valid(e) {
		return e
	}
	if e := rs.others[h]; e != nil && m.valid(e) {
		return e
	}
	return nil
}

func (m *Machine) schedule(step Step) {
	m.ready.Timeouts = append(m.ready.Timeouts, Timeout{Height: m.height, Round: m.round, Step: step, Duration: m.cfg.Timeouts.Duration(step, m.round)})
}

// startRound is StartRound of Algorithm 1.
func (m *Machine) startRound(r int32) {
	m.round, m.step = r, StepPropose
	if m.signing && m.Proposer(r) == m.cfg.ID && m.rs(r).proposal == nil {
		m.propose(r)
	}
	// Also scheduled for the proposer: if it could not propose, the round
	// still moves on.
	m.schedule(StepPropose)
}

func (m *Machine) propose(r int32) {
	p := &Proposal{Height: m.height, Round: r, POLRound: -1, Proposer: m.cfg.ID}
	if m.validRound >= 0 {
		p.POLRound = m.validRound
		p.Value = m.validValue
		if !m.validData {
			p.Value = m.findValue(m.validValue.Hash)
		}
	}
	if p.Value.Hash.IsZero() {
		v, err := m.cfg.App.ProposeValue(m.height, r)
		if err != nil {
			m.ready.Errors = append(m.ready.Errors, fmt.Errorf("bft: propose at %d/%d: %w", m.height, r, err))
			return
		}
		if v.Hash.IsZero() {
			m.ready.Errors = append(m.ready.Errors, fmt.Errorf("bft: propose at %d/%d: application proposed the nil hash", m.height, r))
			return
		}
		p.Value, p.POLRound = v, -1
	}
	sig, err := m.cfg.Signer.Sign(ProposalSignBytes(m.cfg.ChainID, p))
	if err != nil {
		m.ready.Errors = append(m.ready.Errors, fmt.Errorf("bft: sign proposal: %w", err))
		return
	}
	p.Signature = sig
	msg := Message{Proposal: p}
	m.ready.Messages = append(m.ready.Messages, cloneMessage(msg))
	_, _ = m.record(msg)
}

// findValue returns a stored valid proposal's value with hash h, or Value{}.
func (m *Machine) findValue(h Hash) Value {
	for _, r := range m.roundIDs {
		if e := m.candidate(r, h); e != nil {
			return e.p.Value
		}
	}
	return Value{}
}

// vote signs and records this node's vote at the current round, unless it
// already signed one for this slot (the guard against double-signing after
// a restart).
func (m *Machine) vote(t VoteType, h Hash) {
	if !m.signing || m.rs(m.round).votes[t-1].first[m.cfg.ID] != nil {
		return
	}
	v := &Vote{Type: t, Height: m.height, Round: m.round, BlockHash: h, Validator: m.cfg.ID}
	sig, err := m.cfg.Signer.Sign(VoteSignBytes(m.cfg.ChainID, v))
	if err != nil {
		m.ready.Errors = append(m.ready.Errors, fmt.Errorf("bft: sign %s: %w", t, err))
		return
	}
	v.Signature = sig
	msg := Message{Vote: v}
	m.ready.Messages = append(m.ready.Messages, cloneMessage(msg))
	_, _ = m.record(msg)
}

// valid asks the application about a stored proposal, once.
func (m *Machine) valid(e *proposalEntry) bool {
	if e.valid == 0 {
		e.valid = -1
		if err := m.cfg.App.ValidateValue(m.height, e.p.Value); err == nil {
			e.valid = 1
		}
	}
	return e.valid > 0
}

// process applies the upon-rules of Algorithm 1 until none fires.
func (m *Machine) process() {
	for !m.decided {
		if m.tryDecide() || m.trySkip() {
			continue
		}
		rs := m.rs(m.round)
		changed := false
		if m.step == StepPropose && rs.proposal != nil {
			changed = m.onProposal(rs)
		}
		pv, pc := &rs.votes[Prevote-1], &rs.votes[Precommit-1]
		if m.step == StepPrevote && !rs.prevoteTimeout && m.vals.HasQuorum(pv.total) { // line 34
			rs.prevoteTimeout = true
			m.schedule(StepPrevote)
		}
		if m.step >= StepPrevote && !rs.validUpdated { // line 36
			if e := m.quorumCandidate(m.round, pv); e != nil {
				rs.validUpdated = true
				if m.step == StepPrevote {
					m.lockedRound, m.lockedHash = m.round, e.p.Value.Hash
					if e.p.Proposer != m.cfg.ID {
						m.ready.Persist = append(m.ready.Persist, cloneMessage(Message{Proposal: e.p}))
					}
					m.vote(Precommit, e.p.Value.Hash)
					m.step = StepPrecommit
				}
				m.validRound, m.validValue, m.validData = m.round, e.p.Value, true
				changed = true
			}
		}
		if m.step == StepPrevote && m.vals.HasQuorum(pv.power(Hash{})) { // line 44
			m.vote(Precommit, Hash{})
			m.step = StepPrecommit
			changed = true
		}
		if !rs.precommitTimeout && m.vals.HasQuorum(pc.total) { // line 47
			rs.precommitTimeout = true
			m.schedule(StepPrecommit)
		}
		if !changed {
			return
		}
	}
}

// onProposal is lines 22 and 28: the first prevote of the round.
func (m *Machine) onProposal(rs *roundState) bool {
	e := rs.proposal
	p, h := e.p, e.p.Value.Hash
	if p.POLRound >= 0 {
		pol := m.rounds[p.POLRound]
		if pol == nil || !m.vals.HasQuorum(pol.votes[Prevote-1].power(h)) {
			return false // wait for the proof of lock, or time out
		}
	}
	ok := m.valid(e) && (m.lockedRound <= p.POLRound || m.lockedHash == h)
	if p.POLRound < 0 {
		ok = m.valid(e) && (m.lockedRound == -1 || m.lockedHash == h)
	}
	if !ok {
		h = Hash{}
	}
	m.vote(Prevote, h)
	m.step = StepPrevote
	return true
}

// quorumCandidate returns a valid stored proposal of round r whose value
// has more than 2/3 of vs, or nil.
func (m *Machine) quorumCandidate(r int32, vs *voteSet) *proposalEntry {
	for _, h := range vs.quorumHashes(m.vals) {
		if h.IsZero() {
			continue
		}
		if e := m.candidate(r, h); e != nil {
			return e
		}
	}
	return nil
}

// tryDecide is line 49, for any round.
func (m *Machine) tryDecide() bool {
	for _, r := range m.roundIDs {
		pc := &m.rounds[r].votes[Precommit-1]
		e := m.quorumCandidate(r, pc)
		if e == nil {
			continue
		}
		h := e.p.Value.Hash
		cert := Certificate{Height: m.height, Round: r, BlockHash: h}
		for id, v := range pc.byHash[h].votes {
			cert.Signatures = append(cert.Signatures, CommitSig{Validator: id, Signature: bytes.Clone(v.Signature)})
		}
		slices.SortFunc(cert.Signatures, func(a, b CommitSig) int { return strings.Compare(a.Validator, b.Validator) })
		p := *cloneMessage(Message{Proposal: e.p}).Proposal
		m.ready.Commit = &Commit{Height: m.height, Value: p.Value, Proposal: p, Certificate: cert}
		m.decided = true
		return true
	}
	return false
}

// trySkip is line 55, generalised: skip to the highest round r above ours
// such that validators with more than 1/3 of the power were seen at round r
// or later. At least one of them is honest and honest rounds only grow, so
// some honest validator has reached r.
func (m *Machine) trySkip() bool {
	type seen struct {
		round int32
		power int64
	}
	var ahead []seen
	for id, r := range m.maxRound {
		if r > m.round {
			v, _ := m.vals.Get(id)
			ahead = append(ahead, seen{r, v.Power})
		}
	}
	if len(ahead) == 0 {
		return false
	}
	slices.SortFunc(ahead, func(a, b seen) int { return int(b.round) - int(a.round) })
	var power int64
	for _, s := range ahead {
		power += s.power
		if m.vals.HasOneThird(power) {
			m.startRound(s.round)
			return true
		}
	}
	return false
}
