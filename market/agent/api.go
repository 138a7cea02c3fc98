package agent

// The market's HTTP API, under api.Prefix (/api/v1), registered by
// RegisterAPI. Every JSON key below is a contract that the CLI, the devnet
// scenario and scripts rely on.
//
//	GET  /market/offers            []OfferView: the renter's order book (any node keeps one)
//	GET  /market/prices            []PriceView: price index per GPU model ("cpu" for CPU-only work)
//	POST /market/jobs              SubmitJobRequest -> SubmitJobResponse (renter role)
//	GET  /market/jobs              []JobView of this node's jobs (renter role)
//	GET  /market/jobs/{id}         JobView; any node answers from the chain, the renter adds its auction view
//	GET  /market/jobs/{id}/bids    BidsView: bids and reasons for no bids of every round
//	POST /market/jobs/{id}/cancel  -> TxResponse (renter role)
//	GET  /market/leases            []LeaseView: this provider's leases (provider role)
//	GET  /market/provider          ProviderView: this provider's offer, slots, exit state
//	POST /market/exit              -> TxResponse: announce the provider's exit (provider role)

// OfferView is one provider's standing offer as a node's order book holds it.
type OfferView struct {
	Provider  string          `json:"provider"`
	Seq       uint64          `json:"seq"`
	Status    string          `json:"status"` // idle, reserved, sharing, disconnected
	Region    string          `json:"region,omitempty"`
	GPUs      []GPUGroupView  `json:"gpus,omitempty"`
	CPUs      uint32          `json:"cpus"`
	Memory    uint64          `json:"memory"`
	Executors []string        `json:"executors"`
	Prices    []PriceListItem `json:"prices"`
	Stake     uint64          `json:"stake"`
	FreeSlots uint32          `json:"free_slots"`
	// HardwareClass is the verified class from a hardware challenge, "" if none.
	HardwareClass string `json:"hardware_class,omitempty"`
	Reputation    Rep    `json:"reputation"` // on-chain counters
	IssuedAt      int64  `json:"issued_at"`  // unix ms
	Expires       int64  `json:"expires"`    // unix ms
}

// GPUGroupView is a group of identical GPUs in an offer.
type GPUGroupView struct {
	Model string `json:"model"`
	VRAM  uint64 `json:"vram"`
	Count uint32 `json:"count"`
}

// PriceListItem is one entry of an offer's price list.
type PriceListItem struct {
	Model    string `json:"model"` // "" for CPU-only work
	Executor string `json:"executor"`
	Price    uint64 `json:"price"` // per segment
}

// Rep is a provider's on-chain reputation counters.
type Rep struct {
	Completed uint64 `json:"completed"`
	Failed    uint64 `json:"failed"`
	Slashed   uint64 `json:"slashed"`
	Verified  uint64 `json:"verified"`
}

// PriceView is the price index of one GPU model over recent awards.
type PriceView struct {
	Model  string `json:"model"` // "cpu" for CPU-only work
	Count  int    `json:"count"`
	Min    uint64 `json:"min"`
	Q1     uint64 `json:"q1"`
	Median uint64 `json:"median"`
	Q3     uint64 `json:"q3"`
	Max    uint64 `json:"max"`
}

// SubmitJobRequest is the body of POST /market/jobs. CIDs are strings.
type SubmitJobRequest struct {
	Program   string   `json:"program,omitempty"` // wasm module root CID (a data add of the .wasm file)
	Runtime   string   `json:"runtime,omitempty"` // or a provider runtime name
	Inputs    []string `json:"inputs,omitempty"`  // one data root CID per segment, or none
	Segments  uint32   `json:"segments"`
	MaxPrice  uint64   `json:"max_price"`          // per segment
	Deadline  uint32   `json:"deadline"`           // seconds per segment; 0: 60
	Verify    string   `json:"verify,omitempty"`   // "replicate:k" or "spotcheck:p"; "": replicate:1
	Executor  string   `json:"executor,omitempty"` // "": "wasm" with a program, "process" with a runtime
	GPUModels []string `json:"gpu_models,omitempty"`
	MinVRAM   uint64   `json:"min_vram,omitempty"`
	GPUCount  uint32   `json:"gpu_count,omitempty"`
	Region    string   `json:"region,omitempty"`
	Salt      uint64   `json:"salt,omitempty"`
	// AuctionMs is how long each auction round stays open; 0: the agent's default.
	AuctionMs int64 `json:"auction_ms,omitempty"`
}

// SubmitJobResponse answers POST /market/jobs once the open_job tx is
// committed and the first auction round has been announced.
type SubmitJobResponse struct {
	Job     string `json:"job"`     // job ID (CID of the spec)
	Deposit uint64 `json:"deposit"` // moved into escrow
	Tx      string `json:"tx"`      // hex hash of the open_job tx
	Height  uint64 `json:"height"`  // block that committed it
}

