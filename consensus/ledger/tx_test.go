package ledger

import (
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// rewardsTo sums what id earned from block rewards in evs.
func rewardsTo(evs []Event, id string) uint64 {
	var s uint64
	for _, e := range eventsOf(evs, EventReward) {
		if e.Account == id {
			s += e.Amount
		}
	}
	return s
}

// TestTxTable runs one tx per case from a plain account (key 4; keys 0-3
// are the genesis validators, key 5 another plain account) and checks its
// receipt and effects. A failing body must change nothing but the fee and
// the nonce.
func TestTxTable(t *testing.T) {
	type ctx struct {
		f        *fixture
		from, to string
		before   *State
		evs      []Event
	}
	cases := []struct {
		name    string
		setup   func(f *fixture, from string) // blocks applied before the tx
		typ     TxType
		body    func(c ctx) any
		wantErr error // the failure receipt's error; nil for success
		check   func(t *testing.T, c ctx)
	}{
		{name: "transfer", typ: TxTransfer,
			body: func(c ctx) any { return Transfer{To: c.to, Amount: 250} },
			check: func(t *testing.T, c ctx) {
				if got, want := balance(c.f.st, c.to), balance(c.before, c.to)+250; got != want {
					t.Errorf("recipient balance = %d; want %d", got, want)
				}
				if got, want := balance(c.f.st, c.from), balance(c.before, c.from)-250-3; got != want {
					t.Errorf("sender balance = %d; want %d", got, want)
				}
			}},
		{name: "transfer to self", typ: TxTransfer,
			body: func(c ctx) any { return Transfer{To: c.from, Amount: 10} },
			check: func(t *testing.T, c ctx) {
				if got, want := balance(c.f.st, c.from), balance(c.before, c.from)-3; got != want {
					t.Errorf("sender balance = %d; want %d", got, want)
				}
			}},
		{name: "transfer to new account", typ: TxTransfer,
			body: func(c ctx) any { return Transfer{To: NewKeyringForTest(99).IDs[0], Amount: 7} },
			check: func(t *testing.T, c ctx) {
				if got := balance(c.f.st, NewKeyringForTest(99).IDs[0]); got != 7 {
					t.Errorf("new account balance = %d; want 7", got)
				}
			}},
		{name: "transfer zero", typ: TxTransfer, wantErr: ErrBadAmount,
			body: func(c ctx) any { return Transfer{To: c.to, Amount: 0} }},
		{name: "transfer overdraft", typ: TxTransfer, wantErr: ErrInsufficientFunds,
			body: func(c ctx) any { return Transfer{To: c.to, Amount: balance(c.before, c.from)} }}, // fee makes it one short
		{name: "transfer to garbage ID", typ: TxTransfer, wantErr: ErrBadAccount,
			body: func(c ctx) any { return Transfer{To: "not-a-peer", Amount: 1} }},
		{name: "transfer with wrong body type", typ: TxTransfer, wantErr: ErrBadBody,
			body: func(c ctx) any { return "not a struct" }},
		{name: "stake validator", typ: TxStake,
			body: func(c ctx) any { return Stake{Role: RoleValidator, Amount: 500} },
			check: func(t *testing.T, c ctx) {
				if got := c.f.st.Bond(c.from).Validator; got != 500 {
					t.Errorf("validator stake = %d; want 500", got)
				}
				if got, want := balance(c.f.st, c.from), balance(c.before, c.from)-503; got != want {
					t.Errorf("balance = %d; want %d", got, want)
				}
			}},
		{name: "stake provider", typ: TxStake,
			body: func(c ctx) any { return Stake{Role: RoleProvider, Amount: 10} },
			check: func(t *testing.T, c ctx) {
				if got := c.f.st.Bond(c.from).Provider; got != 10 {
					t.Errorf("provider stake = %d; want 10", got)
				}
			}},
		{name: "stake below minimum", typ: TxStake, wantErr: ErrBelowMinStake,
			body: func(c ctx) any { return Stake{Role: RoleValidator, Amount: 99} }},
		{name: "stake bad role", typ: TxStake, wantErr: ErrBadRole,
			body: func(c ctx) any { return Stake{Role: "miner", Amount: 1000} }},
		{name: "stake zero", typ: TxStake, wantErr: ErrBadAmount,
			body: func(c ctx) any { return Stake{Role: RoleProvider, Amount: 0} }},
		{name: "stake more than balance", typ: TxStake, wantErr: ErrInsufficientFunds,
			body: func(c ctx) any { return Stake{Role: RoleProvider, Amount: balance(c.before, c.from)} }},
		{name: "unstake part", typ: TxUnstake,
			setup: func(f *fixture, from string) {
				f.run(f.tx(from, TxStake, 1, Stake{Role: RoleValidator, Amount: 1000}))
			},
			body: func(c ctx) any { return Unstake{Role: RoleValidator, Amount: 400} },
			check: func(t *testing.T, c ctx) {
				if got := c.f.st.Bond(c.from).Validator; got != 600 {
					t.Errorf("stake = %d; want 600", got)
				}
				u := c.f.st.Unbonding()
				want := Unbonding{Account: c.from, Role: RoleValidator, Amount: 400, Since: c.f.st.Height(), Release: c.f.st.Height() + c.f.st.Params().UnbondingPeriod}
				if len(u) != 1 || u[0] != want {
					t.Errorf("unbonding = %+v; want [%+v]", u, want)
				}
			}},
		{name: "unstake more than staked", typ: TxUnstake, wantErr: ErrBadAmount,
			setup: func(f *fixture, from string) {
				f.run(f.tx(from, TxStake, 1, Stake{Role: RoleProvider, Amount: 100}))
			},
			body: func(c ctx) any { return Unstake{Role: RoleProvider, Amount: 101} }},
		{name: "unstake other role", typ: TxUnstake, wantErr: ErrBadAmount,
			setup: func(f *fixture, from string) {
				f.run(f.tx(from, TxStake, 1, Stake{Role: RoleProvider, Amount: 100}))
			},
			body: func(c ctx) any { return Unstake{Role: RoleValidator, Amount: 1} }},
		{name: "unstake bad role", typ: TxUnstake, wantErr: ErrBadRole,
			body: func(c ctx) any { return Unstake{Role: "", Amount: 1} }},
		{name: "unjail when not jailed", typ: TxUnjail, wantErr: ErrNotJailed,
			body: func(c ctx) any { return Unjail{} }},
		{name: "unjail too early", typ: TxUnjail, wantErr: ErrStillJailed,
			setup: func(f *fixture, from string) { jail(f, from) },
			body:  func(c ctx) any { return Unjail{} }},
		{name: "unjail after jail period", typ: TxUnjail,
			setup: func(f *fixture, from string) {
				jail(f, from)
				for f.st.Height()+1 < f.st.Bond(from).JailedUntil {
					f.run()
				}
			},
			body: func(c ctx) any { return Unjail{} },
			check: func(t *testing.T, c ctx) {
				if b := c.f.st.Bond(c.from); b.Jailed {
					t.Errorf("still jailed: %+v", b)
				}
			}},
		{name: "unknown type", typ: "open_job", wantErr: ErrUnknownTxType,
			body: func(c ctx) any { return Transfer{To: c.to, Amount: 1} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 6, 4)
			from, to := f.keys.IDs[4], f.keys.IDs[5]
			if tc.setup != nil {
				tc.setup(f, from)
			}
			c := ctx{f: f, from: from, to: to, before: f.st}
			c.evs = f.run(f.tx(from, tc.typ, 3, tc.body(c)))
			fails := eventsOf(c.evs, EventTxFailed)
			oks := eventsOf(c.evs, EventTx)
			if tc.wantErr == nil {
				if len(fails) != 0 || len(oks) != 1 {
					t.Fatalf("receipts: %d ok, %d failed %+v; want 1 ok", len(oks), len(fails), fails)
				}
				tc.check(t, c)
				return
			}
			if len(fails) != 1 || len(oks) != 0 || !strings.Contains(fails[0].Error, tc.wantErr.Error()) {
				t.Fatalf("receipts: %d ok, failed %+v; want one failure with %q", len(oks), fails, tc.wantErr)
			}
			assertOnlyFeeAndNonce(t, c.before, f.st, from, 3, c.evs)
		})
	}
}

