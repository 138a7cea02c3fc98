package p2p_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/gpunode/gpunode/node"
	"github.com/gpunode/gpunode/protocol"
)

// badMessage is one attack: bytes that pass gossipsub's own checks (the
// attacker signs its pubsub messages properly) but not protocol.Open.
type badMessage struct {
	name string
	data []byte
	want error // what protocol.Open must say about it
}

// badMessages builds the four attacks of issue 2's acceptance 4, authored by
// key for chainID.
func badMessages(t *testing.T, key crypto.PrivKey, chainID string) []badMessage {
	t.Helper()
	now := time.Now()
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}

	// Oversized: a ping whose payload exceeds the ping limit, otherwise
	// well-formed and properly signed (Seal itself refuses to build it).
	limit, _ := protocol.MaxPayload(protocol.KindPing)
	payload, err := protocol.Marshal(strings.Repeat("x", limit+1))
	if err != nil {
		t.Fatal(err)
	}
	big := &protocol.Envelope{Kind: protocol.KindPing, ChainID: chainID, Author: []byte(id), Timestamp: now.UnixMilli(), Payload: payload}
	msg, err := big.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	if big.Signature, err = key.Sign(msg); err != nil {
		t.Fatal(err)
	}
	oversized := mustMarshal(t, big)

	// Unsigned: a sealed ping with its signature removed.
	_, env, err := protocol.Seal(key, chainID, protocol.KindPing, now, pingBody{Seq: 2, Note: "unsigned"})
	if err != nil {
		t.Fatal(err)
	}
	env.Signature = nil
	unsigned := mustMarshal(t, env)

	// Wrongly signed: a ping carrying the signature of another key.
	_, env, err = protocol.Seal(key, chainID, protocol.KindPing, now, pingBody{Seq: 3, Note: "forged"})
	if err != nil {
		t.Fatal(err)
	}
	other := newKey(t)
	if env.Signature, err = other.Sign([]byte("something else entirely")); err != nil {
		t.Fatal(err)
	}
	forged := mustMarshal(t, env)

	return []badMessage{
		{"malformed", []byte("\xa1\x01this is not an envelope"), protocol.ErrMalformed},
		{"oversized", oversized, protocol.ErrTooLarge},
		{"unsigned", unsigned, protocol.ErrUnsigned},
		{"wrongly signed", forged, protocol.ErrBadSignature},
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := protocol.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadMessagesRejected is issue 2's acceptance 4: an attacker running
// plain go-libp2p-pubsub on our topic sends a malformed, an oversized, an
// unsigned and a wrongly signed message. None reaches the victim's
// application, and the victim's score of the attacker drops below zero.
func TestBadMessagesRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const topicName = "attack"

	victim := startNode(t, ctx, testConfig())
	vt, err := victim.JoinTopic(topicName, nil)
	if err != nil {
		t.Fatal(err)
	}
	vsub, err := vt.Subscribe()
	if err != nil {
		t.Fatal(err)
	}

	attackerKey := newKey(t)
	attackerID, _ := peer.IDFromPrivateKey(attackerKey)
	h, err := libp2p.New(
		libp2p.Identity(attackerKey),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// Default gossipsub: StrictSign with the attacker's own key, so
	// gossipsub's signature check on the victim passes.
	aps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	at, err := aps.Join(vt.FullName())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, victim.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool { return contains(at.ListPeers(), victim.PeerID()) },
		func() string { return "attacker never saw the victim's subscription" })

	bad := badMessages(t, attackerKey, victim.ChainID())
	for _, m := range bad {
		if _, err := protocol.Open(m.data, victim.ChainID()); !errors.Is(err, m.want) {
			t.Fatalf("%s: protocol.Open = %v, want %v", m.name, err, m.want)
		}
		if err := at.Publish(ctx, m.data); err != nil {
			t.Fatalf("attacker publish %s: %v", m.name, err)
		}
	}

	waitUntil(t, ctx, func() bool { return vt.Stats().Rejected == uint64(len(bad)) },
		func() string { return "victim rejected " + statsString(vt.Stats()) })
	var score float64
	waitUntil(t, ctx, func() bool {
		var ok bool
		score, ok = victim.PeerScore(attackerID)
		return ok && score < 0
	}, func() string { return "attacker's score never dropped below 0" })
	t.Logf("attacker score %.1f, victim stats %s", score, statsString(vt.Stats()))

	// All bad messages are judged; a marker published now queues behind
	// anything the victim might wrongly have delivered.
	marker := pingBody{Seq: 99, Note: "marker"}
	if err := vt.Publish(ctx, protocol.KindPing, marker); err != nil {
		t.Fatal(err)
	}
	m, err := vsub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got pingBody
	if err := m.Envelope.Decode(&got); err != nil || got != marker || !m.Local {
		t.Fatalf("victim's application got %+v (local %v, decode err %v) before its own marker: a bad message got through", got, m.Local, err)
	}
	if s := vt.Stats(); s.Accepted != 1 || s.Rejected != uint64(len(bad)) {
		t.Errorf("victim stats %s; want 1 accepted (the marker), %d rejected", statsString(s), len(bad))
	}
}

func contains(ps []peer.ID, p peer.ID) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func statsString(s node.TopicStats) string {
	return strings.Join([]string{
		"accepted=" + itoa(s.Accepted), "rejected=" + itoa(s.Rejected), "ignored=" + itoa(s.Ignored),
	}, " ")
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