// TxResponse answers a call that sent a tx.
type TxResponse struct {
	Tx     string `json:"tx"`               // hex tx hash
	Height uint64 `json:"height,omitempty"` // committed at, when the call waited for it
}

// JobView is a job as the chain and (on the renter's node) its auctions
// see it.
type JobView struct {
	Job      string `json:"job"`
	Renter   string `json:"renter"`
	State    string `json:"state"` // "open", "done" (closed on chain, all paid or cancelled), "cancelled", "unknown"
	Segments uint32 `json:"segments"`
	// SegmentsDone counts segments paid or verified (verified ones are paid after the challenge window).
	SegmentsDone uint32 `json:"segments_done"`
	SegmentsPaid uint32 `json:"segments_paid"`
	Verify       string `json:"verify"`
	MaxPrice     uint64 `json:"max_price"`
	Deposit      uint64 `json:"deposit"`
	Escrow       uint64 `json:"escrow"` // what the escrow holds now
	Program      string `json:"program,omitempty"`
	Runtime      string `json:"runtime,omitempty"`

	SegmentList []SegmentView `json:"segment_list"`

	// Renter-side figures, from chain events this node saw.
	Auctions int               `json:"auctions"`          // rounds announced
	Paid     map[string]uint64 `json:"paid"`              // provider -> paid to it (price minus fee)
	Fees     uint64            `json:"fees"`              // market fees taken from payments
	Refund   uint64            `json:"refund"`            // returned to the renter so far
	Slashed  map[string]uint64 `json:"slashed,omitempty"` // provider -> stake burned for this job
	Missed   int               `json:"missed"`            // leases whose deadline passed
	Wrong    int               `json:"wrong"`             // leases proven wrong
	NoBids   []NoBidView       `json:"no_bids,omitempty"` // latest reason per provider ("why no bids?")
	Events   []JobEvent        `json:"events,omitempty"`  // the job's chain events in order
}

// SegmentView is one segment of a job.
type SegmentView struct {
	Index  uint32      `json:"index"`
	State  string      `json:"state"` // open, leased, checking, verified, disputed, paid, cancelled
	Output string      `json:"output,omitempty"`
	Leases []LeaseView `json:"leases,omitempty"`
}

// LeaseView is one provider's lease on a segment.
type LeaseView struct {
	Job      string `json:"job"`
	Segment  uint32 `json:"segment"`
	Provider string `json:"provider"`
	Price    uint64 `json:"price"`
	Deadline uint64 `json:"deadline"`         // last height for a result
	Output   string `json:"output,omitempty"` // submitted output CID
	// Local is the provider node's own progress: "fetching", "running",
	// "submitted", "failed: ..."; empty in the chain's view.
	Local string `json:"local,omitempty"`
}

// JobEvent is one chain event of a job.
type JobEvent struct {
	Height  uint64 `json:"height"`
	Kind    string `json:"kind"` // ledger event kind, e.g. "market.lease"
	Account string `json:"account,omitempty"`
	Amount  uint64 `json:"amount,omitempty"`
	Segment string `json:"segment,omitempty"`
}

// BidsView answers GET /market/jobs/{id}/bids.
type BidsView struct {
	Job    string      `json:"job"`
	Rounds []RoundView `json:"rounds"`
	// Rejected counts bids the node's gossip validator rejected for this
	// node's jobs, by reason ("bad signature", "unknown job", "above max
	// price", "auction closed", "replayed", "not staked", ...).
	Rejected map[string]int `json:"rejected"`
}

// RoundView is one auction round.
type RoundView struct {
	Round    int         `json:"round"`
	Segments []uint32    `json:"segments"` // segments auctioned
	CloseAt  int64       `json:"close_at"` // unix ms
	Closed   bool        `json:"closed"`
	Bids     []BidView   `json:"bids"`
	NoBids   []NoBidView `json:"no_bids"`
	Awarded  []uint32    `json:"awarded,omitempty"` // segments leased by this round
	Error    string      `json:"error,omitempty"`   // why the award failed
}

// BidView is one admitted bid.
type BidView struct {
	Provider string `json:"provider"`
	Price    uint64 `json:"price"`
	Capacity uint32 `json:"capacity"`
	Expiry   int64  `json:"expiry"`
	Nonce    uint64 `json:"nonce"`
}

// NoBidView is a provider's reason not to bid.
type NoBidView struct {
	Provider string `json:"provider"`
	Reason   string `json:"reason"` // market.NoBidReason's String()
	Detail   string `json:"detail,omitempty"`
}

// ProviderView answers GET /market/provider.
type ProviderView struct {
	Provider   string     `json:"provider"`
	Offer      *OfferView `json:"offer,omitempty"` // the last announced offer
	TotalSlots uint32     `json:"total_slots"`
	FreeSlots  uint32     `json:"free_slots"`
	Exiting    bool       `json:"exiting"`
	Running    int        `json:"running"`
	Earned     uint64     `json:"earned"` // paid to it, from chain events this node saw
}
