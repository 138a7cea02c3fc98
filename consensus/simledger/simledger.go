package simledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/bft/sim"
	"github.com/gpunode/gpunode/consensus/ledger"
)

// Scenario is a simulator scenario with the ledger's part.
type Scenario struct {
	sim.Scenario
	// GenesisValidators: the first this many pool nodes are validators at
	// genesis (0: all). The others can join by staking.
	GenesisValidators int
	// ValidatorStake lets the workload bond and unbond validator stake of
	// pool nodes, which changes the validator set two heights later. Not
	// with Byzantine nodes: their share of the power must stay below 1/3.
	ValidatorStake bool
	// Users are accounts that are not nodes (they transfer and stake as
	// providers only, so every validator is a simulated node).
	Users int
	// MaxTxs bounds the txs of one proposal (drawn from 0..MaxTxs).
	MaxTxs int
}

// Scenarios are the standard ledger scenarios with their share of seeds
// per 1000.
func Scenarios() []Weighted {
	const loss, dup = 0.02, 0.02
	b := sim.Equivocate | sim.SplitProposals | sim.SpamRounds
	return []Weighted{
		{100, Scenario{Scenario: sim.Scenario{Name: "honest-1", Validators: 1, Heights: 4}, ValidatorStake: true, Users: 3, MaxTxs: 8}},
		{150, Scenario{Scenario: sim.Scenario{Name: "honest-4", Validators: 4, Heights: 3, Loss: 0.05, Duplicate: 0.05, Partitions: 1}, ValidatorStake: true, Users: 3, MaxTxs: 6}},
		{50, Scenario{Scenario: sim.Scenario{Name: "honest-7", Validators: 7, Heights: 3, Loss: loss, Duplicate: dup, Powers: true}, ValidatorStake: true, Users: 2, MaxTxs: 4}},
		{25, Scenario{Scenario: sim.Scenario{Name: "honest-10", Validators: 10, Heights: 3, Loss: loss, Duplicate: dup, Partitions: 1}, ValidatorStake: true, Users: 2, MaxTxs: 4}},
		{250, Scenario{Scenario: sim.Scenario{Name: "byzantine-4", Validators: 4, Heights: 3, Byzantine: 1, Behaviour: b, Loss: loss, Partitions: 1, Settle: 6}, Users: 3, MaxTxs: 6}},
		{60, Scenario{Scenario: sim.Scenario{Name: "byzantine-7", Validators: 7, Heights: 3, Byzantine: 2, Behaviour: b, Loss: loss, Duplicate: dup, Partitions: 2, Settle: 6}, Users: 2, MaxTxs: 4}},
		{25, Scenario{Scenario: sim.Scenario{Name: "byzantine-10", Validators: 10, Heights: 3, Byzantine: 3, Behaviour: sim.SplitProposals | sim.SpamRounds, Partitions: 1, Settle: 6}, Users: 2, MaxTxs: 4}},
		{120, Scenario{Scenario: sim.Scenario{Name: "crash-4", Validators: 4, Heights: 3, Crashes: 2, CrashProb: 0.02, Loss: loss}, ValidatorStake: true, Users: 2, MaxTxs: 6}},
		{40, Scenario{Scenario: sim.Scenario{Name: "crash-7", Validators: 7, Heights: 3, Crashes: 3, CrashProb: 0.02, Loss: loss, Partitions: 1}, ValidatorStake: true, Users: 2, MaxTxs: 4}},
		{180, Scenario{Scenario: sim.Scenario{Name: "valset", Validators: 6, Heights: 5, Loss: loss, Duplicate: dup}, GenesisValidators: 4, ValidatorStake: true, Users: 2, MaxTxs: 6}},
	}
}

// Weighted is a scenario with its share of seeds per 1000.
type Weighted struct {
	PerMille int
	Scenario Scenario
}

// Genesis parameters of simulated chains: validators bond stake (power =
// stake), everyone starts with balance.
const (
	balance = 1_000_000
	stake   = 10_000
)

// Report summarises what the ledger did in one run, over the blocks the
// first honest-looking node with the longest chain committed.
type Report struct {
	Sim *sim.Result
	// Heights committed, txs included and txs with failure receipts.
	Heights, Txs, FailedTxs int
	// Slashes: evidence items committed (each punishing one offence once).
	Slashes int
	// SetChanges: heights at which the validator set differs from the
	// previous height's.
	SetChanges int
	// MemberChanges: heights whose validators (IDs, not only powers)
	// differ from the previous height's.
	MemberChanges int
	// Reported: distinct offences (validator, height) reported by machines.
	Reported int
}

