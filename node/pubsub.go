package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gpunode/gpunode/protocol"
)

// Topic errors.
var (
	ErrTopicName   = errors.New("node: invalid topic name")
	ErrTopicJoined = errors.New("node: topic already joined")
	ErrTopicClosed = errors.New("node: topic closed")
)

// Verdict is a service validator's judgement of a message that already
// passed the envelope checks.
type Verdict int

// Verdicts. The zero Verdict is not valid and counts as Reject, so a
// validator that forgets to decide never lets a message through.
const (
	// Accept delivers the message to subscribers and forwards it.
	Accept Verdict = iota + 1
	// Reject drops the message and penalises the peer that sent it: for
	// messages no honest peer would forward (bad shape, bad content).
	Reject
	// Ignore drops the message without penalty: for messages an honest peer
	// may forward, e.g. stale or slightly future ones, or duplicates.
	Ignore
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Validator judges an authenticated envelope received on a topic. from is
// the peer that forwarded it (the node itself for its own publishes); the
// author is env.AuthorID(). It must not block for long: gossip waits for it.
type Validator func(ctx context.Context, from peer.ID, env *protocol.Envelope) Verdict

// CheckFresh is a building block for validators: Ignore if env's timestamp
// is more than maxAge before now or more than maxSkew after it, else Accept.
func CheckFresh(env *protocol.Envelope, now time.Time, maxAge, maxSkew time.Duration) Verdict {
	t := env.Time()
	if t.Before(now.Add(-maxAge)) || t.After(now.Add(maxSkew)) {
		return Ignore
	}
	return Accept
}

// TopicStats counts a topic's validation outcomes since it was joined,
// including the node's own publishes.
type TopicStats struct {
	Accepted, Rejected, Ignored uint64
}

// Topic is a joined gossipsub topic. Every message delivered on it passed
// protocol.Open for the node's chain and the service's Validator.
type Topic struct {
	n    *Node
	name string // short name, e.g. protocol.TopicTxs
	full string // protocol.Topic(network, name)
	t    *pubsub.Topic

	accepted, rejected, ignored atomic.Uint64

	mu     sync.Mutex // guards subs and closed
	subs   map[*Subscription]struct{}
	closed bool
}

// JoinTopic joins protocol.Topic(network, name), validating every message
// with protocol.Open for the node's chain ID (a failure rejects and
// penalises the sender) and then with v (nil accepts every authenticated
// envelope). Each name can be joined once per node.
func (n *Node) JoinTopic(name string, v Validator) (*Topic, error) {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		return nil, fmt.Errorf("%w: %q", ErrTopicName, name)
	}
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if _, ok := n.topics[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicJoined, name)
	}
	t := &Topic{n: n, name: name, full: protocol.Topic(n.cfg.Network, name), subs: make(map[*Subscription]struct{})}
	log := n.log.With("topic", name)
	if err := n.ps.RegisterTopicValidator(t.full, t.validator(v, log)); err != nil {
		return nil, fmt.Errorf("node: join %s: %w", name, err)
	}
	pt, err := n.ps.Join(t.full)
	if err != nil {
		n.ps.UnregisterTopicValidator(t.full)
		return nil, fmt.Errorf("node: join %s: %w", name, err)
	}
	if err := pt.SetScoreParams(topicScoreParams()); err != nil {
		pt.Close()
		n.ps.UnregisterTopicValidator(t.full)
		return nil, fmt.Errorf("node: join %s: %w", name, err)
	}
	t.t = pt
	n.topics[name] = t
	return t, nil
}

// validator is the gossipsub validator: envelope checks, then the service's.
func (t *Topic) validator(v Validator, log *slog.Logger) pubsub.ValidatorEx {
	chainID := t.n.cfg.ChainID
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		env, err := protocol.Open(m.Data, chainID)
		if err != nil {
			t.rejected.Add(1)
			log.Debug("rejected envelope", "from", from, "err", err)
			return pubsub.ValidationReject
		}
		verdict := Accept
		if v != nil {
			verdict = v(ctx, from, env)
		}
		switch verdict {
		case Accept:
			t.accepted.Add(1)
			// Subscribers get the envelope decoded here, not decode twice.
			m.ValidatorData = env
			return pubsub.ValidationAccept
		case Ignore:
			t.ignored.Add(1)
			return pubsub.ValidationIgnore
		default:
			t.rejected.Add(1)
			log.Debug("service rejected message", "from", from, "kind", env.Kind, "verdict", verdict)
			return pubsub.ValidationReject
		}
	}
}

