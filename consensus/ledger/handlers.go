package ledger

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/gpunode/gpunode/protocol"
)

// TxContext is what a TxHandler sees and may change while its tx executes.
// Every mutation is undone if the handler returns an error. Amount moves
// keep the supply invariant by construction: tokens only move between
// balances, stakes, unbonding and escrows, or are burned (counted).
type TxContext struct {
	w      *work
	id     string
	Sender string   // peer ID string of the tx author; has paid the fee already
	Hash   [32]byte // TxHash of the envelope
	Type   TxType
}

// Height is the height of the block being applied.
func (c *TxContext) Height() uint64 { return c.w.height() }

// Time is the block header time (unix ms). Informational: do not base
// safety on it.
func (c *TxContext) Time() int64 { return c.w.hdr.Time }

// ChainID is the chain's ID, for opening signed messages a tx carries
// (the market's bid envelopes).
func (c *TxContext) ChainID() string { return c.w.st.chainID }

// Params are the chain parameters.
func (c *TxContext) Params() Params { return c.w.st.params }

// PrevBlockHash is the hash of the previous block: a value every node
// agrees on, usable as weak randomness (e.g. for spot checks); the
// previous proposer had some influence on it.
func (c *TxContext) PrevBlockHash() [32]byte { return c.w.hdr.PrevHash }

// Proposer is the proposer of the block being applied.
func (c *TxContext) Proposer() string { return c.w.hdr.Proposer }

// Decode strictly decodes a tx body.
func (c *TxContext) Decode(body []byte, v any) error {
	if err := protocol.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	return nil
}

// Balance is id's spendable balance.
func (c *TxContext) Balance(id string) uint64 { return c.w.account(id).Balance }

// Bond is id's stake and jail status.
func (c *TxContext) Bond(id string) Bond { return c.w.bond(id) }

// Validators is the validator set of the block being applied, in ID order
// (a copy). The market weighs validators' re-run attestations by its
// stakes.
func (c *TxContext) Validators() []Validator {
	out := make([]Validator, len(c.w.vals))
	for i, v := range c.w.vals {
		out[i] = v
		out[i].PubKey = slices.Clone(v.PubKey)
	}
	return out
}

// Transfer moves amount from one balance to another.
func (c *TxContext) Transfer(from, to string, amount uint64) error {
	if err := c.w.debit(from, amount); err != nil {
		return err
	}
	c.w.credit(to, amount)
	return nil
}

// EscrowBalance is the amount held in escrow id.
func (c *TxContext) EscrowBalance(id string) uint64 { return c.w.escrowOf(id) }

// Lock moves amount from from's balance into escrow id (created on first
// use). Escrow IDs are the handler's namespace, e.g. "job/<cid>".
func (c *TxContext) Lock(from, escrowID string, amount uint64) error {
	if escrowID == "" {
		return fmt.Errorf("%w: empty escrow ID", ErrUnknownEscrow)
	}
	if err := c.w.debit(from, amount); err != nil {
		return err
	}
	c.w.setEscrow(escrowID, c.w.escrowOf(escrowID)+amount)
	c.Emit(Event{Kind: EventEscrow, Account: from, Counterparty: escrowID, Amount: amount, Detail: "lock"})
	return nil
}

func (c *TxContext) takeEscrow(escrowID string, amount uint64) error {
	have := c.w.escrowOf(escrowID)
	if have < amount {
		return fmt.Errorf("%w: escrow %q holds %d, needs %d", ErrInsufficientFunds, escrowID, have, amount)
	}
	c.w.setEscrow(escrowID, have-amount)
	return nil
}

// Release pays amount from escrow id to to's balance.
func (c *TxContext) Release(escrowID, to string, amount uint64) error {
	if err := c.takeEscrow(escrowID, amount); err != nil {
		return err
	}
	c.w.credit(to, amount)
	c.Emit(Event{Kind: EventEscrow, Account: to, Counterparty: escrowID, Amount: amount, Detail: "release"})
	return nil
}

// PayValidators moves amount from escrow id into this block's fee pool,
// which the block's validators share like tx fees (the market fee).
func (c *TxContext) PayValidators(escrowID string, amount uint64) error {
	if err := c.takeEscrow(escrowID, amount); err != nil {
		return err
	}
	c.w.addFeePool(amount)
	c.Emit(Event{Kind: EventEscrow, Counterparty: escrowID, Amount: amount, Detail: "fee"})
	return nil
}