type offence struct {
	validator string
	height    uint64
}

// world is what the nodes of one run share: the keys and genesis, the
// ledger (rules and a shared signature cache, as if every node's mempool
// had verified each tx on arrival), the evidence gossip (modelled as
// instant: an offence one node's machine reports is in every node's
// evidence pool), and the checks across nodes. The simulator runs on one
// goroutine, so nothing here needs a lock.
type world struct {
	sc      Scenario
	seed    uint64
	keys    *ledger.Keyring
	genesis *ledger.State
	led     *ledger.Ledger

	evidence []ledger.Evidence   // gossiped evidence, in report order
	evKeys   map[[32]byte]bool   // hashes of gossiped evidence
	reported map[offence]bool    // offences in the pool
	hashes   map[uint64][32]byte // state hash per height (first node to commit it)
	sets     map[uint64]bft.Hash // validator set hash per height
	apps     map[int]*app        // latest app per node index
	full     bool                // ledger.CheckInvariant on every node after every block
	ext      *Extension          // application txs in the workload (tests), or nil
	err      error               // first cross-node failure
}

// identities makes the pool's peer IDs and keys: the first nodes of the
// keyring, followed by the users.
func (w *world) identities(seed uint64, n int) ([]string, []ed25519.PrivateKey) {
	w.keys = ledger.NewKeyring(rand.New(rand.NewPCG(seed, 0x1ed9e7)), n+w.sc.Users)
	ids := slices.Clone(w.keys.IDs[:n])
	keys := make([]ed25519.PrivateKey, n)
	for i, id := range ids {
		keys[i] = w.keys.Ed25519(id)
	}
	return ids, keys
}

// setup builds the genesis (validator stakes from the pool's powers) and
// the ledger on the first node's factory call.
func (w *world) setup(info sim.NodeInfo) error {
	g := w.keys.TestGenesis(sim.ChainID, 0, balance, 0)
	g.Params.PowerUnit = 1
	g.Params.MinValidatorStake = stake / 10
	nv := w.sc.GenesisValidators
	if nv == 0 {
		nv = len(info.Pool)
	}
	for _, v := range info.Pool[:nv] {
		if err := g.AddValidator(v.ID, uint64(v.Power)*stake); err != nil {
			return err
		}
	}
	st, err := ledger.InitialState(g)
	if err != nil {
		return err
	}
	w.genesis = st
	// Runs that sign with Ed25519 check evidence with the consensus
	// Service's verifier; the others with the same checks over the
	// simulator's fast signatures.
	var ev ledger.EvidenceVerifier = EvidenceVerifier{Verify: info.Verify}
	if w.seed%sim.RealCryptoEvery == 0 {
		ev = consensus.EvidenceVerifier{}
	}
	opts := []ledger.Option{
		ledger.WithVerifier(ledger.NewCachingVerifier(nil, 4096)),
		ledger.WithEvidenceVerifier(ev),
		ledger.WithVerifyWorkers(1),
	}
	if w.ext != nil {
		opts = append(opts, w.ext.Options...)
	}
	w.led, err = ledger.New(opts...)
	return err
}

func (w *world) factory(info sim.NodeInfo) sim.Application {
	if w.led == nil {
		if err := w.setup(info); err != nil {
			panic(fmt.Sprintf("simledger: genesis: %v", err)) // a bug in the scenario table
		}
	}
	a := &app{w: w, info: info, chain: ledger.NewChain(w.led, w.genesis), vsets: map[uint64]*bft.ValidatorSet{}, slashed: map[offence]int{}}
	w.apps[info.Index] = a
	return a
}

// ReportEvidence puts an offence in every node's evidence pool.
func (w *world) report(ev bft.Evidence) {
	le, err := ToLedger(ev)
	if err != nil {
		w.fail("converting evidence %s: %v", &ev, err)
		return
	}
	h := le.Hash()
	if w.evKeys[h] {
		return
	}
	w.evKeys[h] = true
	w.evidence = append(w.evidence, le)
	w.reported[offence{le.Validator, le.Height}] = true
}

func (w *world) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf(format, args...)
	}
}

