package ledger

import (
	"errors"
	"testing"
)

func TestEmissionReward(t *testing.T) {
	e := Emission{InitialReward: 1000, EpochLength: 10, Decay: Fraction{1, 2}}
	cases := []struct{ h, want uint64 }{
		{0, 0}, {1, 1000}, {10, 1000}, {11, 500}, {20, 500}, {21, 250}, {31, 125}, {41, 62}, {51, 31},
		{101, 0}, {1 << 40, 0},
	}
	for _, c := range cases {
		if got := e.Reward(c.h); got != c.want {
			t.Errorf("Reward(%d) = %d; want %d", c.h, got, c.want)
		}
	}
	slow := Emission{InitialReward: 1 << 62, EpochLength: 1, Decay: Fraction{999, 1000}}
	prev := slow.Reward(1)
	for h := uint64(2); h < 5000; h += 97 {
		r := slow.Reward(h)
		if r >= prev && prev > 0 {
			t.Fatalf("Reward(%d) = %d not below %d", h, r, prev)
		}
		prev = r
	}
}

func TestFractionOf(t *testing.T) {
	cases := []struct {
		f    Fraction
		x    uint64
		want uint64
	}{
		{Fraction{1, 2}, 7, 3},
		{Fraction{5, 100}, 10_000, 500},
		{Fraction{0, 1}, 99, 0},
		{Fraction{1, 1}, ^uint64(0), ^uint64(0)},
		{Fraction{3, 4}, ^uint64(0), ^uint64(0)/4*3 + 2}, // floor(3(2^64-1)/4) computed in 128 bits
		{Fraction{1, 0}, 5, 0},
	}
	for _, c := range cases {
		if got := c.f.Of(c.x); got != c.want {
			t.Errorf("%s.Of(%d) = %d; want %d", c.f, c.x, got, c.want)
		}
	}
}

// TestRewardsByPower: fees and the block reward go to the height's
// validators in proportion to power; the rounding remainder goes to the
// proposer; minted counts the reward.
func TestRewardsByPower(t *testing.T) {
	keys := NewKeyring(newRand(3), 5)
	g := keys.TestGenesis(testChain, 0, 1_000_000, 0)
	for i, s := range []uint64{100, 200, 300} {
		if err := g.AddValidator(keys.IDs[i], s); err != nil {
			t.Fatal(err)
		}
	}
	g.Params.Emission.InitialReward = 1001
	st, err := InitialState(g)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := New()
	f := &fixture{t: t, keys: keys, st: st, l: l}
	sender := keys.IDs[4]
	evs := f.run(f.tx(sender, TxTransfer, 5, Transfer{To: keys.IDs[3], Amount: 1}))
	pool := uint64(1001 + 5)
	want := map[string]uint64{keys.IDs[0]: pool * 100 / 600, keys.IDs[1]: pool * 200 / 600, keys.IDs[2]: pool * 300 / 600}
	rest := pool - want[keys.IDs[0]] - want[keys.IDs[1]] - want[keys.IDs[2]]
	want[f.st.sets[0].Vals[0].ID] += rest // fixture's proposer is the first by ID
	var total uint64
	for id, w := range want {
		if got := rewardsTo(evs, id); got != w {
			t.Errorf("reward of %s = %d; want %d", id, got, w)
		}
		total += rewardsTo(evs, id)
	}
	if total != pool {
		t.Errorf("rewards sum to %d; want %d", total, pool)
	}
	if _, minted, _ := f.st.Supply(); minted != 1001 {
		t.Errorf("minted = %d; want 1001", minted)
	}
}