// BurnEscrow destroys amount held in escrow id.
func (c *TxContext) BurnEscrow(escrowID string, amount uint64) error {
	if err := c.takeEscrow(escrowID, amount); err != nil {
		return err
	}
	c.w.addBurned(amount)
	c.Emit(Event{Kind: EventBurn, Counterparty: escrowID, Amount: amount})
	return nil
}

// SlashStake burns up to amount of id's bonded stake in role and returns
// how much was burned (for the market's provider penalties).
func (c *TxContext) SlashStake(id string, role Role, amount uint64) (uint64, error) {
	if !role.valid() {
		return 0, fmt.Errorf("%w: %q", ErrBadRole, role)
	}
	b := c.w.bond(id)
	burn := min(b.stake(role), amount)
	b.setStake(role, b.stake(role)-burn)
	c.w.setBond(id, b)
	c.w.addBurned(burn)
	c.Emit(Event{Kind: EventSlash, Account: id, Role: role, Amount: burn})
	return burn, nil
}

// Ext returns the extension record under key (a copy).
func (c *TxContext) Ext(key string) ([]byte, bool) {
	v, ok := c.w.ext.get(key)
	return slices.Clone(v), ok
}

// SetExt stores an extension record: the market keeps jobs, leases and
// reputation here under its own key prefix. Records are part of the state
// hash. Values should be deterministic CBOR.
func (c *TxContext) SetExt(key string, value []byte) { c.w.setExt(key, value, false) }

// DeleteExt removes an extension record.
func (c *TxContext) DeleteExt(key string) { c.w.setExt(key, nil, true) }

// Emit records an event of this tx (dropped if the handler fails).
func (c *TxContext) Emit(e Event) {
	if e.Tx == "" {
		e.Tx, e.TxType = c.id, c.Type
	}
	c.w.emit(e)
}

func handleTransfer(c *TxContext, body []byte) error {
	var t Transfer
	if err := c.Decode(body, &t); err != nil {
		return err
	}
	if t.Amount == 0 {
		return fmt.Errorf("%w: zero transfer", ErrBadAmount)
	}
	// Only valid IDs ever get an account, so the costly parse is needed
	// for new recipients only.
	if _, exists := c.w.accounts.get(t.To); !exists && !validAccountID(t.To) {
		return fmt.Errorf("%w: %q", ErrBadAccount, t.To)
	}
	if err := c.Transfer(c.Sender, t.To, t.Amount); err != nil {
		return err
	}
	c.Emit(Event{Kind: EventTransfer, Account: c.Sender, Counterparty: t.To, Amount: t.Amount})
	return nil
}

func handleStake(c *TxContext, body []byte) error {
	var s Stake
	if err := c.Decode(body, &s); err != nil {
		return err
	}
	if !s.Role.valid() {
		return fmt.Errorf("%w: %q", ErrBadRole, s.Role)
	}
	if s.Amount == 0 {
		return fmt.Errorf("%w: zero stake", ErrBadAmount)
	}
	// Debit first: once the sender is known to hold the amount, the sum
	// below cannot overflow (both are parts of the supply).
	if err := c.w.debit(c.Sender, s.Amount); err != nil {
		return err
	}
	b := c.w.bond(c.Sender)
	total := b.stake(s.Role) + s.Amount
	min := c.Params().MinProviderStake
	if s.Role == RoleValidator {
		min = c.Params().MinValidatorStake
	}
	if total < min {
		return fmt.Errorf("%w: %s stake would be %d, minimum %d", ErrBelowMinStake, s.Role, total, min)
	}
	b.setStake(s.Role, total)
	c.w.setBond(c.Sender, b)
	c.Emit(Event{Kind: EventStake, Account: c.Sender, Role: s.Role, Amount: s.Amount})
	return nil
}

func handleUnstake(c *TxContext, body []byte) error {
	var u Unstake
	if err := c.Decode(body, &u); err != nil {
		return err
	}
	if !u.Role.valid() {
		return fmt.Errorf("%w: %q", ErrBadRole, u.Role)
	}
	b := c.w.bond(c.Sender)
	if u.Amount == 0 || u.Amount > b.stake(u.Role) {
		return fmt.Errorf("%w: unstake %d of %d", ErrBadAmount, u.Amount, b.stake(u.Role))
	}
	b.setStake(u.Role, b.stake(u.Role)-u.Amount)
	c.w.setBond(c.Sender, b)
	h := c.Height()
	e := Unbonding{Account: c.Sender, Role: u.Role, Amount: u.Amount, Since: h, Release: h + c.Params().UnbondingPeriod}
	// Keep the queue sorted by Release; equal releases keep insertion order.
	i, _ := slices.BinarySearchFunc(c.w.unbonding, e.Release+1, func(x Unbonding, r uint64) int { return cmp.Compare(x.Release, r) })
	c.w.setUnbonding(slices.Insert(slices.Clone(c.w.unbonding), i, e))
	c.Emit(Event{Kind: EventUnstake, Account: c.Sender, Role: u.Role, Amount: u.Amount, Release: e.Release})
	return nil
}