// app is one node's ledger: a ledger.Chain behind the simulator's
// Application hook.
type app struct {
	w       *world
	info    sim.NodeInfo
	chain   *ledger.Chain
	vsets   map[uint64]*bft.ValidatorSet // final sets by height
	slashed map[offence]int              // offences punished in this node's chain
	txs     int
	failed  int
}

// ProposeValue builds a block of a seeded random workload and the pooled
// evidence, executed by the ledger (Chain.Propose).
func (a *app) ProposeValue(h uint64, r int32) (bft.Value, error) {
	st := a.chain.State()
	if h != st.Height()+1 {
		return bft.Value{}, fmt.Errorf("simledger: propose at %d on state %d", h, st.Height())
	}
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(a.info.Index)<<48|h<<16|uint64(uint16(r)))
	sum := sha256.Sum256(s[:])
	rng := rand.New(rand.NewPCG(a.w.seed, binary.BigEndian.Uint64(sum[:8])))
	txs := a.w.workload(rng, st)
	hdr := ledger.Header{ChainID: st.ChainID(), Time: int64(h)*1000 + int64(r), Proposer: a.info.ID}
	hash, data, _, err := a.chain.Propose(hdr, txs, a.w.evidence)
	if err != nil {
		return bft.Value{}, err
	}
	return bft.Value{Hash: hash, Data: data}, nil
}

// ValidateValue executes the proposed block on this node's ledger.
func (a *app) ValidateValue(h uint64, v bft.Value) error {
	return a.chain.Validate(h, v.Hash, v.Data)
}

// Commit applies the decided block and checks, after every block on every
// node: the supply invariant, the state hash against every other node's at
// this height, and that each evidence item slashes and jails its offender
// exactly once.
func (a *app) Commit(h uint64, v bft.Value, _ bft.Certificate) error {
	st, events, err := a.chain.Commit(h, v.Hash, v.Data)
	if err != nil {
		return err
	}
	if err := checkSupply(st); err != nil {
		return fmt.Errorf("after height %d: %w", h, err)
	}
	want, seen := a.w.hashes[h]
	if seen && want != st.Hash() {
		return fmt.Errorf("state hash %x at height %d; another node has %x", st.Hash(), h, want)
	}
	if a.w.full {
		// The full check also recomputes the state hash from scratch (it
		// walks all 16k account shards, far more than a block's own cost):
		// on every node after every block in a share of the seeds.
		if err := ledger.CheckInvariant(st); err != nil {
			return fmt.Errorf("after height %d: %w", h, err)
		}
	}
	a.w.hashes[h] = st.Hash()
	if a.w.ext != nil && a.w.ext.Committed != nil {
		a.w.ext.Committed(a.info.Index, h, events)
	}
	blk, err := ledger.DecodeBlock(v.Data)
	if err != nil {
		return err
	}
	a.txs += len(blk.Txs)
	slashes := 0
	for _, e := range events {
		switch e.Kind {
		case ledger.EventSlash:
			if e.Role == ledger.RoleValidator { // the market slashes provider stake
				slashes++
			}
		case ledger.EventTxFailed:
			a.failed++
		}
	}
	if slashes != len(blk.Evidence) {
		return fmt.Errorf("height %d: %d evidence items, %d slashes", h, len(blk.Evidence), slashes)
	}
	for _, ev := range blk.Evidence {
		o := offence{ev.Validator, ev.Height}
		if a.slashed[o]++; a.slashed[o] > 1 {
			return fmt.Errorf("height %d: %s slashed again for height %d", h, ev.Validator, ev.Height)
		}
		if _, err := FromLedger(&ev); err != nil {
			return fmt.Errorf("height %d: committed evidence: %w", h, err)
		}
		if b := st.Bond(ev.Validator); !b.Jailed {
			return fmt.Errorf("height %d: %s slashed but not jailed", h, ev.Validator)
		}
	}
	return a.w.err
}

// ValidatorSet is the ledger's set for height, as consensus wants it; it
// also checks that every node sees the same set at every height.
func (a *app) ValidatorSet(h uint64) (*bft.ValidatorSet, error) {
	if vs, ok := a.vsets[h]; ok {
		return vs, nil
	}
	vals, err := a.chain.ValidatorSet(h)
	if err != nil {
		return nil, err
	}
	vs, err := ValidatorSet(vals)
	if err != nil {
		return nil, err
	}
	if want, ok := a.w.sets[h]; ok && want != vs.Hash() {
		return nil, fmt.Errorf("validator set of height %d differs between nodes", h)
	}
	a.w.sets[h] = vs.Hash()
	a.vsets[h] = vs
	return vs, nil
}

