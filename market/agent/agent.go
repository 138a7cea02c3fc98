package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// Sentinel errors of the agent.
var (
	ErrNotRenter   = errors.New("agent: this node is not a renter")
	ErrNotProvider = errors.New("agent: this node is not a provider")
	ErrBadJob      = errors.New("agent: invalid job")
	ErrUnknownJob  = errors.New("agent: unknown job")
	ErrTxFailed    = errors.New("agent: transaction failed")
	ErrClosed      = errors.New("agent: closed")
)

// Chain is what the agent needs of the node's chain service.
type Chain interface {
	ChainID() string
	// State is the ledger state after the last committed block.
	State() *ledger.State
	// SubmitOwn signs body as a tx of typ with the node's key and next
	// nonce and submits it.
	SubmitOwn(ctx context.Context, typ ledger.TxType, fee uint64, body any) ([32]byte, uint64, error)
}

// Verdict is a topic validator's judgement.
type Verdict int

// Verdicts.
const (
	Accept Verdict = iota + 1 // deliver and forward
	Reject                    // drop and penalise the sender
	Ignore                    // drop without penalty
)

// Validator judges an authenticated envelope (its signature and chain ID
// were checked by the node); from is the forwarding peer.
type Validator func(ctx context.Context, from peer.ID, env *protocol.Envelope) Verdict

// Received is a validated message.
type Received struct {
	Envelope *protocol.Envelope
	From     peer.ID
	Local    bool // the node's own publish
}

// Topic is a joined, subscribed gossip topic.
type Topic interface {
	Publish(ctx context.Context, kind protocol.Kind, body any) error
	Next(ctx context.Context) (*Received, error)
	Close() error
}

// Network joins the market's gossip topics (protocol.TopicOffers, ...).
type Network interface {
	Join(name string, v Validator) (Topic, error)
}

// Data is the node's content-addressed store and exchange.
type Data interface {
	// Fetch makes every block under root local, asking the given peers
	// first (and the DHT's holders when none of them has it).
	Fetch(ctx context.Context, root cid.Cid, from []peer.ID) error
	// Export writes the file or directory under root (held locally) to path.
	Export(ctx context.Context, root cid.Cid, path string) error
}

// SegmentRun is one segment to execute.
type SegmentRun struct {
	Job      protocol.CID
	Segment  uint32
	Spec     *market.JobSpec
	Program  string // host path of the wasm module ("" for a runtime)
	Input    string // host path of the segment's input file or directory ("" if none)
	Seed     uint64
	WallTime time.Duration
}

// SegmentResult is a finished segment.
type SegmentResult struct {
	Output  cid.Cid // root of the output directory in the node's store
	Receipt []byte  // the executor's receipt (at most settle.MaxReceipt bytes)
}

// Runner executes segments: the node's executors plus its store.
type Runner interface {
	Run(ctx context.Context, r SegmentRun) (SegmentResult, error)
	// Warm prepares the program at path (compiles it into the executor's
	// cache) so that segments start at once.
	Warm(ctx context.Context, program string) error
}

// Clock gives the time; the agent's tests and the node pass one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// ProviderConfig configures the provider role.
type ProviderConfig struct {
	Hardware   market.Hardware
	CPUs       uint32
	Memory     uint64
	Prices     []market.Price // sorted by (model, executor)
	Slots      uint32         // segments run at once; 0: 1
	Strategy   market.PricingStrategy
	OfferTTL   time.Duration // 0: 30 s
	Reannounce time.Duration // steady re-announce interval; 0: 10 s
	// Tamper, if set, is asked before each submit; returning true makes the
	// provider submit a wrong output (fault-injection tests only).
	Tamper func(job protocol.CID, segment uint32) bool
	// BeforeSubmit, if set, is called after a segment ran and before its
	// result is submitted, with the agent's context (fault-injection
	// tests only: e.g. hold the result until the node stops).
	BeforeSubmit func(ctx context.Context, job protocol.CID, segment uint32)
}

// Config configures an Agent.
type Config struct {
	Self     peer.ID
	Chain    Chain
	Network  Network
	Data     Data
	Runner   Runner // needed by providers and validators
	WorkDir  string // scratch space for segment inputs
	StateDir string // where the provider keeps its leases across restarts ("" : not kept)

	Renter    bool
	Validator bool
	Provider  *ProviderConfig // nil: not a provider

	// AuctionWindow is a round's default length; 0: 3 s.
	AuctionWindow time.Duration
	// RetryAfter is the pause before a new round when a round awarded
	// nothing; 0: 3 s.
	RetryAfter time.Duration
	// MaxIdleRounds stops re-auctioning a job after that many rounds in a
	// row without an award; 0: 10.
	MaxIdleRounds int

	Clock  Clock
	Logger *slog.Logger
	Events Publisher
}

