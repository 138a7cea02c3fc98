package ledger

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// TxHandler executes the body of one tx type against the block being
// applied. It may call any TxContext method; if it returns an error, every
// change it made is undone and the tx gets a failure receipt (the fee stays
// charged). Handlers must be deterministic: no clock, randomness, I/O or map
// iteration order. body is shared with the verifier's cache: read it, never
// modify it.
type TxHandler func(c *TxContext, body []byte) error

// Ledger applies blocks. It holds the tx handlers and the verifiers, no
// state; one Ledger serves any number of goroutines and chains.
type Ledger struct {
	handlers map[TxType]TxHandler
	hooks    []endBlockHook
	verifier Verifier
	evidence EvidenceVerifier
	workers  int
}

// Option configures a Ledger.
type Option func(*Ledger) error

// WithTxHandler adds the handler of a tx type: the extension point for the
// market's txs. Registering a type twice (including a built-in one) is an
// error.
func WithTxHandler(t TxType, h TxHandler) Option {
	return func(l *Ledger) error {
		if t == "" || h == nil {
			return fmt.Errorf("ledger: WithTxHandler(%q): empty type or nil handler", t)
		}
		if _, ok := l.handlers[t]; ok {
			return fmt.Errorf("%w: %q", ErrDuplicateHandler, t)
		}
		l.handlers[t] = h
		return nil
	}
}

// EndBlockHook runs at the end of every block, after the txs and unbonding
// releases and before fees and rewards are paid (so what it moves to the
// fee pool is paid out in the same block). It is for work no tx triggers:
// the market's deadlines and challenge windows. c.Sender is empty. If it
// returns an error its changes are undone and an EventHookFailed records
// the error; the block stays valid.
type EndBlockHook func(c *TxContext) error

type endBlockHook struct {
	name string
	f    EndBlockHook
}

// WithEndBlock adds an end-of-block hook. Hooks run in the order added;
// names must be unique.
func WithEndBlock(name string, f EndBlockHook) Option {
	return func(l *Ledger) error {
		if name == "" || f == nil {
			return fmt.Errorf("ledger: WithEndBlock(%q): empty name or nil hook", name)
		}
		for _, h := range l.hooks {
			if h.name == name {
				return fmt.Errorf("%w: end-block hook %q", ErrDuplicateHandler, name)
			}
		}
		l.hooks = append(l.hooks, endBlockHook{name, f})
		return nil
	}
}

// WithVerifier sets the tx verifier. Default: a CachingVerifier over
// SigVerifier holding 65,536 txs; pass the mempool's verifier so txs it
// already checked are not checked again.
func WithVerifier(v Verifier) Option {
	return func(l *Ledger) error {
		if v == nil {
			return fmt.Errorf("ledger: WithVerifier(nil)")
		}
		l.verifier = v
		return nil
	}
}

// WithEvidenceVerifier sets the evidence verifier. Default: EnvelopeEvidence.
func WithEvidenceVerifier(v EvidenceVerifier) Option {
	return func(l *Ledger) error {
		if v == nil {
			return fmt.Errorf("ledger: WithEvidenceVerifier(nil)")
		}
		l.evidence = v
		return nil
	}
}

// WithVerifyWorkers sets how many goroutines verify a block's tx
// signatures (default GOMAXPROCS). Results do not depend on it.
func WithVerifyWorkers(n int) Option {
	return func(l *Ledger) error {
		if n < 1 {
			return fmt.Errorf("ledger: WithVerifyWorkers(%d): need at least 1", n)
		}
		l.workers = n
		return nil
	}
}

// New returns a Ledger with the built-in tx types (transfer, stake,
// unstake, unjail) and the given options.
func New(opts ...Option) (*Ledger, error) {
	l := &Ledger{
		handlers: map[TxType]TxHandler{
			TxTransfer: handleTransfer,
			TxStake:    handleStake,
			TxUnstake:  handleUnstake,
			TxUnjail:   handleUnjail,
		},
		evidence: EnvelopeEvidence{},
		workers:  runtime.GOMAXPROCS(0),
	}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	if l.verifier == nil {
		// Made only when no option set one: its table is sized for
		// 65,536 txs, which a chain built per test run need not pay for.
		l.verifier = NewCachingVerifier(SigVerifier{}, 1<<16)
	}
	return l, nil
}

