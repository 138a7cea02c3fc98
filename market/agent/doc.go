// Package agent is the market's I/O for one node: it runs the pure market
// core (offers, bid engine, award rule) over gossipsub and the chain.
//
//   - provider: announces signed offers on the offers topic (on a timer and
//     whenever its status changes), answers every job request with a bid or
//     a signed reason not to bid, runs the leases it wins (fetches the
//     program and the segment's input, runs the executor, stores the output)
//     and sends market.submit_result.
//   - renter: opens jobs (market.open_job), announces auction rounds on the
//     jobs topic, admits bids through market.BidValidator at the gossip
//     validator, awards with market.award_lease, and re-auctions segments
//     that come back (missed deadlines, wrong results).
//   - validator: re-runs disputed and spot-checked segments and sends
//     market.attest with the output it computed.
//
// Every node keeps an order book of offers and the job requests it has seen
// (so it can validate and relay bids). Decisions follow committed chain
// events, never wall-clock races between two peers.
//
// The node wires an Agent to its chain, its pubsub topics, its data layer
// and its executor through the small interfaces in this package (Chain,
// Network, Data, Runner).
package agent