// Publisher receives the agent's events for the API event stream
// (api.Events satisfies it).
type Publisher interface {
	Publish(typ string, data any)
}

// Agent is one node's market participation. Create with New, then Start.
type Agent struct {
	cfg Config
	log *slog.Logger
	clk Clock

	offers, jobs, bids Topic

	book   *market.OrderBook
	prices *market.PriceIndex
	bidVal *market.BidValidator

	// submitMu orders tx submission against commit processing: a caller
	// registers its wait for a tx before any block holding it is processed.
	submitMu sync.Mutex

	mu sync.Mutex // guards the fields below
	// requests are the job requests seen on the jobs topic (latest round).
	requests map[string]*market.JobRequest
	// rejected counts rejected bids per job and reason.
	rejected map[string]map[string]int
	// commits is the queue of committed blocks for the event loop.
	commits []commit

	prov  *provider  // nil unless provider
	rent  *renter    // nil unless renter
	valid *validator // nil unless validator

	progMu   sync.Mutex // guards programs
	programs map[string]*progEntry

	// last is the state of the newest block handed to OnCommit; the
	// chain's own view may be updated after its commit hooks run.
	last atomic.Pointer[ledger.State]

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type commit struct {
	height uint64
	events []ledger.Event
	state  *ledger.State
}

// New checks cfg and builds an Agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Chain == nil || cfg.Network == nil || cfg.Self == "" {
		return nil, fmt.Errorf("agent: Self, Chain and Network are required")
	}
	if (cfg.Provider != nil || cfg.Validator) && (cfg.Runner == nil || cfg.Data == nil) {
		return nil, fmt.Errorf("agent: providers and validators need Runner and Data")
	}
	if cfg.Renter && cfg.Data == nil {
		return nil, fmt.Errorf("agent: renters need Data")
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AuctionWindow <= 0 {
		cfg.AuctionWindow = 3 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 3 * time.Second
	}
	if cfg.MaxIdleRounds <= 0 {
		cfg.MaxIdleRounds = 10
	}
	book, err := market.NewOrderBook()
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger,
		clk:      cfg.Clock,
		book:     book,
		prices:   market.NewPriceIndex(256),
		requests: map[string]*market.JobRequest{},
		rejected: map[string]map[string]int{},
		wake:     make(chan struct{}, 1),
		programs: map[string]*progEntry{},
	}
	a.bidVal = &market.BidValidator{
		ChainID: cfg.Chain.ChainID(),
		Jobs:    jobLookup{a},
		Stakes:  stakeChecker{a},
		Replays: market.NewReplayFilter(),
	}
	if cfg.Provider != nil {
		a.prov = newProvider(a, cfg.Provider)
	}
	if cfg.Renter {
		a.rent = newRenter(a)
	}
	if cfg.Validator {
		a.valid = newValidator(a)
	}
	return a, nil
}

// Start joins the topics and starts the loops.
func (a *Agent) Start() error {
	a.ctx, a.cancel = context.WithCancel(context.Background())
	var err error
	if a.offers, err = a.cfg.Network.Join(protocol.TopicOffers, a.validateOffer); err != nil {
		return fmt.Errorf("agent: join offers: %w", err)
	}
	if a.jobs, err = a.cfg.Network.Join(protocol.TopicJobs, a.validateJob); err != nil {
		return fmt.Errorf("agent: join jobs: %w", err)
	}
	if a.bids, err = a.cfg.Network.Join(protocol.TopicBids, a.validateBid); err != nil {
		return fmt.Errorf("agent: join bids: %w", err)
	}
	a.loop(a.drain(a.offers))
	a.loop(a.drain(a.jobs))
	a.loop(a.drain(a.bids))
	a.loop(a.commitLoop)
	if a.prov != nil {
		a.prov.start()
	}
	return nil
}

func (a *Agent) loop(f func()) {
	a.wg.Add(1)
	go func() { defer a.wg.Done(); f() }()
}

// Close stops the loops and leaves the topics. Running segments are
// cancelled; their leases stay on chain (and on disk for a restart).
func (a *Agent) Close() error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	var errs []error
	for _, t := range []Topic{a.offers, a.jobs, a.bids} {
		if t != nil {
			errs = append(errs, t.Close())
		}
	}
	a.wg.Wait()
	return errors.Join(errs...)
}