// Verifier is the tx verifier Apply uses; a mempool should verify through it.
func (l *Ledger) Verifier() Verifier { return l.verifier }

// Apply executes block on st and returns the resulting state and its events.
// st is never modified. If the block is invalid (see the errors in
// errors.go) Apply returns an error and no state: the block changes nothing.
// Apply checks every header field, including StateHash against the hash of
// the state it computes.
func (l *Ledger) Apply(st *State, b *Block) (*State, []Event, error) {
	return l.apply(st, b, true)
}

// Propose builds the block a proposer should offer at st.Height()+1: it
// keeps the candidate txs and evidence that can go in (in order, skipping
// those that would make the block invalid: bad signature or nonce, fee not
// payable, duplicate or invalid evidence, over the size caps), fills the
// roots and StateHash, and returns the block with its resulting state and
// events. hdr supplies ChainID, Time and Proposer; the other fields are
// overwritten. Txs that fail only in their body stay in (with a failure
// receipt), as they would in Apply. Skipped txs are returned with the
// reason, so the mempool can drop the hopeless ones (ErrBadTx, a used
// nonce, ErrFeeTooLow) and keep the rest (ErrBlockFull, a future nonce, a
// fee the sender may yet afford). Evidence that does not fit under
// MaxBlockEvidence is left for a later block; the caller keeps pending
// evidence until a block includes it or it expires.
func (l *Ledger) Propose(st *State, hdr Header, txs [][]byte, evs []Evidence) (*Block, *State, []Event, []SkippedTx, error) {
	hdr.Height = st.height + 1
	hdr.PrevHash = st.last
	w, err := l.begin(st, &hdr)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	w.events = make([]Event, 0, eventsHint(len(txs)))
	var keptEv []Evidence
	for i := range evs {
		if len(keptEv) >= int(st.params.MaxBlockEvidence) {
			break
		}
		mark := w.mark()
		if err := w.evidence(l, &evs[i]); err != nil {
			w.rollback(mark)
			continue
		}
		w.commitMark()
		keptEv = append(keptEv, evs[i])
	}
	vtx := l.verifyAll(st.chainID, txs)
	var kept [][]byte
	var skipped []SkippedTx
	for i, raw := range txs {
		err := vtx[i].err
		if err == nil && len(kept) >= int(st.params.MaxBlockTxs) {
			err = ErrBlockFull
		}
		if err == nil {
			err = w.tx(l, vtx[i].tx)
		}
		if err != nil {
			skipped = append(skipped, SkippedTx{Tx: raw, Err: err})
			continue
		}
		kept = append(kept, raw)
	}
	ns := w.finish()
	blk := &Block{Header: hdr, Txs: kept, Evidence: keptEv}
	blk.Header.TxRoot = TxRoot(kept)
	blk.Header.EvidenceRoot = EvidenceRoot(keptEv)
	blk.Header.StateHash = ns.hash
	ns.last = blk.Header.Hash()
	return blk, ns, w.events, skipped, nil
}

// SkippedTx is a candidate tx Propose left out, and why.
type SkippedTx struct {
	Tx  []byte
	Err error
}

func (l *Ledger) apply(st *State, b *Block, check bool) (*State, []Event, error) {
	h := &b.Header
	if h.Height != st.height+1 {
		return nil, nil, fmt.Errorf("%w: block %d on state %d", ErrWrongHeight, h.Height, st.height)
	}
	if h.PrevHash != st.last {
		return nil, nil, fmt.Errorf("%w: %x, want %x", ErrPrevHash, h.PrevHash[:4], st.last[:4])
	}
	if len(b.Txs) > int(st.params.MaxBlockTxs) || len(b.Evidence) > int(st.params.MaxBlockEvidence) {
		return nil, nil, fmt.Errorf("%w: %d txs, %d evidence", ErrTooManyTxs, len(b.Txs), len(b.Evidence))
	}
	if TxRoot(b.Txs) != h.TxRoot || EvidenceRoot(b.Evidence) != h.EvidenceRoot {
		return nil, nil, ErrBodyHash
	}
	w, err := l.begin(st, h)
	if err != nil {
		return nil, nil, err
	}
	w.events = make([]Event, 0, eventsHint(len(b.Txs)))
	for i := range b.Evidence {
		if err := w.evidence(l, &b.Evidence[i]); err != nil {
			return nil, nil, fmt.Errorf("evidence %d: %w", i, err)
		}
	}
	w.commitMark()
	vtx := l.verifyAll(st.chainID, b.Txs)
	for i := range vtx {
		if vtx[i].err != nil {
			return nil, nil, fmt.Errorf("tx %d: %w", i, vtx[i].err)
		}
		if err := w.tx(l, vtx[i].tx); err != nil {
			return nil, nil, fmt.Errorf("tx %d: %w", i, err)
		}
	}
	ns := w.finish()
	if check && ns.hash != h.StateHash {
		return nil, nil, fmt.Errorf("%w: computed %x, header says %x", ErrStateHash, ns.hash[:8], h.StateHash[:8])
	}
	ns.last = h.Hash()
	return ns, w.events, nil
}

