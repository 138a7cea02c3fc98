package market_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/market"
	"github.com/gpunode/gpunode/market/agent"
	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/protocol"
)

// outsider is a plain libp2p peer, outside gpunode's validation, that
// gossips whatever bytes a test gives it on the bids topic.
type outsider struct {
	t     *testing.T
	id    peer.ID
	topic *pubsub.Topic
}

func newOutsider(t *testing.T, to *node.Daemon) *outsider {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx := context.Background()
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: to.PeerID(), Addrs: to.Node().Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(protocol.Topic(network, protocol.TopicBids))
	if err != nil {
		t.Fatal(err)
	}
	// Subscribed, so the renter counts it as a topic peer.
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !containsPeer(topic.ListPeers(), to.PeerID()) {
		select {
		case <-deadline:
			t.Fatal("the renter never joined the outsider's view of the bids topic")
		case <-tick.C:
		}
	}
	return &outsider{t: t, id: h.ID(), topic: topic}
}

func containsPeer(ps []peer.ID, p peer.ID) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func (o *outsider) send(raw []byte) {
	o.t.Helper()
	if err := o.topic.Publish(context.Background(), raw); err != nil {
		o.t.Fatal(err)
	}
}

func seal(t *testing.T, key crypto.PrivKey, b *market.Bid, at time.Time) []byte {
	t.Helper()
	raw, _, err := protocol.Seal(key, network, protocol.KindBid, at, b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Acceptance 5: bids with bad signatures, for unknown jobs, above the max
// price, after the close, replayed, or from unstaked peers are rejected at
// the gossip validator and never reach the award.
func (n *net) testBadBids(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := n.renter.d.Market()
	// A job nobody can serve keeps its round open (no provider matches, so
	// the round does not close early); a second one closes in a second.
	gpu := []string{"NVIDIA H100 80GB HBM3"}
	open, err := m.SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Segments: 1, MaxPrice: 1000, GPUModels: gpu, GPUCount: 1, AuctionMs: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := m.SubmitJob(ctx, agent.SubmitJobRequest{Program: n.program, Segments: 1, MaxPrice: 1000, GPUModels: gpu, GPUCount: 1, AuctionMs: 500, Salt: 1})
	if err != nil {
		t.Fatal(err)
	}
	n.waitFor(ctx, "the short round closed", func() bool {
		v, _ := m.Bids(closed.Job)
		return len(v.Rounds) > 0 && v.Rounds[0].Closed
	})
	openID, _ := protocol.ParseCID(open.Job)
	closedID, _ := protocol.ParseCID(closed.Job)
	staked := n.vals[0]
	key, err := node.LoadKey(staked.d.Home().KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	stakedID := staked.d.PeerID().String()
	unstakedKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	unstakedPeer, _ := peer.IDFromPrivateKey(unstakedKey)
	now := time.Now()
	bid := func(job protocol.CID, provider string, price uint64, nonce uint64) *market.Bid {
		return &market.Bid{Job: job, Provider: provider, Price: price, Capacity: 1, Expiry: now.Add(5 * time.Minute).UnixMilli(), Nonce: nonce}
	}
	o := newOutsider(t, n.renter.d)

	// A good bid first: it is admitted, so the path works.
	good := bid(openID, stakedID, 700, 1)
	o.send(seal(t, key, good, now))
	n.waitFor(ctx, "the good bid admitted", func() bool {
		v, _ := m.Bids(open.Job)
		return len(v.Rounds) > 0 && len(v.Rounds[0].Bids) == 1
	})

	badSig := seal(t, key, bid(openID, stakedID, 600, 2), now)
	env, err := protocol.Open(badSig, network)
	if err != nil {
		t.Fatal(err)
	}
	env.Signature[len(env.Signature)-1] ^= 0xff
	badSig = protocol.MustMarshal(env)
	unknown, _ := protocol.ParseCID(protocol.BlockCID([]byte("no such job")).String())
	cases := []struct {
		name, job, reason string
		raw               []byte
	}{
		// First, before the renter starts that job's next round.
		{"after close", closed.Job, "auction closed", seal(t, key, bid(closedID, stakedID, 500, 5), now)},
		{"unknown job", unknown.String(), "unknown job", seal(t, key, bid(unknown, stakedID, 500, 3), now)},
		{"above max price", open.Job, "above max price", seal(t, key, bid(openID, stakedID, 5000, 4), now)},
		// The same (provider, job, nonce) as the admitted bid, sealed again.
		{"replayed", open.Job, "replayed", seal(t, key, good, now.Add(time.Millisecond))},
		{"unstaked", open.Job, "not staked", seal(t, unstakedKey, bid(openID, unstakedPeer.String(), 500, 6), now)},
	}
	for _, c := range cases {
		o.send(c.raw)
		n.waitFor(ctx, c.name+" counted as rejected", func() bool {
			v, _ := m.Bids(c.job)
			return v.Rejected[c.reason] > 0
		})
	}
	// The bad signature fails in the node's envelope check, before the
	// market sees it: the sender's gossip score drops below zero.
	o.send(badSig)
	n.waitFor(ctx, "the outsider penalised", func() bool {
		s, ok := n.renter.d.Node().PeerScore(o.id)
		return ok && s < 0
	})
	v, _ := m.Bids(open.Job)
	if len(v.Rounds) != 1 || len(v.Rounds[0].Bids) != 1 || v.Rounds[0].Bids[0].Price != 700 || v.Rounds[0].Bids[0].Nonce != 1 {
		t.Fatalf("bid set after the bad bids: %+v; want only the good bid", v.Rounds)
	}
	t.Logf("rejected: %v (open job), %v (closed job)", v.Rejected, mustBids(m, closed.Job).Rejected)
	for _, id := range []string{open.Job, closed.Job} {
		if _, err := m.CancelJob(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	n.waitFor(ctx, "both jobs cancelled", func() bool {
		return n.job(open.Job).State == "cancelled" && n.job(closed.Job).State == "cancelled"
	})
	if leases := leasesOf(n.job(open.Job)); len(leases) != 0 {
		t.Fatalf("leases on the bad-bid job: %v", leases)
	}
	n.checkInvariant()
}

func mustBids(m *agent.Agent, id string) agent.BidsView {
	v, _ := m.Bids(id)
	return v
}