// Name is the topic's short name as given to JoinTopic.
func (t *Topic) Name() string { return t.name }

// FullName is the gossipsub topic, protocol.Topic(network, name).
func (t *Topic) FullName() string { return t.full }

// Stats counts validation outcomes so far.
func (t *Topic) Stats() TopicStats {
	return TopicStats{Accepted: t.accepted.Load(), Rejected: t.rejected.Load(), Ignored: t.ignored.Load()}
}

// Peers lists the peers known to be subscribed to the topic.
func (t *Topic) Peers() []peer.ID { return t.t.ListPeers() }

// Publish seals body as kind with the node's key, chain ID and clock, and
// publishes it. The node's own subscribers receive it too. It fails if the
// node's own validator does not accept it.
func (t *Topic) Publish(ctx context.Context, kind protocol.Kind, body any) error {
	data, _, err := protocol.Seal(t.n.key, t.n.cfg.ChainID, kind, t.n.cfg.Now(), body)
	if err != nil {
		return fmt.Errorf("node: publish on %s: %w", t.name, err)
	}
	return t.PublishRaw(ctx, data)
}

// PublishRaw publishes an already sealed envelope (e.g. one received
// earlier, or authored by another key). It goes through the same
// validation as any received message.
func (t *Topic) PublishRaw(ctx context.Context, data []byte) error {
	if err := t.t.Publish(ctx, data); err != nil {
		return fmt.Errorf("node: publish on %s: %w", t.name, err)
	}
	return nil
}

// Received is a validated message delivered to a subscription.
type Received struct {
	// Envelope is the authenticated envelope; Envelope.AuthorID is the
	// author.
	Envelope *protocol.Envelope
	// From is the peer that forwarded the message to this node (the node
	// itself for its own publishes).
	From peer.ID
	// Publisher is the peer that first published it on gossipsub (it signed
	// the gossipsub message; usually, not necessarily, the author).
	Publisher peer.ID
	// Local is true for the node's own publishes.
	Local bool
}

// Subscription yields a topic's validated messages in arrival order.
type Subscription struct {
	t   *Topic
	sub *pubsub.Subscription
}

// Subscribe starts delivering the topic's messages. A subscriber that does
// not keep up loses messages once PubSubConfig.SubscriptionBuffer fills.
func (t *Topic) Subscribe() (*Subscription, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrTopicClosed
	}
	sub, err := t.t.Subscribe(pubsub.WithBufferSize(t.n.cfg.PubSub.SubscriptionBuffer))
	if err != nil {
		return nil, fmt.Errorf("node: subscribe %s: %w", t.name, err)
	}
	s := &Subscription{t: t, sub: sub}
	t.subs[s] = struct{}{}
	return s, nil
}

// Next waits for the next message. It returns an error once ctx ends or the
// subscription is cancelled.
func (s *Subscription) Next(ctx context.Context) (*Received, error) {
	for {
		m, err := s.sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		env, ok := m.ValidatorData.(*protocol.Envelope)
		if !ok {
			// Every message passes our validator, which sets this; if
			// gossipsub ever delivered one without, dropping it is safe.
			s.t.n.log.Error("delivered message without validated envelope", "topic", s.t.name)
			continue
		}
		// gossipsub's Message.Local means "not forwarded" (a publish
		// option), so own publishes are told apart by their source.
		return &Received{Envelope: env, From: m.ReceivedFrom, Publisher: m.GetFrom(), Local: m.ReceivedFrom == s.t.n.id}, nil
	}
}

// Cancel ends the subscription; Next then returns an error.
func (s *Subscription) Cancel() {
	s.t.mu.Lock()
	delete(s.t.subs, s)
	s.t.mu.Unlock()
	s.sub.Cancel()
}

// Close cancels the topic's subscriptions and leaves it; the name can then
// be joined again.
func (t *Topic) Close() error {
	t.n.topicsMu.Lock()
	if t.n.topics[t.name] == t {
		delete(t.n.topics, t.name)
	}
	t.n.topicsMu.Unlock()
	return t.close()
}