// eventsHint is the room to reserve for the events of a block of n txs: a
// plain tx emits two (its own and its body's), and a block of thousands
// would otherwise regrow (and copy) the slice a dozen times.
func eventsHint(n int) int { return 2*n + 16 }

type verified struct {
	tx  *VerifiedTx
	err error
}

// verifyAll verifies txs on l.workers goroutines. Each result lands at its
// tx's index, so the outcome does not depend on scheduling.
func (l *Ledger) verifyAll(chainID string, txs [][]byte) []verified {
	out := make([]verified, len(txs))
	workers := min(l.workers, (len(txs)+63)/64)
	if workers <= 1 {
		for i, raw := range txs {
			out[i].tx, out[i].err = l.verifier.VerifyTx(chainID, raw)
		}
		return out
	}
	// Workers take batches from a shared counter, so a run of uncached txs
	// does not land on one worker.
	const batch = 32
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				start := int(next.Add(batch)) - batch
				if start >= len(txs) {
					return
				}
				for i := start; i < min(start+batch, len(txs)); i++ {
					out[i].tx, out[i].err = l.verifier.VerifyTx(chainID, txs[i])
				}
			}
		})
	}
	wg.Wait()
	return out
}

// work is the mutable overlay of one block's execution. Every change goes
// through a method that records how to undo it, so a failing tx body (or a
// proposer's rejected candidate) is rolled back exactly.
type work struct {
	l        *Ledger
	st       *State
	hdr      *Header
	vals     []Validator // the set of this height
	accounts *smapTx[Account]
	bonds    *smapTx[Bond]
	escrow   *smapTx[uint64]
	ext      *smapTx[[]byte]

	unbonding []Unbonding
	slashed   []slashRecord
	minted    uint64
	burned    uint64
	feePool   uint64

	undo   []func()
	events []Event
}

func (l *Ledger) begin(st *State, h *Header) (*work, error) {
	if h.ChainID != st.chainID {
		return nil, fmt.Errorf("%w: %q, want %q", ErrWrongChain, h.ChainID, st.chainID)
	}
	vals, err := ValidatorSet(st, st.height+1)
	if err != nil {
		return nil, err
	}
	if _, ok := slices.BinarySearchFunc(vals, h.Proposer, func(v Validator, id string) int { return cmpString(v.ID, id) }); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProposer, h.Proposer)
	}
	return &work{
		l:         l,
		st:        st,
		hdr:       h,
		vals:      vals,
		accounts:  st.accounts.begin(encAccount),
		bonds:     st.bonds.begin(encBond),
		escrow:    st.escrow.begin(encU64),
		ext:       st.ext.begin(encBytes),
		unbonding: st.unbonding, // copied on first write (cowUnbonding)
		slashed:   st.slashed,
		minted:    st.minted,
		burned:    st.burned,
	}, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (w *work) height() uint64 { return w.hdr.Height }

// mark, rollback and commitMark delimit an undoable unit (one tx body, one
// evidence item).
func (w *work) mark() int { return len(w.undo) }

func (w *work) rollback(m int) {
	for i := len(w.undo) - 1; i >= m; i-- {
		w.undo[i]()
	}
	w.undo = w.undo[:m]
}

// commitMark forgets the undo log: what happened so far is final.
func (w *work) commitMark() { w.undo = w.undo[:0] }

func (w *work) account(id string) Account { a, _ := w.accounts.get(id); return a }