func handleUnjail(c *TxContext, body []byte) error {
	var u Unjail
	if err := c.Decode(body, &u); err != nil {
		return err
	}
	b := c.w.bond(c.Sender)
	if !b.Jailed {
		return ErrNotJailed
	}
	if c.Height() < b.JailedUntil {
		return fmt.Errorf("%w: until height %d", ErrStillJailed, b.JailedUntil)
	}
	b.Jailed, b.JailedUntil = false, 0
	c.w.setBond(c.Sender, b)
	c.Emit(Event{Kind: EventUnjail, Account: c.Sender})
	return nil
}

// evidence checks one evidence item and punishes the offender: burn
// SlashFraction of its bonded validator stake and of validator stake it
// unstaked in block ev.Height-1 or later (an unstake in block s leaves the
// set of s+2, so that stake still backed the offending vote), and jail it
// for JailPeriod blocks. One offence per (validator, height) is punished
// once, whatever the round, type or message pair.
func (w *work) evidence(l *Ledger, ev *Evidence) error {
	h := w.height()
	p := w.st.params
	if ev.Height == 0 || ev.Height >= h {
		return fmt.Errorf("%w: offence height %d in block %d", ErrBadEvidence, ev.Height, h)
	}
	if h-ev.Height > p.EvidenceMaxAge {
		return fmt.Errorf("%w: offence at %d, block %d, max age %d", ErrExpiredEvidence, ev.Height, h, p.EvidenceMaxAge)
	}
	rec := slashRecord{Validator: ev.Validator, Height: ev.Height}
	i, found := slices.BinarySearchFunc(w.slashed, rec, cmpSlash)
	if found {
		return fmt.Errorf("%w: %s at height %d", ErrDuplicateEvidence, ev.Validator, ev.Height)
	}
	vals, err := ValidatorSet(w.st, ev.Height)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadEvidence, err)
	}
	if !slices.ContainsFunc(vals, func(v Validator) bool { return v.ID == ev.Validator }) {
		return fmt.Errorf("%w: %s not a validator at height %d", ErrBadEvidence, ev.Validator, ev.Height)
	}
	if err := l.evidence.VerifyEvidence(w.st.chainID, ev, vals); err != nil {
		if !errors.Is(err, ErrBadEvidence) {
			err = fmt.Errorf("%w: %w", ErrBadEvidence, err)
		}
		return err
	}
	old := w.slashed
	w.undo = append(w.undo, func() { w.slashed = old })
	w.slashed = slices.Insert(slices.Clone(old), i, rec)

	b := w.bond(ev.Validator)
	burn := p.SlashFraction.Of(b.Validator)
	b.Validator -= burn
	unb := slices.Clone(w.unbonding)
	for j := range unb {
		u := &unb[j]
		if u.Account == ev.Validator && u.Role == RoleValidator && u.Since+1 >= ev.Height {
			cut := p.SlashFraction.Of(u.Amount)
			u.Amount -= cut
			burn += cut
		}
	}
	// Entries slashed to zero stay in the queue and release nothing; harmless.
	w.setUnbonding(unb)
	b.Jailed = true
	b.JailedUntil = max(b.JailedUntil, h+p.JailPeriod)
	w.setBond(ev.Validator, b)
	w.addBurned(burn)
	w.emit(Event{Kind: EventSlash, Account: ev.Validator, Role: RoleValidator, Amount: burn, Detail: fmt.Sprintf("double sign at height %d round %d", ev.Height, ev.Round)})
	w.emit(Event{Kind: EventJail, Account: ev.Validator, Release: b.JailedUntil})
	return nil
}

func cmpSlash(a, b slashRecord) int {
	if c := cmp.Compare(a.Validator, b.Validator); c != 0 {
		return c
	}
	return cmp.Compare(a.Height, b.Height)
}