func (t *Topic) close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	for s := range subs {
		s.sub.Cancel()
	}
	err := t.t.Close()
	if uerr := t.n.ps.UnregisterTopicValidator(t.full); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("node: leave %s: %w", t.name, err)
	}
	return nil
}

// PeerScore is p's gossipsub score as this node sees it, from the latest
// snapshot (taken every PubSubConfig.ScoreInspectPeriod); ok is false if
// the node has no score for p.
func (n *Node) PeerScore(p peer.ID) (score float64, ok bool) {
	n.scoresMu.RLock()
	defer n.scoresMu.RUnlock()
	s, ok := n.scores[p]
	if !ok {
		return 0, false
	}
	return s.Score, true
}

// PeerScores is a copy of the latest score snapshot (for metrics).
func (n *Node) PeerScores() map[peer.ID]float64 {
	n.scoresMu.RLock()
	defer n.scoresMu.RUnlock()
	out := make(map[peer.ID]float64, len(n.scores))
	for p, s := range n.scores {
		out[p] = s.Score
	}
	return out
}

// contentID is the gossipsub message ID: the sha256 of the data. Two
// different messages never share an ID, so a second, conflicting vote is
// not hidden as a duplicate of the first (cometbft#1917).
func contentID(m *pubsubpb.Message) string {
	sum := sha256.Sum256(m.Data)
	return string(sum[:])
}

func (n *Node) newPubSub(ctx context.Context) (*pubsub.PubSub, error) {
	inspect := pubsub.ExtendedPeerScoreInspectFn(func(m map[peer.ID]*pubsub.PeerScoreSnapshot) {
		n.scoresMu.Lock()
		n.scores = m
		n.scoresMu.Unlock()
	})
	return pubsub.NewGossipSub(ctx, n.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMessageIdFn(contentID),
		// Own messages go to every known subscriber with a decent score,
		// not only to mesh peers: right after joining, the mesh is empty
		// until the next heartbeat and a publish would reach nobody.
		pubsub.WithFloodPublish(true),
		// Room for the largest envelope plus the RPC framing around it.
		pubsub.WithMaxMessageSize(protocol.MaxEnvelope+64<<10),
		pubsub.WithValidateQueueSize(n.cfg.PubSub.ValidateQueueSize),
		pubsub.WithPeerOutboundQueueSize(n.cfg.PubSub.PeerOutboundQueueSize),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithPeerScoreInspect(inspect, n.cfg.PubSub.ScoreInspectPeriod.D()),
		pubsub.WithLogger(n.cfg.Logger.With("subsystem", "pubsub")),
	)
}

// Score thresholds (values in the range Filecoin's lotus uses). A peer that
// sent 3 invalid messages is below the gossip threshold, 4 below publish, 5
// in the graylist (its RPCs are ignored) until the penalty decays.
const (
	gossipThreshold   = -500
	publishThreshold  = -1000
	graylistThreshold = -2500
	// invalidMessageWeight is P4's weight: a topic score of weight * n^2
	// for n invalid messages.
	invalidMessageWeight = -100
)

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           100, // only well-behaved, long-lived peers' PX
		OpportunisticGraftThreshold: 3.5,
	}
}

// loopback is exempt from the IP colocation penalty: many local peers on
// one machine (devnets, tests) are legitimate.
var loopback = []*net.IPNet{
	{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)},
	{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
}

func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{}, // set per topic by JoinTopic
		TopicScoreCap:               50,
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -100,
		IPColocationFactorThreshold: 5,
		IPColocationFactorWhitelist: loopback,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		// Remember a disconnected peer's score, so reconnecting does not
		// wash out a penalty.
		RetainScore: time.Hour,
	}
}

// topicScoreParams scores every topic alike: time in mesh and first
// deliveries earn a little, invalid messages cost a lot. Mesh delivery
// rates (P3) are off: on quiet topics they would punish honest peers.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  1000, // +10 after ~17 minutes
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:      20,
		InvalidMessageDeliveriesWeight: invalidMessageWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

// TopicPeers lists the peers this node knows to be subscribed to the
// topic name (as JoinTopic names it), whether or not this node joined it:
// the peers its own publishes on that topic reach directly.
func (n *Node) TopicPeers(name string) []peer.ID {
	return n.ps.ListPeers(protocol.Topic(n.cfg.Network, name))
}