// TestExtensionHandler registers a market-like tx that locks a deposit in
// escrow, pays part out, pays a fee to validators, and fails half-way when
// asked to: the failing half must leave no trace.
func TestExtensionHandler(t *testing.T) {
	type openJob struct {
		Job     string `cbor:"1,keyasint"`
		Deposit uint64 `cbor:"2,keyasint"`
		PayTo   string `cbor:"3,keyasint"`
		Pay     uint64 `cbor:"4,keyasint"`
		Fail    bool   `cbor:"5,keyasint"`
	}
	handler := func(c *TxContext, body []byte) error {
		var o openJob
		if err := c.Decode(body, &o); err != nil {
			return err
		}
		esc := "job/" + o.Job
		if err := c.Lock(c.Sender, esc, o.Deposit); err != nil {
			return err
		}
		c.SetExt(esc, []byte(o.PayTo))
		if err := c.Release(esc, o.PayTo, o.Pay); err != nil {
			return err
		}
		if err := c.PayValidators(esc, 1); err != nil {
			return err
		}
		if o.Fail {
			return errors.New("market: requested failure")
		}
		return nil
	}
	f := newFixture(t, 6, 4)
	var err error
	if f.l, err = New(WithTxHandler("open_job", handler)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithTxHandler(TxTransfer, handler)); !errors.Is(err, ErrDuplicateHandler) {
		t.Fatalf("overriding transfer: %v; want ErrDuplicateHandler", err)
	}
	renter, prov := f.keys.IDs[4], f.keys.IDs[5]

	before := f.st
	evs := f.run(f.tx(renter, "open_job", 2, openJob{Job: "a", Deposit: 1000, PayTo: prov, Pay: 300, Fail: true}))
	if len(eventsOf(evs, EventTxFailed)) != 1 || len(eventsOf(evs, EventEscrow)) != 0 {
		t.Fatalf("failing handler left events: %+v", evs)
	}
	if _, ok := f.st.Ext("job/a"); ok || f.st.Escrow("job/a") != 0 {
		t.Fatal("failing handler left escrow or ext state")
	}
	assertOnlyFeeAndNonce(t, before, f.st, renter, 2, evs)

	evs = f.run(f.tx(renter, "open_job", 2, openJob{Job: "b", Deposit: 1000, PayTo: prov, Pay: 300}))
	if got := f.st.Escrow("job/b"); got != 699 {
		t.Fatalf("escrow = %d; want 699", got)
	}
	if v, ok := f.st.Ext("job/b"); !ok || string(v) != prov {
		t.Fatalf("ext = %q, %v", v, ok)
	}
	if got := balance(f.st, prov); got != 1_000_300 {
		t.Fatalf("provider balance = %d", got)
	}
	var rewards uint64
	for _, e := range eventsOf(evs, EventReward) {
		rewards += e.Amount
	}
	if want := 2 + 1 + f.st.Params().Emission.Reward(f.st.Height()); rewards != want {
		t.Fatalf("validators got %d; want fee 2 + market fee 1 + reward = %d", rewards, want)
	}
	// Escrow and ext are in the state hash.
	h1 := f.st.Hash()
	f2 := newFixture(t, 6, 4)
	f2.l = f.l
	f2.run(f2.tx(renter, "open_job", 2, openJob{Job: "a", Deposit: 1000, PayTo: prov, Pay: 300, Fail: true}))
	f2.run(f2.tx(renter, "open_job", 2, openJob{Job: "b", Deposit: 1000, PayTo: prov, Pay: 299}))
	if f2.st.Hash() == h1 {
		t.Fatal("different escrow gave the same state hash")
	}
}

// TestEndBlockHook: a hook pays a share of an escrow every block (part of
// it to the validators), a second hook changes state then fails and is
// rolled back with an event; the invariant holds throughout.
func TestEndBlockHook(t *testing.T) {
	type lockBody struct {
		Amount uint64 `cbor:"1,keyasint"`
	}
	lock := func(c *TxContext, body []byte) error {
		var b lockBody
		if err := c.Decode(body, &b); err != nil {
			return err
		}
		return c.Lock(c.Sender, "stream/"+c.Sender, b.Amount)
	}
	var payee string
	drip := func(c *TxContext) error {
		if c.Sender != "" {
			return errors.New("hook has a sender")
		}
		for _, id := range []string{"stream/" + payee} {
			if have := c.EscrowBalance(id); have >= 11 {
				if err := c.Release(id, payee, 10); err != nil {
					return err
				}
				if err := c.PayValidators(id, 1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	broken := func(c *TxContext) error {
		c.SetExt("broken", []byte("x"))
		if err := c.Transfer(payee, "nobody", 1); err != nil {
			return err
		}
		return errors.New("market: broken hook")
	}
	f := newFixture(t, 6, 4)
	payee = f.keys.IDs[4]
	var err error
	if f.l, err = New(WithTxHandler("lock", lock), WithEndBlock("drip", drip), WithEndBlock("broken", broken)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithEndBlock("x", drip), WithEndBlock("x", drip)); !errors.Is(err, ErrDuplicateHandler) {
		t.Fatalf("duplicate hook name: %v", err)
	}
	f.run(f.tx(payee, "lock", 1, lockBody{Amount: 100}))
	start := balance(f.st, payee)
	for range 5 {
		evs := f.run()
		if hf := eventsOf(evs, EventHookFailed); len(hf) != 1 || hf[0].Detail != "broken" {
			t.Fatalf("hook failures %+v; want one from broken", hf)
		}
		if _, ok := f.st.Ext("broken"); ok {
			t.Fatal("failed hook's ext write survived")
		}
	}
	// The lock block itself dripped once: 6 drips in all.
	if got, want := f.st.Escrow("stream/"+payee), uint64(100-6*11); got != want {
		t.Fatalf("escrow = %d; want %d", got, want)
	}
	if got := balance(f.st, payee) - start; got != 50 {
		t.Fatalf("payee got %d over 5 blocks; want 50", got)
	}
}
