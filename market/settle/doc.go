// Package settle is the market's part of the ledger: the job, lease,
// result, cancel, attestation and exit transactions as ledger.TxHandlers,
// and an end-of-block hook that settles deadlines, challenge windows and
// lapsed checks. Install it with the parameters of the genesis file's
// "market" object:
//
//	p, err := settle.ParseParams(genesis.Market) // DefaultParams if absent
//	opts, err := settle.Options(p)
//	l, err := ledger.New(append(opts, ledger.WithVerifier(v))...)
//
// Like the ledger it is pure and deterministic: it reads only the tx, the
// block header and the state, and keeps its records as ledger extension
// records (in the state hash) under "market/": "market/job/<cid>" (a Job),
// "market/seg/<cid>/<index>" (a Segment; none while the segment is open),
// "market/rep/<peer>" (a Reputation), "market/exit/<peer>" (the height of
// a provider's exit notice) and "market/due/<height>" (the segments the
// hook examines at that height, so it never scans the state).
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
//     nonce), and its provider has not sent market.exit. Any bad bid fails
//     the whole tx. The segments (all open ones if
//     none are named) must be open. The ledger then runs market.Award
//     itself over the bids, with on-chain reputation scores, and leases what
//     it awards: under replicate:k each segment gets k distinct providers.
//     The escrow must cover the prices already owed plus the award's cost.
//     Every lease's deadline height is the award height plus the spec's
//     deadline converted with Params.BlockTimeMs.
//   - market.submit_result {job, segment, output, receipt}: sent by a lease
//     holder at a height <= its deadline, once. When all k results are in
//     and agree the segment is verified (market.verified), except that
//     under spotcheck:p it is drawn for a check with probability p
//     (SpotCheckDrawn: the first 8 bytes of sha256(previous block hash ||
//     job CID string || segment as 4 bytes big-endian), big-endian, mod
//     1,000,000, below p in parts per million) and is then checking
//     (market.check). As soon as two results differ the segment is
//     disputed (market.disputed), and nobody is paid for it yet.
//   - market.attest {job, segment, output}: a validator's output of its
//     own re-run of a disputed or checking segment, sent by an unjailed
//     member of the validator set of the block's height, once per
//     validator and segment; kept in the segment record (Attests). As soon
//     as validators holding more than a third of the set's total stake
//     (weighed with the current set; a validator that has left it counts
//     for nothing) attest the same output, the segment is resolved
//     (below).
//   - market.exit {}: a provider (provider stake > 0) gives notice, once:
//     no award_lease may carry its bids from then on (Exiting); its
//     current leases run on and are paid as usual.
//   - Resolution for an output O: every lease whose result is O is kept;
//     every other lease (a different result or none) is a wrong result:
//     its provider is penalised like a missed deadline (Failed+1, loses
//     Params.SlashAmount of provider stake, Slashed+1 if anything was
//     burned; market.wrong), and its price is no longer owed. If a lease
//     is kept the segment is verified (market.resolved, paid after the
//     challenge window to the kept leases only); otherwise it returns to
//     the job like a missed segment (market.reopened).
//   - Lapse: a segment still checking Params.CheckBlocks blocks after it
//     became checking is verified on its providers' result
//     (market.resolved); one still disputed CheckBlocks blocks after the
//     dispute returns to the job unpaid, nobody penalised
//     (market.reopened).
//   - market.cancel_job {job}: the renter cancels every open segment and is
//     refunded at once everything the escrow holds beyond the prices owed to
//     live leases. Leased segments run on; a segment whose lease is later
//     missed is cancelled instead of re-opened.
//   - End of block: the hook examines the segments scheduled for the height
//     (deadlines, challenge windows, lapses). A leased segment past its
//     deadline returns to the job (open, re-auctionable with fresh bids;
//     cancelled if the job was cancelled): each provider that submitted
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
// times less per replica sets MaxPrice accordingly. After a resolution only
// the leases with the validators' output are paid.
//
// # Segment states
//
//	open --award--> leased --results agree--> verified --window--> paid
//	                  |  \--spot check drawn--> checking
//	                  |  \--results differ----> disputed
//	                  \--deadline missed--> open (or cancelled)
//	checking, disputed --attest quorum--> verified (a lease matches) or open
//	checking --CheckBlocks lapse--> verified
//	disputed --CheckBlocks lapse--> open (or cancelled)
//	open --cancel_job--> cancelled
//
// # For validators
//
// A validator watches for market.disputed and market.check events (or
// segments in those states, JobOf), re-runs the segment deterministically
// and sends market.attest with its output within Params.CheckBlocks
// blocks. Under the chain's own assumption (less than a third of the
// stake is faulty) more than a third of the stake includes an honest
// validator, so the output resolved is an honest re-run's. Attesting is
// not rewarded, and a wrong attestation is not punished by the market.
//
// # Costs
//
// An award naming no segments, a cancel and a job's close visit every
// segment index of the job (a read each), so they cost in proportion to
// the job's segment count.
package settle
