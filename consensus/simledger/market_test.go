package simledger

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/settle"
	"github.com/gpunode/gpunode/protocol"
)

// The market in simulated chains: tight windows, so that the few heights
// of a run see awards, results, checks, attestations and payments.
var simMarketParams = settle.Params{ChallengeWindow: 1, BlockTimeMs: 1000, SlashAmount: 5, ExpiryGraceMs: 30_000, CheckBlocks: 2}

// marketExtension puts market txs into the workload (consensus/ does not
// import the market outside tests). The last user rents; every other
// account may stake as a provider and bid. Each block: providers without
// enough stake may stake; the renter may open a job (replicate:1,
// replicate:2 or spotcheck:0.5, 1 to 3 segments); for every open job the
// renter may award its open segments on fresh bids, lease holders submit
// results (one in six wrong), validators of the set attest "ok" for
// disputed and checking segments, the renter rarely cancels; a provider
// rarely exits. count, if not nil, counts committed market events (over
// every node).
func marketExtension(count map[ledger.EventKind]int) *Extension {
	opts, err := settle.Options(simMarketParams)
	if err != nil {
		panic(err)
	}
	ext := &Extension{Options: opts, Txs: marketTxs}
	if count != nil {
		ext.Committed = func(_ int, _ uint64, evs []ledger.Event) {
			for _, e := range evs {
				if strings.HasPrefix(string(e.Kind), "market.") {
					count[e.Kind]++
				}
			}
		}
	}
	return ext
}

func marketTxs(rng *rand.Rand, st *ledger.State, keys *ledger.Keyring, sign func(string, ledger.TxType, any) []byte) [][]byte {
	h := st.Height() + 1
	p := st.Params()
	renter := keys.IDs[len(keys.IDs)-1]
	provs := keys.IDs[:len(keys.IDs)-1]
	var out [][]byte
	add := func(from string, typ ledger.TxType, body any) { out = append(out, sign(from, typ, body)) }
	var bidders []string
	for _, pr := range provs {
		b := st.Bond(pr)
		switch {
		case b.Provider < p.MinProviderStake:
			if rng.IntN(2) == 0 {
				add(pr, ledger.TxStake, ledger.Stake{Role: ledger.RoleProvider, Amount: 100 * p.MinProviderStake})
			}
		case !b.Jailed && !settle.Exiting(st, pr):
			bidders = append(bidders, pr)
		}
	}
	if rng.IntN(3) == 0 {
		pol := []string{"replicate:1", "replicate:2", "spotcheck:0.5"}[rng.IntN(3)]
		s := market.JobSpec{Runtime: "echo", Require: market.Requirements{Executor: "wasm"}, Segments: 1 + uint32(rng.IntN(3)),
			MaxPrice: 50, Deadline: 1 + uint32(rng.IntN(2)), Verify: pol, Salt: h}
		reps := uint64(1)
		if pol == "replicate:2" {
			reps = 2
		}
		add(renter, settle.TxOpenJob, settle.OpenJob{Spec: s, Deposit: 50 * uint64(s.Segments) * reps})
	}
	vals, err := ledger.ValidatorSet(st, h)
	if err != nil {
		panic(err) // the set of the next height is always known
	}
	var jobs []protocol.CID
	st.Escrows(func(id string, amount uint64) bool {
		if c, err := protocol.ParseCID(strings.TrimPrefix(id, "job/")); err == nil && amount > 0 {
			jobs = append(jobs, c)
		}
		return true
	})
	for _, id := range jobs {
		j, ok, err := settle.JobOf(st, id)
		if err != nil {
			panic(err)
		}
		if !ok {
			continue
		}
		open := false
		for i, seg := range j.Segments {
			open = open || seg.State == settle.SegOpen
			switch seg.State {
			case settle.SegLeased:
				for _, l := range seg.Leases {
					if l.Output.Defined() || rng.IntN(3) == 0 {
						continue
					}
					out := "ok"
					if rng.IntN(6) == 0 {
						out = "bad"
					}
					add(l.Provider, settle.TxSubmitResult, settle.SubmitResult{Job: id, Segment: uint32(i), Output: simOutput(out)})
				}
			case settle.SegDisputed, settle.SegChecking:
				for _, v := range vals {
					if rng.IntN(2) == 0 || slices.ContainsFunc(seg.Attests, func(a settle.Attestation) bool { return a.Validator == v.ID }) {
						continue
					}
					add(v.ID, settle.TxAttest, settle.Attest{Job: id, Segment: uint32(i), Output: simOutput("ok")})
				}
			}
		}
		switch {
		case !open || j.Cancelled:
		case rng.IntN(20) == 0:
			add(renter, settle.TxCancelJob, settle.CancelJob{Job: id})
		case len(bidders) > 0 && rng.IntN(2) == 0:
			var bids [][]byte
			for _, pr := range bidders {
				b := market.Bid{Job: id, Provider: pr, Price: 10 + rng.Uint64N(40), Capacity: 1 + uint32(rng.IntN(3)), Expiry: 1 << 50, Nonce: h}
				raw, _, err := protocol.Seal(keys.Key(pr), st.ChainID(), protocol.KindBid, time.UnixMilli(0), b)
				if err != nil {
					panic(err)
				}
				bids = append(bids, raw)
			}
			add(renter, settle.TxAwardLease, settle.AwardLease{Job: id, Bids: bids})
		}
	}
	if len(bidders) > 2 && rng.IntN(40) == 0 {
		add(bidders[rng.IntN(len(bidders))], settle.TxExit, settle.Exit{})
	}
	return out
}

func simOutput(s string) protocol.CID { return protocol.NewCID(protocol.BlockCID([]byte(s))) }
