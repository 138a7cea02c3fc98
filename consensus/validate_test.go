package consensus

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/consensus/bft"
	"github.com/gpunode/gpunode/protocol"
)

func TestTopicValidator(t *testing.T) {
	d := newDriver(t) // 4 validators; the Service is validator 0 of 4, alone: it stays at height 1
	s, err := New(Config{Genesis: d.g, Key: d.keys.Key(d.self), KV: newMemKV(), Timeouts: fastTimeouts, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.Decode(d.self)
	v1 := d.keys.IDs[1]
	peer1, _ := peer.Decode(v1)
	seal := func(signer string, kind protocol.Kind, body any) *protocol.Envelope {
		_, env, err := protocol.Seal(d.keys.Key(signer), testChain, kind, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	vote := func(h uint64) *bft.Vote { return d.vote(v1, bft.Prevote, h, bft.Hash{1}).Vote }
	bad := vote(1)
	bad.Signature[0] ^= 1
	notVal := &bft.Vote{Type: bft.Prevote, Height: 1, BlockHash: bft.Hash{1}, Validator: "12D3KooWNotAValidator"}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		from peer.ID
		env  *protocol.Envelope
		want Verdict
	}{
		{"valid vote", peer1, seal(v1, protocol.KindVote, vote(1)), Accept},
		{"valid vote for the next height", peer1, seal(v1, protocol.KindVote, vote(2)), Accept},
		{"bad signature", peer1, seal(v1, protocol.KindVote, bad), Reject},
		{"author not a validator", peer1, seal(v1, protocol.KindVote, notVal), Reject},
		{"stale height", peer1, seal(v1, protocol.KindVote, vote(0)), Ignore},
		{"far future height", peer1, seal(v1, protocol.KindVote, vote(9)), Ignore},
		{"wrong kind", peer1, seal(v1, protocol.KindPing, vote(1)), Reject},
		{"own publish", self, seal(d.self, protocol.KindVote, d.vote(d.self, bft.Prevote, 1, bft.Hash{2}).Vote), Accept},
		{"own publish of another kind", self, seal(d.self, protocol.KindPing, vote(1)), Reject},
	} {
		if got := s.validateConsensus(ctx, c.from, c.env); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// An accepted proposal is handed to readTopic decoded, once.
	prop := d.proposal(s.eng, v1, 0).Proposal
	penv := seal(v1, protocol.KindProposal, prop)
	if got := s.validateConsensus(ctx, peer1, penv); got != Accept {
		t.Fatalf("valid proposal: %v, want accept", got)
	}
	if got := s.takeDecoded(penv); got == nil || got.Value.Hash != prop.Value.Hash || !bytes.Equal(got.Value.Data, prop.Value.Data) {
		t.Fatalf("decoded proposal kept for readTopic: %v", got)
	}
	if s.takeDecoded(penv) != nil {
		t.Fatal("a decoded proposal was handed out twice")
	}
	for range 2 * maxDecoded {
		s.keepDecoded(&protocol.Envelope{}, prop)
	}
	if n := len(s.decoded); n > maxDecoded {
		t.Fatalf("%d decoded proposals kept, bound %d", n, maxDecoded)
	}
	if s.maxSeen.Load() != 8 {
		t.Errorf("far-future message noted height %d, want 8 (block sync target)", s.maxSeen.Load())
	}
	// A vote re-sealed by a non-validator is rejected: only validators may
	// rebroadcast others' votes.
	out := newDriverSeed(t, 99)
	_, env, err := protocol.Seal(out.keys.Key(out.keys.IDs[0]), testChain, protocol.KindVote, time.Now(), vote(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.validateConsensus(ctx, peer1, env); got != Reject {
		t.Errorf("vote relayed by a non-validator: %v, want reject", got)
	}
}
