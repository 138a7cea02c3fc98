// Package market is the deterministic core of gpunode's compute market: the
// wire types of offers, jobs and bids, the gossip validators that admit them,
// the renter's order book and price index, the provider's bid engine and the
// auction's award rule.
//
// Nothing here does I/O, reads the clock or draws randomness: the time is an
// argument, the chain is reached through interfaces the package declares
// (StakeChecker, JobLookup), and the same inputs always give the same
// outputs, so the award can be replayed and checked by anyone.
//
// # Usage
//
// A provider builds its Offer from its inventory and re-announces it (sealed
// with protocol.Seal as protocol.KindOffer) on a timer and whenever its
// inventory or status changes, raising Seq each time. For every JobRequest
// it sees, it asks its BidEngine:
//
//	bid, why := engine.Decide(inv, req, now, nonce)
//	if why != nil { /* gossip *why (KindNoBid) so the renter sees the reason */ }
//	else          { /* seal bid as protocol.KindBid and gossip it */ }
//
// A node relaying gossip admits offers with OpenOffer (and OrderBook.Put,
// which applies the same rule with the book's sequence numbers), job
// requests with OpenJobRequest, bids with a BidValidator and no-bids with
// OpenNoBid. A renter keeps offers in an OrderBook and, when the auction
// closes,
// awards with Award over the collected bids (a BidSet) and records the
// winning prices in a PriceIndex. The AwardLease tx then carries the
// winning signed bids to the ledger, which re-checks them.
//
// # Money and time
//
// Prices are integer token units per segment; nothing on the wire is a
// float (spot-check fractions are parts per million), so every node
// computes the same award. Times on the wire are unix milliseconds.
package market
