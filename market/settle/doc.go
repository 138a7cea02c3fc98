// Package settle is the market's part of the ledger: the job, lease, result
// and cancel transactions as ledger.TxHandlers, and an end-of-block hook
// that settles deadlines and challenge windows. Install it with
//
//	opts, err := settle.Options(settle.DefaultParams())
//	l, err := ledger.New(append(opts, ledger.WithVerifier(v))...)
//
// Like the ledger it is pure and deterministic: it reads only the tx, the
// block header and the state, and keeps its records as ledger extension
// records (in the state hash) under "market/": "market/job/<cid>" (a Job),
// "market/seg/<cid>/<index>" (a Segment; none while the segment is open),
// "market/rep/<peer>" (a Reputation) and "market/due/<height>" (the
// segments the hook examines at that height, so it never scans the state).
// A tx on one segment reads and writes that segment's record and the job
// header only (BenchmarkSubmitResult: one submit on a 10,000-segment job).
// Deposits sit in the ledger escrow "job/<cid>" and count in the supply
// invariant.
//
// # A job's life on chain
//
//   - market.open_job {spec, deposit}: the spec must pass Check, its ID must
//     not be an open job, and deposit >= MaxPrice x Segments x Replicas.
//     The deposit is locked in the job's escrow. There is no separate fee
//     reserve: the market fee is taken out of each provider's price.
//   - market.award_lease {job, bids, segments, max_per_provider}: sent by
//     the renter. Every carried bid envelope is opened for this chain as a
//     KindBid, signed by the provider it names, names this job, is at most
//     the max price, its provider has at least MinProviderStake of provider
//     stake and is not jailed, its expiry is after the header time minus
//     Params.ExpiryGraceMs (header time is the proposer's clock; the grace
//     covers the delay from the renter's award to its block), and it has
//     not won for this job before (a re-auction needs fresh bids, i.e. a new
//     nonce). Any bad bid fails the whole tx. The segments (all open ones if
//     none are named) must be open. The ledger then runs market.Award
//     itself over the bids, with on-chain reputation scores, and leases what
//     it awards: under replicate:k each segment gets k distinct providers.
//     The escrow must cover the prices already owed plus the award's cost.
//     Every lease's deadline height is the award height plus the spec's
//     deadline converted with Params.BlockTimeMs.
//   - market.submit_result {job, segment, output, receipt}: sent by a lease
//     holder at a height <= its deadline, once. When all k results are in
//     and agree the segment is verified; as soon as two differ it is
//     disputed, and nobody is paid for it.
//   - market.cancel_job {job}: the renter cancels every open segment and is
//     refunded at once everything the escrow holds beyond the prices owed to
//     live leases. Leased segments run on; a segment whose lease is later
//     missed is cancelled instead of re-opened.
//   - End of block: a leased segment past its deadline returns to the job
//     (open, re-auctionable with fresh bids): each provider that submitted
//     nothing gets Failed+1 and loses Params.SlashAmount of provider stake
//     (Slashed+1 if anything was burned). Results already submitted by its
//     co-replicas are dropped unpaid. A verified segment Params.ChallengeWindow
//     blocks after verification pays each of its providers its own price
//     minus the market fee (the ledger's Params.MarketFee, rounded down),
//     and the fee goes to the block's validators; Completed+1 for each, and
//     Verified+1 under replicate:k with k >= 2. When every segment is paid
//     or cancelled, the rest of the escrow returns to the renter and the
//     job record is deleted (its ID may be opened again).
//
// # Replicate pricing
//
// Under replicate:k a segment runs on k providers and the renter pays each
// agreeing provider its own bid price: the segment is paid once (one set of
// k payments, never again for a later re-run), and the deposit rule
// MaxPrice x Segments x k covers the worst case. A renter wanting to pay k
// times less per replica sets MaxPrice accordingly.
//
// # Not yet
//
// Disputes are recorded, not resolved: a disputed segment keeps its job
// open and its escrow locked. The planned resolution is a tx
//
//	market.resolve {job, segment, output, attestations}
//
// carrying validators' signed re-run attestations (KindAttestation) with
// the correct output: agreeing providers are paid, the others slashed.
// Spot checks (spotcheck:p) are likewise not yet drawn: such segments are
// verified on their single result.
//
// An award naming no segments, a cancel and a job's close visit every
// segment index of the job (a read each), so they cost in proportion to
// the job's segment count.
package settle
