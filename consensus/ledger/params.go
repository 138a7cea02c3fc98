package ledger

import (
	"crypto/sha256"
	"fmt"
	"math/bits"

	"github.com/gpunode/gpunode/protocol"
)

// Fraction is Num/Den, used for rates so that no float enters consensus.
type Fraction struct {
	Num uint64 `cbor:"1,keyasint" json:"num"`
	Den uint64 `cbor:"2,keyasint" json:"den"`
}

// Of returns floor(x * Num / Den) without overflow (x*Num is 128-bit).
// A fraction above 1 whose result does not fit saturates.
func (f Fraction) Of(x uint64) uint64 {
	if f.Den == 0 {
		return 0
	}
	hi, lo := bits.Mul64(x, f.Num)
	if hi >= f.Den {
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, f.Den)
	return q
}

func (f Fraction) valid() bool { return f.Den > 0 && f.Num <= f.Den }

func (f Fraction) String() string { return fmt.Sprintf("%d/%d", f.Num, f.Den) }

// Emission is the block reward schedule. Blocks are grouped in epochs of
// EpochLength heights (epoch e holds heights e*EpochLength+1 ..
// (e+1)*EpochLength). The reward of every block in epoch 0 is InitialReward;
// the reward of epoch e is floor(reward(e-1) * Decay), so it decreases every
// epoch (Decay = 1/2 is a halving) and reaches 0 after finitely many epochs.
// The reward is minted to the validators that committed the block.
type Emission struct {
	InitialReward uint64   `cbor:"1,keyasint" json:"initial_reward"`
	EpochLength   uint64   `cbor:"2,keyasint" json:"epoch_length"`
	Decay         Fraction `cbor:"3,keyasint" json:"decay"`
}

// Reward is the block reward at height h (h >= 1).
func (e Emission) Reward(h uint64) uint64 {
	if h == 0 || e.EpochLength == 0 {
		return 0
	}
	epoch := (h - 1) / e.EpochLength
	r := e.InitialReward
	for i := uint64(0); i < epoch && r > 0; i++ {
		r = e.Decay.Of(r)
	}
	return r
}

// Params are the chain parameters fixed at genesis. Heights and periods are
// counted in blocks, amounts in the smallest token unit.
type Params struct {
	// UnbondingPeriod is how many blocks unstaked funds stay bonded (and
	// slashable) before they return to the balance. Must exceed
	// EvidenceMaxAge so an offender cannot unstake before its evidence lands.
	UnbondingPeriod uint64 `cbor:"1,keyasint" json:"unbonding_period"`
	// SlashFraction of a validator's stake (bonded and unbonding) is burned
	// for a double-sign.
	SlashFraction Fraction `cbor:"2,keyasint" json:"slash_fraction"`
	// JailPeriod is how many blocks a slashed validator stays jailed before
	// Unjail is accepted.
	JailPeriod uint64 `cbor:"3,keyasint" json:"jail_period"`
	// EvidenceMaxAge: evidence of an offence at height h is accepted in
	// blocks up to h + EvidenceMaxAge.
	EvidenceMaxAge uint64 `cbor:"4,keyasint" json:"evidence_max_age"`
	// Emission is the block reward schedule.
	Emission Emission `cbor:"5,keyasint" json:"emission"`
	// MinFee is the least fee a tx must pay (at least 1).
	MinFee uint64 `cbor:"6,keyasint" json:"min_fee"`
	// MarketFee is the share of each market payment that goes to the
	// validators (market/settle takes it from each provider's price).
	MarketFee Fraction `cbor:"7,keyasint" json:"market_fee"`
	// MinValidatorStake is the least validator stake that enters the set.
	MinValidatorStake uint64 `cbor:"8,keyasint" json:"min_validator_stake"`
	// MinProviderStake is the least provider stake the market accepts.
	MinProviderStake uint64 `cbor:"9,keyasint" json:"min_provider_stake"`
	// MaxValidators caps the set: the largest stakes win, ties by peer ID.
	MaxValidators uint32 `cbor:"10,keyasint" json:"max_validators"`
	// PowerUnit: a validator's voting power is stake / PowerUnit.
	PowerUnit uint64 `cbor:"11,keyasint" json:"power_unit"`
	// MaxBlockTxs caps the number of txs in a block.
	MaxBlockTxs uint32 `cbor:"12,keyasint" json:"max_block_txs"`
	// MaxBlockEvidence caps the number of evidence items in a block.
	MaxBlockEvidence uint32 `cbor:"13,keyasint" json:"max_block_evidence"`
}

