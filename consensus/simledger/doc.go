// Package simledger runs the real settlement ledger under the real BFT
// machine in the deterministic simulator (consensus/bft/sim): every
// simulated node, honest or Byzantine, has its own ledger.Chain behind the
// simulator's Application hook.
//
//   - Propose: the proposer builds a block from a seeded random workload of
//     signed txs (transfers, provider and validator stakes and unstakes,
//     unjails, some of them failing with receipts) and the evidence in its
//     pool, executed by ledger.Chain.Propose. An Extension adds an
//     application's tx handlers and txs: this package's tests run every
//     scenario with the market's (market/settle: jobs, awards, results,
//     attestations, exits), which only tests import.
//   - Validate: every node executes proposed blocks with Chain.Validate.
//   - Commit: Chain.Commit, then checks after every block on every node:
//     the supply invariant (ledger.CheckInvariant with the state-hash
//     recomputation in every FullCheckEvery-th seed, the supply sum in the
//     others), the state hash and validator set equal to every other
//     node's at that height, and every evidence item slashing and jailing
//     its offender exactly once.
//   - ValidatorSet: the ledger's set of each height, so stake changes take
//     effect at height+2; the "valset" scenario starts with 4 of 6 nodes
//     as validators and the others join and leave by staking.
//   - Evidence: equivocations of the simulator's Byzantine validators that
//     a machine reports go (as instant gossip) into every node's evidence
//     pool, converted by ToLedger and checked by EvidenceVerifier; a run
//     only ends when every honest node has committed a slash of every
//     reported offence (sim.Settler).
//
// The simulator checks the rest: no two honest commits differ at a height,
// certificates verify, no honest node double-signs, every equivocation an
// honest node accepted yields evidence, liveness after the last fault.
//
// # Running
//
//	go test ./consensus/simledger                          # 1,000 seeds over Scenarios()
//	go test ./consensus/simledger -sim.seeds=5000          # more (GPUNODE_E2E=1: 100,000)
//	go test ./consensus/simledger -run TestSimLedger -simledger.scenario byzantine-4 -seed 17 -v
//
// The last form replays one seed and prints its trace; a failing seed
// prints that command.
package simledger
