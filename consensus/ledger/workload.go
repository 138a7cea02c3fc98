package ledger

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// Keyring holds deterministic test keys, for simulations and benchmarks
// that must sign txs and votes reproducibly from a seed. Not for real keys.
type Keyring struct {
	IDs  []string // peer ID strings, in creation order
	keys map[string]crypto.PrivKey
}

// NewKeyring derives n Ed25519 keys from rng.
func NewKeyring(rng *rand.Rand, n int) *Keyring {
	k := &Keyring{keys: make(map[string]crypto.PrivKey, n)}
	for range n {
		var seed [ed25519.SeedSize]byte
		for i := 0; i < len(seed); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				seed[i+j] = byte(v >> (8 * j))
			}
		}
		priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
		if err != nil {
			panic(err) // a 64-byte Ed25519 key always unmarshals
		}
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			panic(err)
		}
		k.IDs = append(k.IDs, id.String())
		k.keys[id.String()] = priv
	}
	return k
}

// Key returns id's private key, or nil.
func (k *Keyring) Key(id string) crypto.PrivKey { return k.keys[id] }

// Ed25519 returns id's key as a standard library Ed25519 private key (for
// signing consensus votes in a simulator), or nil.
func (k *Keyring) Ed25519(id string) ed25519.PrivateKey {
	key := k.keys[id]
	if key == nil {
		return nil
	}
	raw, err := key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil
	}
	return ed25519.PrivateKey(raw)
}

// TestGenesis is a genesis for chainID in which every key of k has balance
// and the first nVals keys are validators with stake, with parameters
// scaled down for simulations (short unbonding, jail and evidence windows,
// short epochs).
func (k *Keyring) TestGenesis(chainID string, nVals int, balance, stake uint64) *Genesis {
	g := NewGenesis(chainID)
	g.GenesisTime = time.UnixMilli(0).UTC()
	g.Params.UnbondingPeriod = 20
	g.Params.JailPeriod = 5
	g.Params.EvidenceMaxAge = 10
	g.Params.Emission = Emission{InitialReward: 1000, EpochLength: 16, Decay: Fraction{3, 4}}
	g.Params.MinValidatorStake = 100
	g.Params.MinProviderStake = 10
	g.Params.MaxValidators = 10
	for _, id := range k.IDs {
		if balance == 0 {
			break
		}
		if err := g.AddAccount(id, balance); err != nil {
			panic(err)
		}
	}
	for _, id := range k.IDs[:nVals] {
		if err := g.AddValidator(id, stake); err != nil {
			panic(err)
		}
	}
	return g
}

// Sign seals tx from id for chainID.
func (k *Keyring) Sign(chainID, id string, tx Tx) ([]byte, error) {
	key := k.keys[id]
	if key == nil {
		return nil, fmt.Errorf("ledger: no key for %s", id)
	}
	return SignTx(key, chainID, time.UnixMilli(0), tx)
}

// RandomWorkload returns n signed txs for the block after st, from random
// senders of k with the right nonces (consecutive within the batch): mostly
// transfers, some stakes, unstakes and unjails, and some whose bodies fail
// (overdrafts, unstaking more than staked, unjailing too early), which get
// failure receipts. Every tx pays MinFee or a little more, and senders who
// cannot pay are skipped, so Apply accepts a block of them. Deterministic
// in rng and st.
func (k *Keyring) RandomWorkload(rng *rand.Rand, st *State, n int) [][]byte {
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
	minFee := st.params.MinFee
	out := make([][]byte, 0, n)
	for tries := 0; len(out) < n && tries < 4*n+16; tries++ {
		from := k.IDs[rng.IntN(len(k.IDs))]
		a := get(from)
		fee := minFee + uint64(rng.IntN(3))
		if a.balance < fee {
			continue
		}
		var typ TxType
		var body any
		// Spend at most about a quarter of the balance, occasionally far
		// more than anyone has (a failing body). The tracked balance never
		// exceeds the real one (rewards and releases only add), so every
		// fee stays payable.
		amount := func() uint64 {
			if rng.IntN(20) == 0 {
				return 1 << 62
			}
			return 1 + rng.Uint64N(max(a.balance/4, 1))
		}
		role := RoleValidator
		if rng.IntN(3) == 0 {
			role = RoleProvider
		}
		switch r := rng.IntN(100); {
		case r < 75:
			typ, body = TxTransfer, Transfer{To: k.IDs[rng.IntN(len(k.IDs))], Amount: amount()}
		case r < 87:
			typ, body = TxStake, Stake{Role: role, Amount: amount()}
		case r < 96:
			b := st.Bond(from)
			amt := 1 + rng.Uint64N(max(b.stake(role), 1))
			if rng.IntN(10) == 0 {
				amt = b.stake(role) + 1
			}
			typ, body = TxUnstake, Unstake{Role: role, Amount: amt}
		default:
			typ, body = TxUnjail, Unjail{}
		}
		tx, err := NewTx(typ, a.nonce, fee, body)
		if err != nil {
			panic(err)
		}
		raw, err := k.Sign(st.chainID, from, tx)
		if err != nil {
			panic(err)
		}
		a.nonce++
		a.balance -= fee
		// Count a spend as done whenever it could succeed: pessimistic.
		var spend uint64
		switch b := body.(type) {
		case Transfer:
			spend = b.Amount
		case Stake:
			spend = b.Amount
		}
		if spend <= a.balance {
			a.balance -= spend
		}
		out = append(out, raw)
	}
	return out
}

// Equivocate returns evidence that validator id signed two different
// prevotes at (height, round), in the EnvelopeEvidence format.
func (k *Keyring) Equivocate(chainID, id string, height uint64, round int32) (Evidence, error) {
	key := k.keys[id]
	if key == nil {
		return Evidence{}, fmt.Errorf("ledger: no key for %s", id)
	}
	var msgs [2][]byte
	for i := range msgs {
		v := Vote{Type: 1, Height: height, Round: round, BlockHash: []byte{byte(i + 1)}}
		raw, _, err := protocol.Seal(key, chainID, protocol.KindVote, time.UnixMilli(0), v)
		if err != nil {
			return Evidence{}, err
		}
		msgs[i] = raw
	}
	return Evidence{Validator: id, Height: height, Round: round, Type: 1, A: msgs[0], B: msgs[1]}, nil
}

// RandomEvidence returns up to n evidence items against random current
// validators at random recent heights: a mix that Propose accepts and
// items it skips (too old, already punished, from a non-validator), for
// simulations.
func (k *Keyring) RandomEvidence(rng *rand.Rand, st *State, n int) []Evidence {
	var out []Evidence
	for range n {
		if st.height == 0 {
			break
		}
		back := 1 + rng.Uint64N(st.params.EvidenceMaxAge+2)
		h := max(st.height+1, back+1) - back // may be expired: skipped by Propose
		id := k.IDs[rng.IntN(len(k.IDs))]
		if vals, err := ValidatorSet(st, h); err == nil && rng.IntN(4) != 0 {
			id = vals[rng.IntN(len(vals))].ID
		}
		ev, err := k.Equivocate(st.chainID, id, h, int32(rng.IntN(3)))
		if err != nil {
			continue
		}
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b Evidence) int {
		return cmpSlash(slashRecord{a.Validator, a.Height}, slashRecord{b.Validator, b.Height})
	})
	return out
}