// DefaultParams are the parameters `genesis new` writes: about a week of
// unbonding at one block a second, 5% slash, a day in jail.
func DefaultParams() Params {
	return Params{
		UnbondingPeriod:   7 * 24 * 3600,
		SlashFraction:     Fraction{5, 100},
		JailPeriod:        24 * 3600,
		EvidenceMaxAge:    24 * 3600,
		Emission:          Emission{InitialReward: 1_000_000, EpochLength: 30 * 24 * 3600, Decay: Fraction{9, 10}},
		MinFee:            1,
		MarketFee:         Fraction{1, 100},
		MinValidatorStake: 1_000_000,
		MinProviderStake:  100_000,
		MaxValidators:     100,
		PowerUnit:         1,
		MaxBlockTxs:       20_000,
		MaxBlockEvidence:  100,
	}
}

// Validate checks that the parameters are usable.
func (p Params) Validate() error {
	switch {
	case p.UnbondingPeriod == 0:
		return fmt.Errorf("%w: unbonding_period must be > 0", ErrBadGenesis)
	case !p.SlashFraction.valid():
		return fmt.Errorf("%w: slash_fraction %s not in [0, 1]", ErrBadGenesis, p.SlashFraction)
	case p.EvidenceMaxAge == 0:
		return fmt.Errorf("%w: evidence_max_age must be > 0", ErrBadGenesis)
	case p.EvidenceMaxAge >= p.UnbondingPeriod:
		return fmt.Errorf("%w: evidence_max_age %d must be below unbonding_period %d", ErrBadGenesis, p.EvidenceMaxAge, p.UnbondingPeriod)
	case p.Emission.EpochLength == 0:
		return fmt.Errorf("%w: emission.epoch_length must be > 0", ErrBadGenesis)
	case !p.Emission.Decay.valid() || p.Emission.Decay.Num == p.Emission.Decay.Den:
		return fmt.Errorf("%w: emission.decay %s must be in [0, 1)", ErrBadGenesis, p.Emission.Decay)
	case !p.MarketFee.valid():
		return fmt.Errorf("%w: market_fee %s not in [0, 1]", ErrBadGenesis, p.MarketFee)
	case p.MinFee == 0:
		// Free txs would let anyone create accounts and fill blocks at no cost.
		return fmt.Errorf("%w: min_fee must be > 0", ErrBadGenesis)
	case p.MinValidatorStake == 0:
		return fmt.Errorf("%w: min_validator_stake must be > 0", ErrBadGenesis)
	case p.MaxValidators == 0:
		return fmt.Errorf("%w: max_validators must be > 0", ErrBadGenesis)
	case p.PowerUnit == 0:
		return fmt.Errorf("%w: power_unit must be > 0", ErrBadGenesis)
	case p.MinValidatorStake < p.PowerUnit:
		return fmt.Errorf("%w: min_validator_stake %d below power_unit %d gives validators no power", ErrBadGenesis, p.MinValidatorStake, p.PowerUnit)
	case p.MaxBlockTxs == 0:
		return fmt.Errorf("%w: max_block_txs must be > 0", ErrBadGenesis)
	}
	return nil
}

func (p Params) hash() [32]byte { return sha256.Sum256(protocol.MustMarshal(p)) }