func (a *Agent) publish(typ string, data any) {
	if a.cfg.Events != nil {
		a.cfg.Events.Publish(typ, data)
	}
}

// OnCommit hands the agent a committed block's events and state. The
// chain calls it in its own goroutine; it never blocks.
func (a *Agent) OnCommit(height uint64, events []ledger.Event, st *ledger.State) {
	a.mu.Lock()
	a.commits = append(a.commits, commit{height, events, st})
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) commitLoop() {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.wake:
		case <-tick.C:
		}
		a.mu.Lock()
		cs := a.commits
		a.commits = nil
		a.mu.Unlock()
		a.submitMu.Lock()
		for _, c := range cs {
			a.handleCommit(c)
		}
		a.submitMu.Unlock()
		now := a.clk.Now()
		a.book.Expire(now)
		a.bidVal.Replays.Prune(now)
		if a.rent != nil {
			a.rent.tick(now)
		}
		if a.prov != nil {
			a.prov.tick(now)
		}
	}
}

// state is the newest committed state the agent knows of.
func (a *Agent) state() *ledger.State {
	st := a.cfg.Chain.State()
	if l := a.last.Load(); l != nil && l.Height() > st.Height() {
		return l
	}
	return st
}

func (a *Agent) handleCommit(c commit) {
	if l := a.last.Load(); c.state != nil && (l == nil || c.state.Height() > l.Height()) {
		a.last.Store(c.state)
	}
	for _, e := range c.events {
		if e.Height == 0 {
			e.Height = c.height
		}
		if a.rent != nil {
			a.rent.onEvent(e, c.state)
		}
		if a.prov != nil {
			a.prov.onEvent(e, c.state)
		}
		if a.valid != nil {
			a.valid.onEvent(e, c.state)
		}
	}
}

// drain reads a topic until the agent stops; the validators did the work.
func (a *Agent) drain(t Topic) func() {
	return func() {
		for {
			r, err := t.Next(a.ctx)
			if err != nil {
				return
			}
			a.deliver(r)
		}
	}
}

func (a *Agent) deliver(r *Received) {
	env := r.Envelope
	switch env.Kind {
	case protocol.KindJob:
		req, err := market.DecodeJobRequest(env.Payload)
		if err != nil {
			return
		}
		if a.prov != nil && !r.Local {
			a.prov.onJob(req)
		}
	case protocol.KindBid:
		if a.rent == nil {
			return
		}
		b, err := market.DecodeBid(env.Payload)
		if err != nil {
			return
		}
		raw, err := protocol.Marshal(env)
		if err != nil {
			return
		}
		a.rent.onBid(b, raw)
	case market.KindNoBid:
		if a.rent == nil {
			return
		}
		n, err := market.DecodeNoBid(env.Payload)
		if err != nil {
			return
		}
		a.rent.onNoBid(n)
	}
}

// validateOffer admits offers into the order book.
func (a *Agent) validateOffer(_ context.Context, _ peer.ID, env *protocol.Envelope) Verdict {
	if env.Kind != protocol.KindOffer {
		return Reject
	}
	o, err := market.DecodeOffer(env.Payload)
	if err != nil {
		return Reject
	}
	author, err := peer.IDFromBytes(env.Author)
	if err != nil {
		return Reject
	}
	if err := a.book.Put(o, author.String(), a.clk.Now()); err != nil {
		if errors.Is(err, market.ErrStaleOffer) {
			return Ignore
		}
		return Reject
	}
	return Accept
}

// validateJob admits job requests and remembers them (so this node can
// validate and relay their bids).
func (a *Agent) validateJob(_ context.Context, _ peer.ID, env *protocol.Envelope) Verdict {
	if env.Kind != protocol.KindJob {
		return Reject
	}
	req, err := market.DecodeJobRequest(env.Payload)
	if err != nil {
		return Reject
	}
	author, err := peer.IDFromBytes(env.Author)
	if err != nil {
		return Reject
	}
	if err := market.ValidateJobRequest(req, author.String(), a.clk.Now()); err != nil {
		return Reject
	}
	a.rememberRequest(req)
	return Accept
}

func (a *Agent) rememberRequest(req *market.JobRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := req.Job.String()
	if old, ok := a.requests[k]; !ok || old.CloseAt < req.CloseAt {
		a.requests[k] = req
	}
}

