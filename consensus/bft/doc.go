// Package bft is the Tendermint consensus algorithm ("The latest gossip on
// BFT consensus", Buchman, Kwon, Milosevic 2018, Algorithm 1) as a pure state
// machine: heights and rounds; propose, prevote, precommit; locked and valid
// values; timeouts that grow per round; a jump to a higher round once more
// than 1/3 of the voting power is seen there; quorums of more than 2/3 of
// the voting power; and a deterministic stake-weighted proposer order.
//
// The Machine has no goroutines, clock, disk, network or randomness. Its
// inputs are verified messages (Step), timer events (Timeout) and the start
// of each height with that height's validator set (StartHeight); its outputs
// are collected in a Ready value.
//
// # Usage
//
// The caller (the consensus Service, or the simulator in package sim):
//
//  1. Creates the machine with New(Config{ChainID, ID, Signer, App}) and
//     calls StartHeight(h, vals, wal) with the validator set of h and,
//     after a restart, what it persisted for h from Ready.Messages and
//     Ready.Persist.
//  2. Verifies every received message with VerifyMessage against the
//     validator set of the message's height, then calls Step. Step accepts
//     an equivocating validator's second message (nil error, Evidence in
//     Ready) so the Service forwards it; ErrPastHeight means the sender
//     is behind and may need block sync; ErrFutureHeight means "too early"
//     (ignore, do not penalise).
//  3. After every call, drains Ready: first persists Ready.Messages (the
//     node's own signed proposals and votes) and Ready.Persist (the proposal
//     it locked on) durably, then broadcasts Ready.Messages; schedules each Ready.Timeouts entry and calls Timeout with it when
//     it fires (stale ones are ignored); applies Ready.Commit (the decided
//     value with its Certificate) to the ledger and calls StartHeight for the
//     next height; and hands Ready.Evidence to the block builder.
//  4. Rebroadcasts, on its own timer and independently of the round
//     timeouts (gossip loses messages): its own messages of the current
//     height's latest rounds, its own prevotes for values, and ProofOfLock
//     (the prevotes behind its valid value, which others need to accept a
//     re-proposal of that value).
//  5. Block sync: a block received with a Certificate that verifies against
//     the height's validator set (and that the application validates) is
//     applied directly, then StartHeight(h+1) is called, whether or not the
//     machine decided h itself. The machine alone may never reach a quorum
//     at a height whose certificate holds an equivocator's vote it saw
//     second for an irrelevant value, and others have moved on.
//
// The Application hook proposes values and validates proposed ones (the
// ledger checks blocks there); the Signer signs the node's own messages.
// What is signed is documented on Vote and Proposal (VoteSignBytes,
// ProposalSignBytes): fixed binary layouts with a domain tag and the chain
// ID, independent of the wire encoding. Followers check decided blocks with
// Certificate.Verify.
//
// Votes: the first vote of each validator per (round, type) counts towards
// "more than 2/3 of anything" (timeouts, round steps); a vote also counts
// for its value, and an equivocator's later vote for a value that is
// proposed in that round (or re-proposed with that round as proof of lock)
// counts for that value too, since it is a valid signed vote for it. The
// "more than 1/3 at a higher round" skip uses each validator's highest round
// seen; messages more than Config.RoundWindow rounds ahead are not stored.
//
// The machine never signs two different messages for one (height, round,
// type) slot as long as the caller restores its persisted messages with
// StartHeight after a restart; it also re-locks on its latest precommitted
// value then, and can re-propose that value.
package bft