func (w *work) setAccount(id string, a Account) {
	old, existed := w.accounts.get(id)
	w.undo = append(w.undo, func() {
		if existed {
			w.accounts.set(id, old)
		} else {
			w.accounts.del(id)
		}
	})
	w.accounts.set(id, a)
}

func (w *work) bond(id string) Bond { b, _ := w.bonds.get(id); return b }

func (w *work) setBond(id string, b Bond) {
	old, existed := w.bonds.get(id)
	w.undo = append(w.undo, func() {
		if existed {
			w.bonds.set(id, old)
		} else {
			w.bonds.del(id)
		}
	})
	if b.isZero() {
		w.bonds.del(id)
	} else {
		w.bonds.set(id, b)
	}
}

func (w *work) escrowOf(id string) uint64 { v, _ := w.escrow.get(id); return v }

func (w *work) setEscrow(id string, v uint64) {
	old, existed := w.escrow.get(id)
	w.undo = append(w.undo, func() {
		if existed {
			w.escrow.set(id, old)
		} else {
			w.escrow.del(id)
		}
	})
	if v == 0 {
		w.escrow.del(id)
	} else {
		w.escrow.set(id, v)
	}
}

func (w *work) setExt(key string, v []byte, del bool) {
	old, existed := w.ext.get(key)
	w.undo = append(w.undo, func() {
		if existed {
			w.ext.set(key, old)
		} else {
			w.ext.del(key)
		}
	})
	if del {
		w.ext.del(key)
	} else {
		w.ext.set(key, slices.Clone(v))
	}
}

func (w *work) setUnbonding(u []Unbonding) {
	old := w.unbonding
	w.undo = append(w.undo, func() { w.unbonding = old })
	w.unbonding = u
}

func (w *work) addBurned(v uint64) {
	old := w.burned
	w.undo = append(w.undo, func() { w.burned = old })
	w.burned += v
}

func (w *work) addFeePool(v uint64) {
	old := w.feePool
	w.undo = append(w.undo, func() { w.feePool = old })
	w.feePool += v
}

func (w *work) emit(e Event) {
	n := len(w.events)
	w.undo = append(w.undo, func() { w.events = w.events[:n] })
	e.Height = w.height()
	w.events = append(w.events, e)
}

// credit adds v to id's balance. It cannot overflow: every balance is part
// of the supply, which fits in uint64.
func (w *work) credit(id string, v uint64) {
	if v == 0 {
		return
	}
	a := w.account(id)
	a.Balance += v
	w.setAccount(id, a)
}

func (w *work) debit(id string, v uint64) error {
	a := w.account(id)
	if a.Balance < v {
		return fmt.Errorf("%w: %s has %d, needs %d", ErrInsufficientFunds, id, a.Balance, v)
	}
	if v == 0 {
		return nil
	}
	a.Balance -= v
	w.setAccount(id, a)
	return nil
}

// tx executes one verified tx. It returns an error only when the tx makes
// the block invalid (bad nonce, fee); a failing body leaves a receipt.
func (w *work) tx(l *Ledger, v *VerifiedTx) error {
	a, _ := w.accounts.get(v.Sender)
	switch {
	case v.Tx.Nonce != a.Nonce:
		return fmt.Errorf("%w: %s sent nonce %d, account is at %d", ErrBadNonce, v.Sender, v.Tx.Nonce, a.Nonce)
	case v.Tx.Fee < w.st.params.MinFee:
		return fmt.Errorf("%w: %d < %d", ErrFeeTooLow, v.Tx.Fee, w.st.params.MinFee)
	case a.Balance < v.Tx.Fee:
		return fmt.Errorf("%w: %s has %d, fee %d", ErrCannotPayFee, v.Sender, a.Balance, v.Tx.Fee)
	}
	a.Balance -= v.Tx.Fee
	a.Nonce++
	w.setAccount(v.Sender, a)
	w.addFeePool(v.Tx.Fee)
	w.commitMark()

	txid := hex.EncodeToString(v.Hash[:])
	c := &TxContext{w: w, Sender: v.Sender, Hash: v.Hash, Type: v.Tx.Type, id: txid}
	h, ok := l.handlers[v.Tx.Type]
	var err error
	if !ok {
		err = fmt.Errorf("%w: %q", ErrUnknownTxType, v.Tx.Type)
	} else {
		err = h(c, v.Tx.Body)
	}
	if err != nil {
		w.rollback(0)
		w.emit(Event{Kind: EventTxFailed, Tx: txid, TxType: v.Tx.Type, Account: v.Sender, Amount: v.Tx.Fee, Error: err.Error()})
	} else {
		w.emit(Event{Kind: EventTx, Tx: txid, TxType: v.Tx.Type, Account: v.Sender, Amount: v.Tx.Fee})
	}
	w.commitMark()
	return nil
}

