package simledger

import (
	"math/rand/v2"
	"slices"

	"github.com/gpunode/gpunode/consensus/ledger"
)

// Extension adds an application's txs to the random workload, e.g. the
// market's: consensus never imports the market, so its tests inject it
// (through run's prep).
type Extension struct {
	// Options install the application's tx handlers and end-of-block
	// hooks in every node's ledger.
	Options []ledger.Option
	// Txs returns txs to append to a proposal for the block after st.
	// sign signs a tx from an account of the keyring with its next nonce
	// and the minimum fee (nil if the account cannot pay the fee). It
	// must be deterministic in rng and st.
	Txs func(rng *rand.Rand, st *ledger.State, keys *ledger.Keyring, sign func(from string, typ ledger.TxType, body any) []byte) [][]byte
	// Committed, if set, sees the events of every block every node
	// commits.
	Committed func(node int, h uint64, events []ledger.Event)
}

// workload returns up to MaxTxs signed txs for the block after st from
// random senders, with consecutive nonces per sender: mostly transfers
// (some overdrawn, which get failure receipts), provider stakes and
// unstakes by anyone, validator stakes and unstakes by pool nodes when the
// scenario allows (users never bond validator stake, so every validator is
// a simulated node), and unjails (by jailed nodes once allowed, and some
// that fail). Deterministic in rng and st.
func (w *world) workload(rng *rand.Rand, st *ledger.State) [][]byte {
	ids := w.keys.IDs
	nodes := len(ids) - w.sc.Users
	type acct struct{ nonce, balance uint64 }
	local := map[string]*acct{}
	get := func(id string) *acct {
		if a, ok := local[id]; ok {
			return a
		}
		a, _ := st.Account(id)
		local[id] = &acct{a.Nonce, a.Balance}
		return local[id]
	}
	p := st.Params()
	n := rng.IntN(w.sc.MaxTxs + 1)
	var out [][]byte
	for range n {
		from := ids[rng.IntN(len(ids))]
		isNode := slices.Index(ids, from) < nodes
		a := get(from)
		fee := p.MinFee + uint64(rng.IntN(3))
		if a.balance < fee {
			continue
		}
		amount := func(limit uint64) uint64 {
			if rng.IntN(20) == 0 {
				return 1 << 62 // more than anyone has: a failure receipt
			}
			return 1 + rng.Uint64N(max(limit, 1))
		}
		b := st.Bond(from)
		var typ ledger.TxType
		var body any
		var spend uint64
		switch r := rng.IntN(100); {
		case r < 60:
			typ = ledger.TxTransfer
			t := ledger.Transfer{To: ids[rng.IntN(len(ids))], Amount: amount(a.balance / 4)}
			body, spend = t, t.Amount
		case r < 70:
			typ = ledger.TxStake
			s := ledger.Stake{Role: ledger.RoleProvider, Amount: amount(a.balance / 8)}
			body, spend = s, s.Amount
		case r < 76:
			typ, body = ledger.TxUnstake, ledger.Unstake{Role: ledger.RoleProvider, Amount: 1 + rng.Uint64N(max(b.Provider, 1))}
		case r < 86 && isNode && w.sc.ValidatorStake:
			// Join or grow: enough to pass MinValidatorStake.
			typ = ledger.TxStake
			s := ledger.Stake{Role: ledger.RoleValidator, Amount: p.MinValidatorStake + rng.Uint64N(stake)}
			body, spend = s, s.Amount
		case r < 96 && isNode && w.sc.ValidatorStake:
			// Shrink or leave (all of it), sometimes more than bonded.
			amt := 1 + rng.Uint64N(max(b.Validator, 1))
			switch rng.IntN(4) {
			case 0:
				amt = b.Validator
			case 1:
				amt = b.Validator + 1
			}
			typ, body = ledger.TxUnstake, ledger.Unstake{Role: ledger.RoleValidator, Amount: max(amt, 1)}
		default:
			if b.Jailed && st.Height()+1 < b.JailedUntil && rng.IntN(2) == 0 {
				continue // too early; half of the time try anyway (a failure receipt)
			}
			typ, body = ledger.TxUnjail, ledger.Unjail{}
		}
		if spend > a.balance {
			spend = 0 // fails with a receipt: only the fee is spent
		}
		tx, err := ledger.NewTx(typ, a.nonce, fee, body)
		if err != nil {
			panic(err) // built-in bodies always encode
		}
		raw, err := w.keys.Sign(st.ChainID(), from, tx)
		if err != nil {
			panic(err) // every ID of the keyring has its key
		}
		a.nonce++
		a.balance -= fee + spend
		out = append(out, raw)
	}
	if w.ext != nil && w.ext.Txs != nil {
		sign := func(from string, typ ledger.TxType, body any) []byte {
			a := get(from)
			if a.balance < p.MinFee {
				return nil
			}
			tx, err := ledger.NewTx(typ, a.nonce, p.MinFee, body)
			if err != nil {
				panic(err) // the extension's bodies encode
			}
			raw, err := w.keys.Sign(st.ChainID(), from, tx)
			if err != nil {
				panic(err)
			}
			a.nonce++
			a.balance -= p.MinFee
			return raw
		}
		for _, raw := range w.ext.Txs(rng, st, w.keys, sign) {
			if raw != nil {
				out = append(out, raw)
			}
		}
	}
	// Jailed nodes whose jail is over always ask to come back.
	for _, id := range ids[:nodes] {
		b := st.Bond(id)
		a := get(id)
		if !b.Jailed || st.Height()+1 < b.JailedUntil || a.balance < p.MinFee {
			continue
		}
		tx, err := ledger.NewTx(ledger.TxUnjail, a.nonce, p.MinFee, ledger.Unjail{})
		if err != nil {
			panic(err)
		}
		raw, err := w.keys.Sign(st.ChainID(), id, tx)
		if err != nil {
			panic(err)
		}
		a.nonce++
		a.balance -= p.MinFee
		out = append(out, raw)
	}
	return out
}
