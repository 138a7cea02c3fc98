package ledger

// EventKind names what happened.
type EventKind string

// Event kinds emitted by the built-in transitions. Handlers added with
// WithTxHandler may emit their own kinds.
const (
	EventTx           EventKind = "tx"            // a tx executed; Account is the sender, Amount the fee
	EventTxFailed     EventKind = "tx_failed"     // a tx's body failed; fee charged, nonce advanced, Error says why
	EventTransfer     EventKind = "transfer"      // Account sent Amount to Counterparty
	EventStake        EventKind = "stake"         // Account bonded Amount in Role
	EventUnstake      EventKind = "unstake"       // Account started unbonding Amount in Role, released at Release
	EventUnbonded     EventKind = "unbonded"      // Amount returned to Account's balance
	EventUnjail       EventKind = "unjail"        // Account left jail
	EventSlash        EventKind = "slash"         // Amount of Account's stake burned for evidence
	EventJail         EventKind = "jail"          // Account jailed until Release
	EventReward       EventKind = "reward"        // Account earned Amount of fees and block reward
	EventMint         EventKind = "mint"          // Amount minted as block reward
	EventValidatorSet EventKind = "validator_set" // the set changes at height Release
	EventEscrow       EventKind = "escrow"        // Amount moved into (Detail "lock") or out of escrow Counterparty
	EventBurn         EventKind = "burn"          // Amount burned
	EventHookFailed   EventKind = "hook_failed"   // end-block hook Detail failed with Error; its changes were undone
)

// Event reports one effect of a block, in execution order. Fields not
// meaningful for a kind are empty.
type Event struct {
	Kind         EventKind `json:"kind"`
	Height       uint64    `json:"height"`
	Tx           string    `json:"tx,omitempty"` // hex TxHash of the causing tx
	TxType       TxType    `json:"tx_type,omitempty"`
	Account      string    `json:"account,omitempty"`
	Counterparty string    `json:"counterparty,omitempty"`
	Role         Role      `json:"role,omitempty"`
	Amount       uint64    `json:"amount,omitempty"`
	Release      uint64    `json:"release,omitempty"`
	Error        string    `json:"error,omitempty"`
	Detail       string    `json:"detail,omitempty"`
}
