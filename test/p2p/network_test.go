package p2p_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/protocol"
)

// TestTwentyNodes is issue 2's acceptance 3: 20 nodes on loopback TCP, each
// bootstrapped from the first only, fill their routing tables to at least 10
// peers, and one message published on a topic reaches all 20.
func TestTwentyNodes(t *testing.T) {
	const (
		nodes  = 20
		minRT  = 10
		topic  = "acceptance"
		budget = 4 * time.Minute // a deadline for failures only; a run takes ~13 CPU-seconds with -race
	)
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	defer cancel()
	start := time.Now()

	first := startNode(t, ctx, testConfig())
	seed := first.Addrs()[0].String()
	all := []*node.Node{first}
	// One after another, as a network grows: each newcomer's start-up
	// refresh meets the nodes before it, and they meet it when it queries them.
	for range nodes - 1 {
		all = append(all, startNode(t, ctx, testConfig(seed)))
	}
	t.Logf("%d nodes started in %v; routing tables%s", nodes, time.Since(start), rtSizes(all))

	waitUntil(t, ctx, func() bool {
		for _, n := range all {
			if n.RoutingTableSize() < minRT {
				return false
			}
		}
		return true
	}, func() string { return "routing tables " + rtSizes(all) })
	t.Logf("routing tables >= %d after %v: %s", minRT, time.Since(start), rtSizes(all))

	topics := make([]*node.Topic, len(all))
	subs := make([]*node.Subscription, len(all))
	for i, n := range all {
		var err error
		if topics[i], err = n.JoinTopic(topic, nil); err != nil {
			t.Fatal(err)
		}
		if subs[i], err = topics[i].Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	// Publish once every node knows some subscribers, so the message has
	// somewhere to go; gossip repairs the rest of the mesh.
	waitUntil(t, ctx, func() bool {
		for _, tp := range topics {
			if len(tp.Peers()) < 3 {
				return false
			}
		}
		return true
	}, func() string { return "topic peers " + topicPeers(topics) })

	publisher := all[len(all)-1]
	body := pingBody{Seq: 1, Note: "hello, twenty"}
	if err := topics[len(all)-1].Publish(ctx, protocol.KindPing, body); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var got sync.WaitGroup
	for i, s := range subs {
		got.Go(func() {
			m, err := s.Next(ctx)
			if err != nil {
				t.Errorf("node %d: no message: %v", i, err)
				return
			}
			var b pingBody
			if err := m.Envelope.Decode(&b); err != nil {
				t.Errorf("node %d: decode: %v", i, err)
				return
			}
			author, _ := m.Envelope.AuthorID()
			if b != body || author != publisher.PeerID() || m.Envelope.Kind != protocol.KindPing {
				t.Errorf("node %d: got %+v from %s kind %s; want %+v from %s", i, b, author, m.Envelope.Kind, body, publisher.PeerID())
			}
		})
	}
	got.Wait()
	t.Logf("message reached all %d nodes after %v", nodes, time.Since(start))
}

func rtSizes(ns []*node.Node) string {
	s := ""
	for _, n := range ns {
		s += fmt.Sprintf(" %d", n.RoutingTableSize())
	}
	return s
}

func topicPeers(ts []*node.Topic) string {
	s := ""
	for _, t := range ts {
		s += fmt.Sprintf(" %d", len(t.Peers()))
	}
	return s
}