// finish runs the end-of-block steps (unbonding releases, rewards, the next
// validator set, pruning) and freezes the result. The caller sets last, the
// hash of the header, which the state hash does not cover.
func (w *work) finish() *State {
	h := w.height()
	// Release matured unbonding entries; the slice is sorted by Release.
	n := 0
	for n < len(w.unbonding) && w.unbonding[n].Release <= h {
		u := w.unbonding[n]
		if u.Amount > 0 { // an entry can be slashed to nothing
			w.credit(u.Account, u.Amount)
			w.emit(Event{Kind: EventUnbonded, Account: u.Account, Role: u.Role, Amount: u.Amount})
		}
		n++
	}
	if n > 0 {
		w.unbonding = slices.Clone(w.unbonding[n:])
	}
	for _, hk := range w.l.hooks {
		c := &TxContext{w: w, Type: TxType("end_block/" + hk.name)}
		w.commitMark()
		if err := hk.f(c); err != nil {
			w.rollback(0)
			w.emit(Event{Kind: EventHookFailed, Detail: hk.name, Error: err.Error()})
		}
	}
	w.commitMark()
	w.distribute()

	sets := w.nextSets()
	low := uint64(1)
	if h+1 > w.st.params.EvidenceMaxAge {
		low = h + 1 - w.st.params.EvidenceMaxAge
	}
	slashed := w.slashed
	if len(slashed) > 0 && slashed[0].Height < low {
		slashed = slices.DeleteFunc(slices.Clone(slashed), func(r slashRecord) bool { return r.Height < low })
	}
	ns := &State{
		chainID:       w.st.chainID,
		params:        w.st.params,
		height:        h,
		time:          w.hdr.Time,
		genesisSupply: w.st.genesisSupply,
		minted:        w.minted,
		burned:        w.burned,
		accounts:      w.accounts.commit(),
		bonds:         w.bonds.commit(),
		escrow:        w.escrow.commit(),
		ext:           w.ext.commit(),
		unbonding:     w.unbonding,
		sets:          pruneSets(sets, low),
		slashed:       slashed,
	}
	ns.seal(w.st)
	w.undo = nil
	return ns
}

// distribute pays the block's fees and reward to the validators of this
// height in proportion to their power, rounding each share down; the
// remainder goes to the proposer. The reward is minted, saturating so the
// supply never overflows uint64.
func (w *work) distribute() {
	circulating := w.st.genesisSupply + w.minted - w.burned
	reward := min(w.st.params.Emission.Reward(w.height()), ^uint64(0)-circulating)
	if reward > 0 {
		w.minted += reward
		w.emit(Event{Kind: EventMint, Amount: reward})
	}
	pool := w.feePool + reward
	w.feePool = 0
	if pool == 0 {
		return
	}
	var total uint64
	for _, v := range w.vals {
		total += uint64(v.Power)
	}
	paid := uint64(0)
	for _, v := range w.vals {
		hi, lo := bits.Mul64(pool, uint64(v.Power))
		share, _ := bits.Div64(hi, lo, total) // hi < total since Power <= total
		if share == 0 {
			continue
		}
		w.credit(v.ID, share)
		w.emit(Event{Kind: EventReward, Account: v.ID, Amount: share})
		paid += share
	}
	if rest := pool - paid; rest > 0 {
		w.credit(w.hdr.Proposer, rest)
		w.emit(Event{Kind: EventReward, Account: w.hdr.Proposer, Amount: rest, Detail: "rounding remainder"})
	}
}

// equalSets compares two validator sets by ID, power and stake.
func equalSets(a, b []Validator) bool {
	return slices.EqualFunc(a, b, func(x, y Validator) bool {
		return x.ID == y.ID && x.Power == y.Power && x.Stake == y.Stake && bytes.Equal(x.PubKey, y.PubKey)
	})
}
