package simledger

import (
	"errors"
	"testing"

	"github.com/gpunode/gpunode/consensus"
	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/consensus/bft/sim"
	"github.com/gpunode/gpunode/consensus/ledger"
	"github.com/gpunode/gpunode/protocol"
)

// byzantineRun returns the world of the first byzantine-4 run that slashed
// something, and one committed evidence item of it.
func byzantineRun(t *testing.T, real bool) (*world, ledger.Evidence) {
	t.Helper()
	sc := Scenarios()[4].Scenario
	if sc.Name != "byzantine-4" {
		t.Fatalf("scenario 4 is %s", sc.Name)
	}
	for seed := uint64(0); seed < 64; seed++ {
		if real != (seed%sim.RealCryptoEvery == 0) {
			continue
		}
		rep, w, err := run(sc, seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Slashes > 0 {
			return w, w.evidence[0]
		}
	}
	t.Fatal("no byzantine-4 seed slashed anything")
	return nil, ledger.Evidence{}
}

// chainTo applies empty blocks from the run's genesis up to height h.
func chainTo(t *testing.T, w *world, st *ledger.State, h uint64) *ledger.State {
	t.Helper()
	for st.Height() < h {
		_, next, _, _, err := w.led.Propose(st, header(t, st), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		st = next
	}
	return st
}

func header(t *testing.T, st *ledger.State) ledger.Header {
	t.Helper()
	vals, err := ledger.ValidatorSet(st, st.Height()+1)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Header{ChainID: st.ChainID(), Proposer: vals[0].ID, Time: int64(st.Height())}
}

// applyWith builds the next block on st carrying evs (bypassing Propose,
// which would leave bad evidence out) and applies it.
func applyWith(t *testing.T, w *world, st *ledger.State, evs ...ledger.Evidence) (*ledger.State, error) {
	t.Helper()
	blk, _, _, _, err := w.led.Propose(st, header(t, st), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	blk.Evidence = evs
	blk.Header.EvidenceRoot = ledger.EvidenceRoot(evs)
	next, _, err := w.led.Apply(st, blk)
	return next, err
}

// proposeApply proposes the next block on st with evs, checks that all of
// them went in, and applies it as a validator would.
func proposeApply(t *testing.T, w *world, st *ledger.State, evs ...ledger.Evidence) (*ledger.State, error) {
	t.Helper()
	blk, _, _, _, err := w.led.Propose(st, header(t, st), nil, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(blk.Evidence) != len(evs) {
		t.Fatalf("Propose kept %d of %d evidence items", len(blk.Evidence), len(evs))
	}
	next, _, err := w.led.Apply(st, blk)
	return next, err
}

// TestEvidenceFromSimulator: an equivocation the simulator's Byzantine
// validator made and an honest machine reported slashes once on a fresh
// chain, and invalid, duplicate and expired versions of it are rejected.
// With Ed25519 signatures the ledger uses consensus.EvidenceVerifier.
func TestEvidenceFromSimulator(t *testing.T) {
	for _, real := range []bool{false, true} {
		w, ev := byzantineRun(t, real)
		if real {
			vals, err := ledger.ValidatorSet(w.genesis, ev.Height)
			if err != nil {
				t.Fatal(err)
			}
			if err := (consensus.EvidenceVerifier{}).VerifyEvidence(sim.ChainID, &ev, vals); err != nil {
				t.Fatalf("consensus.EvidenceVerifier rejects the simulator's evidence: %v", err)
			}
		}
		st := chainTo(t, w, w.genesis, ev.Height)

		// Propose takes it; a hand-made block with it applies and slashes.
		blk, _, _, _, err := w.led.Propose(st, header(t, st), nil, []ledger.Evidence{ev})
		if err != nil || len(blk.Evidence) != 1 {
			t.Fatalf("Propose kept %d evidence items (err %v); want 1", len(blk.Evidence), err)
		}
		tampered := map[string]ledger.Evidence{}
		sig := ev
		sig.A = flipSignature(t, ev)
		tampered["bad signature"] = sig
		same := ev
		same.B = ev.A
		tampered["identical messages"] = same
		other := ev
		other.Validator = w.keys.IDs[0]
		if other.Validator == ev.Validator {
			other.Validator = w.keys.IDs[1]
		}
		tampered["wrong validator"] = other
		hgt := ev
		hgt.Round++
		tampered["wrong round"] = hgt
		garbage := ev
		garbage.B = []byte{0xa0}
		tampered["undecodable"] = garbage
		for name, bad := range tampered {
			if _, err := applyWith(t, w, st, bad); !errors.Is(err, ledger.ErrBadEvidence) {
				t.Errorf("%s: Apply = %v; want ErrBadEvidence", name, err)
			}
			b, _, _, _, err := w.led.Propose(st, header(t, st), nil, []ledger.Evidence{bad})
			if err != nil || len(b.Evidence) != 0 {
				t.Errorf("%s: Propose kept it (%v)", name, err)
			}
		}
		before := st.Bond(ev.Validator).Validator
		next, err := proposeApply(t, w, st, ev)
		if err != nil {
			t.Fatalf("valid evidence: %v", err)
		}
		p := next.Params()
		if b := next.Bond(ev.Validator); !b.Jailed || before-b.Validator != p.SlashFraction.Of(before) {
			t.Errorf("after slash: bond %+v, before %d; want jailed and %d burned", b, before, p.SlashFraction.Of(before))
		}
		if err := ledger.CheckInvariant(next); err != nil {
			t.Fatal(err)
		}
		// Exactly once: again in the next block, or twice in one block.
		if _, err := applyWith(t, w, next, ev); !errors.Is(err, ledger.ErrDuplicateEvidence) {
			t.Errorf("second slash: %v; want ErrDuplicateEvidence", err)
		}
		if _, err := applyWith(t, w, st, ev, ev); !errors.Is(err, ledger.ErrDuplicateEvidence) {
			t.Errorf("twice in a block: %v; want ErrDuplicateEvidence", err)
		}
		// Expired: past EvidenceMaxAge it is rejected and Propose drops it.
		old := chainTo(t, w, st, ev.Height+p.EvidenceMaxAge)
		if _, err := applyWith(t, w, old, ev); !errors.Is(err, ledger.ErrExpiredEvidence) {
			t.Errorf("expired: %v; want ErrExpiredEvidence", err)
		}
		if b, _, _, _, _ := w.led.Propose(old, header(t, old), nil, []ledger.Evidence{ev}); len(b.Evidence) != 0 {
			t.Error("Propose kept expired evidence")
		}
		// One block younger it is still accepted.
		if _, err := proposeApply(t, w, chainTo(t, w, st, ev.Height+p.EvidenceMaxAge-1), ev); err != nil {
			t.Errorf("evidence at max age: %v", err)
		}
	}
}

// flipSignature returns ev.A with one signature bit flipped.
func flipSignature(t *testing.T, ev ledger.Evidence) []byte {
	t.Helper()
	var m bft.Message
	if err := protocol.Unmarshal(ev.A, &m); err != nil {
		t.Fatal(err)
	}
	if m.Vote != nil {
		m.Vote.Signature[0] ^= 1
	} else {
		m.Proposal.Signature[0] ^= 1
	}
	raw, err := protocol.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestToLedgerRoundTrip: FromLedger inverts ToLedger and rejects mismatched
// metadata.
func TestToLedgerRoundTrip(t *testing.T) {
	a := &bft.Vote{Type: bft.Precommit, Height: 3, Round: 1, Validator: "v", Signature: []byte{1}}
	b := *a
	b.BlockHash[0] = 7
	for _, ev := range []bft.Evidence{
		{VoteA: a, VoteB: &b},
		{ProposalA: &bft.Proposal{Height: 2, Round: 0, POLRound: -1, Proposer: "p"}, ProposalB: &bft.Proposal{Height: 2, POLRound: -1, Proposer: "p", Value: bft.Value{Hash: bft.Hash{1}}}},
	} {
		le, err := ToLedger(ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromLedger(&le)
		if err != nil {
			t.Fatal(err)
		}
		if back.String() != ev.String() {
			t.Errorf("round trip: %s; want %s", &back, &ev)
		}
		le.Height++
		if _, err := FromLedger(&le); !errors.Is(err, ledger.ErrBadEvidence) {
			t.Errorf("wrong height: %v", err)
		}
	}
	if _, err := ToLedger(bft.Evidence{}); err == nil {
		t.Error("empty evidence converted")
	}
}