// assertOnlyFeeAndNonce checks that between before and after, from paid fee
// and advanced its nonce, validators got exactly their reward events, and
// nothing else changed (other balances, bonds, escrow, unbonding except
// releases).
func assertOnlyFeeAndNonce(t *testing.T, before, after *State, from string, fee uint64, evs []Event) {
	t.Helper()
	ab, _ := before.Account(from)
	aa, _ := after.Account(from)
	if aa.Nonce != ab.Nonce+1 {
		t.Errorf("nonce %d -> %d; want +1", ab.Nonce, aa.Nonce)
	}
	if want := ab.Balance - fee + rewardsTo(evs, from) + unbondedTo(evs, from); aa.Balance != want {
		t.Errorf("sender balance %d -> %d; want %d (fee %d only)", ab.Balance, aa.Balance, want, fee)
	}
	after.Accounts(func(id string, a Account) bool {
		if id == from {
			return true
		}
		b, _ := before.Account(id)
		if a.Nonce != b.Nonce || a.Balance != b.Balance+rewardsTo(evs, id)+unbondedTo(evs, id) {
			t.Errorf("account %s changed: %+v -> %+v", id, b, a)
		}
		return true
	})
	before.Bonds(func(id string, b Bond) bool {
		if after.Bond(id) != b {
			t.Errorf("bond of %s changed: %+v -> %+v", id, b, after.Bond(id))
		}
		return true
	})
	after.Bonds(func(id string, b Bond) bool {
		if before.Bond(id) != b {
			t.Errorf("bond of %s appeared: %+v", id, b)
		}
		return true
	})
	if len(after.Unbonding()) > len(before.Unbonding()) {
		t.Errorf("unbonding grew: %+v", after.Unbonding())
	}
}

