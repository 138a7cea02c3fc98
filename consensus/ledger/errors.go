package ledger

import "errors"

// Errors that make a whole block invalid: Apply returns them (wrapped with
// detail) and the state is unchanged. A proposer avoids them with Propose.
var (
	ErrWrongChain        = errors.New("ledger: wrong chain ID")
	ErrWrongHeight       = errors.New("ledger: wrong height")
	ErrPrevHash          = errors.New("ledger: previous block hash mismatch")
	ErrStateHash         = errors.New("ledger: state hash mismatch")
	ErrBodyHash          = errors.New("ledger: tx or evidence root mismatch")
	ErrUnknownProposer   = errors.New("ledger: proposer is not a validator of this height")
	ErrBadTx             = errors.New("ledger: malformed or unauthenticated tx")
	ErrBadNonce          = errors.New("ledger: bad nonce")
	ErrFeeTooLow         = errors.New("ledger: fee below minimum")
	ErrCannotPayFee      = errors.New("ledger: balance cannot pay fee")
	ErrTooManyTxs        = errors.New("ledger: too many txs in block")
	ErrBlockFull         = errors.New("ledger: block full") // Propose only: the tx waits for a later block
	ErrBadEvidence       = errors.New("ledger: invalid evidence")
	ErrExpiredEvidence   = errors.New("ledger: expired evidence")
	ErrDuplicateEvidence = errors.New("ledger: evidence already punished")
	ErrNoValidatorSet    = errors.New("ledger: validator set not known for height")
)

// Errors of a tx that is authentic, carries the right nonce and pays its
// fee, but whose body cannot execute. The tx stays in the block with a
// failure receipt (an EventTxFailed): the fee is charged and the nonce
// advances, nothing else changes.
var (
	ErrUnknownTxType     = errors.New("ledger: unknown tx type")
	ErrBadBody           = errors.New("ledger: malformed tx body")
	ErrInsufficientFunds = errors.New("ledger: insufficient funds")
	ErrBadAmount         = errors.New("ledger: bad amount")
	ErrBadAccount        = errors.New("ledger: bad account ID")
	ErrBadRole           = errors.New("ledger: bad stake role")
	ErrNotJailed         = errors.New("ledger: not jailed")
	ErrStillJailed       = errors.New("ledger: jail period not over")
	ErrJailed            = errors.New("ledger: validator is jailed")
	ErrBelowMinStake     = errors.New("ledger: stake below minimum")
	ErrUnknownEscrow     = errors.New("ledger: unknown escrow")
)

// ErrBadGenesis reports an unusable genesis file or parameter.
var ErrBadGenesis = errors.New("ledger: bad genesis")

// ErrInvariant reports a broken supply invariant: a bug, never user error.
var ErrInvariant = errors.New("ledger: supply invariant broken")

// ErrDuplicateHandler reports two handlers registered for one tx type.
var ErrDuplicateHandler = errors.New("ledger: tx type registered twice")