// ReportEvidence implements sim.EvidenceSink.
func (a *app) ReportEvidence(ev bft.Evidence) { a.w.report(ev) }

// Settled implements sim.Settler: every reported offence is punished in
// this node's chain (the run goes on until it is).
func (a *app) Settled() bool {
	for o := range a.w.reported {
		if a.slashed[o] == 0 {
			return false
		}
	}
	return true
}

// checkSupply is the supply invariant on its own (ledger.CheckInvariant
// without the state-hash recomputation):
//
//	sum(balances) + sum(stakes) + sum(unbonding) + sum(escrow)
//	    == genesis supply + minted - burned
func checkSupply(st *ledger.State) error {
	var sum uint64
	st.Accounts(func(_ string, a ledger.Account) bool { sum += a.Balance; return true })
	st.Bonds(func(_ string, b ledger.Bond) bool { sum += b.Validator + b.Provider; return true })
	for _, u := range st.Unbonding() {
		sum += u.Amount
	}
	st.Escrows(func(_ string, v uint64) bool { sum += v; return true })
	g, minted, burned := st.Supply()
	if sum != g+minted-burned {
		return fmt.Errorf("%w: holdings %d != genesis %d + minted %d - burned %d", ledger.ErrInvariant, sum, g, minted, burned)
	}
	return nil
}

// FullCheckEvery: seeds divisible by it run ledger.CheckInvariant (the
// supply invariant and the state-hash recomputation) on every node after
// every block; the others run checkSupply on every node after every
// block. All seeds compare the state hashes of all nodes at every height.
var FullCheckEvery uint64 = 8

// Run plays sc with seed: every node runs its own ledger.Chain under the
// real bft machine in the simulator. The simulator checks consensus
// safety, certificates, double-signing and liveness; the ledger checks are
// in Commit; Run adds that every reported offence was slashed exactly once
// on every honest node with a complete chain.
func Run(sc Scenario, seed uint64) (*Report, error) {
	rep, _, err := run(sc, seed, nil)
	return rep, err
}

// run is Run; prep (tests) may change the world before the run starts.
func run(sc Scenario, seed uint64, prep func(*world)) (*Report, *world, error) {
	w := &world{sc: sc, seed: seed, evKeys: map[[32]byte]bool{}, reported: map[offence]bool{},
		hashes: map[uint64][32]byte{}, sets: map[uint64]bft.Hash{}, apps: map[int]*app{},
		full: seed%FullCheckEvery == 0}
	if prep != nil {
		prep(w)
	}
	res, err := sim.Run(sc.Scenario, seed, w.factory, sim.WithIdentities(w.identities),
		sim.WithReplay("go test ./consensus/simledger -run TestSimLedger -simledger.scenario %s -seed %d -v"))
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{Sim: res, Heights: len(res.Chain), Reported: len(w.reported)}
	// Every node with the whole chain agrees on the slashes; report the
	// longest chain's numbers.
	var best *app
	for i := range len(w.apps) {
		a := w.apps[i]
		if a.chain.State().Height() < uint64(len(res.Chain)) {
			continue
		}
		for o := range w.reported {
			if a.slashed[o] != 1 {
				return nil, nil, &sim.Error{Seed: seed, Scenario: sc.Name, Err: fmt.Errorf("%s: offence of %s at height %d slashed %d times", a.info.ID, o.validator, o.height, a.slashed[o]), Trace: res.Trace()}
			}
		}
		if best == nil {
			best = a
		}
	}
	if best == nil {
		return nil, nil, errors.New("simledger: no node has the decided chain")
	}
	rep.Slashes = len(best.slashed)
	rep.Txs, rep.FailedTxs = best.txs, best.failed
	var prev bft.Hash
	var prevIDs []string
	for h := uint64(1); h <= uint64(len(res.Chain)); h++ {
		vs, ok := best.vsets[h]
		if !ok {
			continue // a restarted node replayed h without asking for its set
		}
		if h > 1 && vs.Hash() != prev {
			rep.SetChanges++
		}
		prev = vs.Hash()
		var ids []string
		for _, v := range vs.Validators() {
			ids = append(ids, v.ID)
		}
		if h > 1 && !slices.Equal(ids, prevIDs) {
			rep.MemberChanges++
		}
		prevIDs = ids
	}
	return rep, w, nil
}
