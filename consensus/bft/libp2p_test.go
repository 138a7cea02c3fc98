package bft_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestLibp2pKeyAsSigner: a node's libp2p Ed25519 key signs its votes
// directly (crypto.PrivKey satisfies Signer), its peer ID is its validator
// ID, and the raw public key verifies those votes and certificates.
func TestLibp2pKeyAsSigner(t *testing.T) {
	var vals []bft.Validator
	var keys []crypto.PrivKey
	for range 4 {
		priv, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := pub.Raw()
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, bft.Validator{ID: id.String(), PubKey: raw, Power: 1})
		keys = append(keys, priv)
	}
	vs, err := bft.NewValidatorSet(vals)
	if err != nil {
		t.Fatal(err)
	}
	var sigs []bft.CommitSig
	a := valueOf("A")
	for i, v := range vals {
		m, err := bft.New(bft.Config{ChainID: "c", ID: v.ID, Signer: keys[i], App: fuzzApp{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.StartHeight(1, vs, nil); err != nil {
			t.Fatal(err)
		}
		m.Ready()
		p := &bft.Proposal{Height: 1, Round: 0, POLRound: -1, Value: a, Proposer: vs.Proposer(1, 0)}
		if p.Proposer == v.ID {
			continue // it proposed its own value already
		}
		if err := m.Step(bft.Message{Proposal: p}); err != nil {
			t.Fatal(err)
		}
		rd := m.Ready()
		if len(rd.Messages) != 1 || rd.Messages[0].Vote == nil {
			t.Fatalf("want one prevote, got %v", rd.Messages)
		}
		if err := bft.VerifyMessage("c", vs, rd.Messages[0]); err != nil {
			t.Fatalf("libp2p-signed prevote: %v", err)
		}
		pc := bft.Vote{Type: bft.Precommit, Height: 1, Round: 0, BlockHash: a.Hash, Validator: v.ID}
		sig, err := keys[i].Sign(bft.VoteSignBytes("c", &pc))
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, bft.CommitSig{Validator: v.ID, Signature: sig})
	}
	slices.SortFunc(sigs, func(x, y bft.CommitSig) int { return strings.Compare(x.Validator, y.Validator) })
	c := bft.Certificate{Height: 1, Round: 0, BlockHash: a.Hash, Signatures: sigs}
	if err := c.Verify("c", vs); err != nil {
		t.Errorf("certificate of libp2p signatures: %v", err)
	}
}