func unbondedTo(evs []Event, id string) uint64 {
	var s uint64
	for _, e := range eventsOf(evs, EventUnbonded) {
		if e.Account == id {
			s += e.Amount
		}
	}
	return s
}

// jail makes from a jailed validator: it stakes, waits until it is in the
// set, and is convicted of a double sign.
func jail(f *fixture, from string) {
	f.t.Helper()
	f.run(f.tx(from, TxStake, 1, Stake{Role: RoleValidator, Amount: 1000}))
	f.run()
	f.run()
	ev, err := f.keys.Equivocate(testChain, from, f.st.Height(), 0)
	if err != nil {
		f.t.Fatal(err)
	}
	f.apply(f.block(nil, []Evidence{ev}))
	if !f.st.Bond(from).Jailed {
		f.t.Fatalf("not jailed after evidence")
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrWrongChain, ErrWrongHeight, ErrPrevHash, ErrStateHash, ErrBodyHash, ErrUnknownProposer, ErrBadTx,
		ErrBadNonce, ErrFeeTooLow, ErrCannotPayFee, ErrTooManyTxs, ErrBadEvidence, ErrExpiredEvidence, ErrDuplicateEvidence,
		ErrNoValidatorSet, ErrUnknownTxType, ErrBadBody, ErrInsufficientFunds, ErrBadAmount, ErrBadAccount, ErrBadRole,
		ErrNotJailed, ErrStillJailed, ErrJailed, ErrBelowMinStake, ErrUnknownEscrow}
	for i, a := range all {
		for j, b := range all {
			if i != j && (errors.Is(a, b) || strings.Contains(a.Error(), b.Error())) {
				t.Errorf("%q and %q overlap; receipts match errors by message", a, b)
			}
		}
	}
}

// TestNameCache: cached sender names are the peer IDs' strings, through
// generation rollovers, and the cache stays within two generations.
func TestNameCache(t *testing.T) {
	c := nameCache{size: 16}
	keys := NewKeyring(newRand(3), 2*c.size+5)
	for round := range 2 {
		for _, id := range keys.IDs {
			pid, err := peer.Decode(id)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.name(&protocol.Envelope{Author: []byte(pid)})
			if err != nil || got != id {
				t.Fatalf("round %d: name %q, %v; want %q", round, got, err, id)
			}
			if n := len(c.cur) + len(c.old); n > 2*c.size {
				t.Fatalf("cache holds %d names, bound %d", n, 2*c.size)
			}
		}
	}
	if _, err := c.name(&protocol.Envelope{Author: []byte("not a peer ID")}); err == nil {
		t.Fatal("a malformed author got a name")
	}
}
