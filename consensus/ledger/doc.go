// Package ledger is the settlement ledger of gpunode: a pure, deterministic
// state transition (state, block) -> (state, events), plus the genesis file
// that defines a network's initial state.
//
// # What it holds
//
// Accounts keyed by peer ID string (balance and nonce), stakes per peer for
// the validator and provider roles with jail status, the unbonding queue,
// escrows (for the market's jobs), extension records (for the market's own
// state), the validator-set history, the punished-evidence record, and the
// supply counters (genesis supply, minted, burned). The supply invariant
//
//	sum(balances) + sum(stakes) + sum(unbonding) + sum(escrow)
//	    == genesis supply + minted - burned
//
// holds after every block; CheckInvariant verifies it (and the incremental
// state hash) and the tests call it after every block they apply.
//
// # Usage
//
//	g, err := ledger.Load("genesis.json")
//	st, err := ledger.InitialState(g)
//	l, err := ledger.New(ledger.WithVerifier(mempoolVerifier), ledger.WithEvidenceVerifier(bftEvidence))
//
//	// Proposer: build the block for st.Height()+1 from mempool txs and evidence.
//	blk, next, events, dropped, err := l.Propose(st, ledger.Header{ChainID: id, Proposer: me, Time: nowMs}, txs, evs)
//
//	// Every validator and follower: check and execute a proposed or committed block.
//	next, events, err := l.Apply(st, blk)
//
//	// Consensus asks which validators (stake-weighted) decide a height.
//	vals, err := ledger.ValidatorSet(next, next.Height()+1)
//
// Chain wraps these for the consensus glue: it keeps the latest committed
// state and executes each block once, whether this node proposed it
// (Chain.Propose gives the value's hash and bytes), validated it
// (Chain.Validate) or only sees it committed (Chain.Commit, for followers
// and block sync). It maps onto consensus/bft's Application one to one.
//
// The caller persists states or blocks; the ledger does no I/O, reads no
// clock and draws no randomness. State is immutable: Apply and Propose never
// change their input, and an invalid block returns an error and no state.
//
// # Rules (decisions documented here once)
//
//   - Block validity. A block is invalid as a whole (Apply returns an error)
//     if its header is wrong (chain ID, height, previous hash, proposer not
//     in the height's validator set, tx or evidence root, state hash), it
//     exceeds MaxBlockTxs/MaxBlockEvidence, any tx is malformed or badly
//     signed, has the wrong nonce, a fee below MinFee or a fee its sender
//     cannot pay, or any evidence is invalid, expired or already punished.
//     A proposer avoids all of these by building blocks with Propose.
//   - Tx failure. A tx that is authentic, carries the sender's next nonce
//     and can pay its fee is executed; if its body fails (unknown type,
//     malformed body, insufficient funds, bad amount, bad role, jail rules)
//     the tx stays in the block with an EventTxFailed receipt: the fee is
//     charged and the nonce advances, and nothing else changes (the
//     handler's partial changes are rolled back). This is the
//     Tendermint-style receipt: the sender pays for the block space it used.
//   - Nonces. Each account's nonce starts at 0; a tx must carry exactly the
//     account's current nonce, which then increments. Several txs of one
//     sender in a block need consecutive nonces. A replayed tx therefore
//     has a stale nonce and invalidates the block that carries it.
//   - State hash. Header.StateHash is the hash of the state after applying
//     the block (not before, as Tendermint's AppHash): the proposer executes
//     before proposing, and a commit then certifies the resulting state.
//     The hash covers chain ID, parameters, height, header time, supply
//     counters, sharded Merkle-style roots of accounts, bonds, escrow and
//     extension records, and the CBOR of the unbonding queue, validator-set
//     history and evidence record. It does not cover the block hash, which
//     the next header's PrevHash chains.
//   - Fees and rewards. Each block's fees plus its block reward (minted)
//     are shared among the validator set of that height in proportion to
//     power, each share rounded down; the rounding remainder goes to the
//     proposer. Nothing is burned by rounding.
//   - Emission. Blocks are grouped in epochs of Emission.EpochLength
//     heights; every block of epoch e earns floor(reward(e-1) * Decay),
//     starting at InitialReward, so the reward decreases each epoch (Decay
//     1/2 is a halving) and total emission is bounded.
//   - Validator sets. A block at height h that changes stakes or jail
//     status changes the set of h+2; ValidatorSet answers for heights back
//     to EvidenceMaxAge and up to h+2. Power is stake / PowerUnit; the
//     MaxValidators largest stakes (ties by peer ID) among unjailed
//     validators with at least MinValidatorStake form the set. If that set
//     would be empty, the previous one stays in force (a chain with no
//     validators could never produce another block).
//   - Evidence. Two conflicting signed messages of a validator at the same
//     height, round and type. The ledger checks that the offence height is
//     in the past and at most EvidenceMaxAge blocks old, that the offender
//     was in that height's set, and asks the EvidenceVerifier to check the
//     signatures. It then burns SlashFraction of the offender's bonded
//     validator stake and of validator stake it unstaked in the block before
//     the offence or later (that stake still backed the offending vote's
//     power), and jails it for JailPeriod blocks (Unjail afterwards). One offence per (validator, height) is punished once,
//     whatever the round, type or pair of messages.
//   - Unbonding. Unstake moves stake into the unbonding queue; it returns to
//     the balance at the end of block Since + UnbondingPeriod.
//     UnbondingPeriod must exceed EvidenceMaxAge, so an offender cannot
//     withdraw before its evidence can land.
//
// # Extension: market transactions
//
// The market adds tx types with WithTxHandler. A TxHandler gets a TxContext
// with the sender and height, and moves tokens only through its methods:
// Transfer, Lock (balance to escrow), Release (escrow to balance),
// PayValidators (escrow to this block's fee pool, for the market fee),
// BurnEscrow, SlashStake, and keeps its records with SetExt/DeleteExt under
// its own key prefix. Escrow and extension records are in the state hash
// and escrow is in the invariant. A failing handler is rolled back. Work
// that no tx triggers (deadlines, challenge windows) goes in end-of-block
// hooks added with WithEndBlock, which get the same TxContext (without a
// sender) after the txs and before fees and rewards are paid.
// TxContext.PrevBlockHash gives agreed (weak) randomness for spot checks;
// TxContext.ChainID opens signed messages a tx carries (the market's bids).
// The market's handlers live in market/settle.
//
// # Performance
//
// Tx signatures are checked by a Verifier; the default CachingVerifier
// remembers verified txs by hash, so the mempool verifies once on arrival
// and Apply does not repeat it. Apply verifies the rest on GOMAXPROCS
// goroutines (results are placed by index, so the outcome never depends on
// scheduling). Maps are sharded and copy-on-write, so a block costs in
// proportion to the accounts it touches. BenchmarkApplyTransfers measures
// it.
package ledger
