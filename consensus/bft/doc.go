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
//     calls StartHeight(h, vals, signed) with the validator set of h and,
//     after a restart, the node's own messages persisted for h.
//  2. Verifies every received message with VerifyMessage against the
//     validator set of the message's height, then calls Step. Step accepts
//     an equivocating validator's second message (nil error, Evidence in
//     Ready) so the Service forwards it; ErrPastHeight means the sender
//     is behind and may need block sync; ErrFutureHeight means "too early"
//     (ignore, do not penalise).
//  3. After every call, drains Ready: first persists Ready.Messages durably
//     (these are the node's own signed proposals and votes), then broadcasts
//     them; schedules each Ready.Timeouts entry and calls Timeout with it when
//     it fires (stale ones are ignored); applies Ready.Commit (the decided
//     value with its Certificate) to the ledger and calls StartHeight for the
//     next height; and hands Ready.Evidence to the block builder.
//  4. Rebroadcasts its latest own messages on its own timer, independently
//     of the round timeouts, because gossip loses messages.
//
// The Application hook proposes values and validates proposed ones (the
// ledger checks blocks there); the Signer signs the node's own messages.
// What is signed is documented on Vote and Proposal (VoteSignBytes,
// ProposalSignBytes): fixed binary layouts with a domain tag and the chain
// ID, independent of the wire encoding. Followers check decided blocks with
// Certificate.Verify.
//
// The machine never signs two different messages for one (height, round,
// type) slot as long as the caller restores its persisted messages with
// StartHeight after a restart; it also re-locks on its latest precommitted
// value then.
package bft