// validateBid admits bids (market.BidValidator) and signed no-bids, and
// counts every rejected bid by job and reason.
func (a *Agent) validateBid(_ context.Context, _ peer.ID, env *protocol.Envelope) Verdict {
	switch env.Kind {
	case market.KindNoBid:
		n, err := market.DecodeNoBid(env.Payload)
		if err != nil {
			return Reject
		}
		author, err := peer.IDFromBytes(env.Author)
		if err != nil || author.String() != n.Provider {
			return Reject
		}
		return Accept
	case protocol.KindBid:
	default:
		return Reject
	}
	raw, err := protocol.Marshal(env)
	if err != nil {
		return Reject
	}
	_, _, err = a.bidVal.Validate(raw, a.clk.Now())
	if err == nil {
		return Accept
	}
	job := "?"
	if b, derr := market.DecodeBid(env.Payload); derr == nil {
		job = b.Job.String()
	}
	a.countRejected(job, rejectReason(err))
	switch {
	case errors.Is(err, market.ErrReplayed), errors.Is(err, market.ErrAuctionClosed), errors.Is(err, market.ErrBidExpired):
		// Late or duplicate copies arrive from honest relays too.
		return Ignore
	}
	return Reject
}

func (a *Agent) countRejected(job, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.rejected[job]
	if m == nil {
		m = map[string]int{}
		a.rejected[job] = m
	}
	m[reason]++
}

func (a *Agent) rejectedFor(job string) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	for k, v := range a.rejected[job] {
		out[k] = v
	}
	return out
}

// rejectReason names a bid rejection for the counters.
func rejectReason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{protocol.ErrBadSignature, "bad signature"},
		{market.ErrUnknownJob, "unknown job"},
		{market.ErrAboveMax, "above max price"},
		{market.ErrAuctionClosed, "auction closed"},
		{market.ErrReplayed, "replayed"},
		{market.ErrNotStaked, "not staked"},
		{market.ErrBidExpired, "expired"},
		{market.ErrWrongAuthor, "wrong author"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "malformed"
}

type jobLookup struct{ a *Agent }

func (j jobLookup) Job(id protocol.CID) (*market.JobRequest, bool) {
	j.a.mu.Lock()
	defer j.a.mu.Unlock()
	r, ok := j.a.requests[id.String()]
	return r, ok
}

type stakeChecker struct{ a *Agent }

// Staked: provider stake at least the chain's minimum, not jailed, and not
// exiting.
func (s stakeChecker) Staked(p string) bool {
	st := s.a.state()
	b := st.Bond(p)
	if b.Jailed || b.Provider == 0 || b.Provider < st.Params().MinProviderStake {
		return false
	}
	return !settle.Exiting(st, p)
}

// submit sends a tx and returns its hash.
func (a *Agent) submit(ctx context.Context, typ ledger.TxType, body any) ([32]byte, error) {
	h, _, err := a.cfg.Chain.SubmitOwn(ctx, typ, 0, body)
	if err != nil {
		return h, fmt.Errorf("agent: submit %s: %w", typ, err)
	}
	return h, nil
}

// progEntry is a program fetched and warmed once per node.
type progEntry struct {
	done chan struct{}
	path string
	err  error
}

// program fetches the wasm module under root (asking from first), keeps it
// under WorkDir/programs and warms it in the executor, once per node: a
// provider does it when it bids, so a won lease starts at once, and its
// parallel segments do not each compile the module.
func (a *Agent) program(ctx context.Context, root cid.Cid, from []peer.ID) (string, error) {
	key := root.String()
	a.progMu.Lock()
	e := a.programs[key]
	if e != nil {
		select {
		case <-e.done:
			if e.err != nil { // failed before: try again
				e = nil
			}
		default:
		}
	}
	mine := e == nil
	if mine {
		e = &progEntry{done: make(chan struct{})}
		a.programs[key] = e
	}
	a.progMu.Unlock()
	if mine {
		e.path, e.err = a.prepareProgram(ctx, root, from)
		close(e.done)
		return e.path, e.err
	}
	select {
	case <-e.done:
		return e.path, e.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (a *Agent) prepareProgram(ctx context.Context, root cid.Cid, from []peer.ID) (string, error) {
	if err := a.cfg.Data.Fetch(ctx, root, from); err != nil {
		return "", fmt.Errorf("fetch program: %w", err)
	}
	dir := filepath.Join(a.cfg.WorkDir, "programs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, root.String()+".wasm")
	if err := a.cfg.Data.Export(ctx, root, path); err != nil {
		return "", fmt.Errorf("export program: %w", err)
	}
	start := a.clk.Now()
	if err := a.cfg.Runner.Warm(ctx, path); err != nil {
		return "", fmt.Errorf("warm program: %w", err)
	}
	a.log.Info("market: program ready", "program", root, "took", a.clk.Now().Sub(start))
	return path, nil
}
