package bft_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/protocol"
)

func wireSamples(t testing.TB) []any {
	a, b := valueOf("A"), valueOf("B")
	p := &bft.Proposal{Height: 7, Round: 2, POLRound: 1, Value: a, Proposer: "v1"}
	p.Signature = bft.ProposalSignBytes("c", p)[:64] // any bytes; signatures are checked separately
	v := signedVote(bft.Precommit, 7, 2, a.Hash, "v0")
	nilVote := signedVote(bft.Prevote, 7, 3, bft.Hash{}, "v2")
	va, vb := signedVote(bft.Prevote, 7, 1, a.Hash, "v3"), signedVote(bft.Prevote, 7, 1, b.Hash, "v3")
	return []any{
		&bft.Message{Proposal: p},
		&bft.Message{Vote: v},
		&bft.Message{Vote: nilVote},
		&bft.Certificate{Height: 7, Round: 2, BlockHash: a.Hash, Signatures: []bft.CommitSig{signedPrecommit(7, 2, a.Hash, "v0"), signedPrecommit(7, 2, a.Hash, "v1")}},
		&bft.Evidence{VoteA: va, VoteB: vb},
		&bft.Validator{ID: "v0", PubKey: testKey("v0").Public().(ed25519.PublicKey), Power: 3},
	}
}

// TestWireRoundTrip: the wire types encode with protocol.Marshal, decode
// strictly with protocol.Unmarshal to an equal value, and signatures over
// the decoded messages still verify.
func TestWireRoundTrip(t *testing.T) {
	vs := testVals(t, 1, 1, 1, 1)
	for _, s := range wireSamples(t) {
		data, err := protocol.Marshal(s)
		if err != nil {
			t.Fatalf("%T: %v", s, err)
		}
		var again []byte
		switch s := s.(type) {
		case *bft.Message:
			var m bft.Message
			if err := protocol.Unmarshal(data, &m); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			if m.Vote != nil {
				if err := bft.VerifyMessage("c", vs, m); err != nil {
					t.Errorf("decoded vote does not verify: %v", err)
				}
				if m.Vote.BlockHash != s.Vote.BlockHash {
					t.Errorf("hash changed: %s vs %s", m.Vote.BlockHash, s.Vote.BlockHash)
				}
			} else if m.Proposal.Value.Hash != s.Proposal.Value.Hash || !bytes.Equal(m.Proposal.Value.Data, s.Proposal.Value.Data) || m.Proposal.POLRound != 1 {
				t.Errorf("proposal changed: %+v", m.Proposal)
			}
			again, _ = protocol.Marshal(&m)
		case *bft.Certificate:
			var c bft.Certificate
			if err := protocol.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			if err := c.Verify("c", testVals(t, 1, 1)); err != nil {
				t.Errorf("decoded certificate: %v", err)
			}
			again, _ = protocol.Marshal(&c)
		case *bft.Evidence:
			var e bft.Evidence
			if err := protocol.Unmarshal(data, &e); err != nil {
				t.Fatal(err)
			}
			if err := e.Verify("c", vs); err != nil {
				// Not necessarily canonical order here; check the pair survived.
				if e.VoteA == nil || e.VoteB == nil || e.VoteA.BlockHash != s.VoteA.BlockHash {
					t.Errorf("decoded evidence: %+v", e)
				}
			}
			again, _ = protocol.Marshal(&e)
		case *bft.Validator:
			var v bft.Validator
			if err := protocol.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			again, _ = protocol.Marshal(&v)
		}
		if !bytes.Equal(data, again) {
			t.Errorf("%T: re-encoding differs", s)
		}
	}
}

// FuzzWireMessage: arbitrary bytes decoded as a consensus message never
// panic in VerifyMessage or Step, and what decodes re-encodes identically.
func FuzzWireMessage(f *testing.F) {
	for _, s := range wireSamples(f) {
		if m, ok := s.(*bft.Message); ok {
			f.Add(protocol.MustMarshal(m))
		}
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x02, 0xa0})
	vals := []bft.Validator{}
	for _, id := range []string{"v0", "v1", "v2", "v3"} {
		vals = append(vals, bft.Validator{ID: id, PubKey: testKey(id).Public().(ed25519.PublicKey), Power: 1})
	}
	vs, err := bft.NewValidatorSet(vals)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m bft.Message
		if err := protocol.Unmarshal(data, &m); err != nil {
			return
		}
		again, err := protocol.Marshal(&m)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded message re-encodes differently: %v", err)
		}
		_ = bft.VerifyMessage("c", vs, m)
		mc, err := bft.New(bft.Config{ChainID: "c", ID: "v2", Signer: edSigner(testKey("v2")), App: fuzzApp{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := mc.StartHeight(7, vs, nil); err != nil {
			t.Fatal(err)
		}
		_ = mc.Step(m)
		mc.Ready()
	})
}
