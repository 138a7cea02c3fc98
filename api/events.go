package api

import (
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one entry of the live event stream.
type Event struct {
	// ID increases by one per published event, from 1, so a client sees
	// from gaps how many it missed.
	ID   uint64          `json:"id"`
	Type string          `json:"type"` // dotted, owner first: "job.submitted", "chain.block"
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data,omitempty"`
}

// DroppedType is the type of the notice the event stream sends a client
// that was too slow and lost events; its data is {"dropped": n}.
const DroppedType = "events.dropped"

// Publisher is what services need to feed the event stream; *Events
// implements it. Declare it (or a func) in the service, not a dependency on
// api.
type Publisher interface {
	Publish(typ string, data any)
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(typ string, data any)

// Publish calls f.
func (f PublisherFunc) Publish(typ string, data any) { f(typ, data) }

var _ Publisher = (*Events)(nil)

// Events is the in-process event hub behind GET /api/v1/events. Publish never
// blocks: each subscriber has a bounded buffer, and when it is full the event
// is dropped for that subscriber and counted. The last events are retained
// for replay to clients that connect or reconnect.
type Events struct {
	now    func() time.Time
	log    *slog.Logger
	bufLen int

	mu     sync.Mutex // guards nextID, ring, subs and closed
	nextID uint64
	ring   []Event // the last len(ring) <= cap(ring) events, oldest first
	subs   map[*Subscription]struct{}
	closed bool

	published atomic.Uint64
	dropped   atomic.Uint64
}

// EventsOption configures NewEvents.
type EventsOption func(*Events)

// WithReplay keeps the last n events for replay (default 128; 0 keeps none).
func WithReplay(n int) EventsOption {
	return func(h *Events) { h.ring = make([]Event, 0, max(n, 0)) }
}

// WithSubscriberBuffer sets how many events a subscriber may fall behind
// before it loses events (default 256, at least 1).
func WithSubscriberBuffer(n int) EventsOption {
	return func(h *Events) { h.bufLen = max(n, 1) }
}

// WithEventClock sets the clock that stamps events (default time.Now).
func WithEventClock(now func() time.Time) EventsOption {
	return func(h *Events) { h.now = now }
}

// WithEventLogger sets the logger for events that cannot be encoded.
func WithEventLogger(l *slog.Logger) EventsOption {
	return func(h *Events) { h.log = l }
}

// NewEvents makes an event hub.
func NewEvents(opts ...EventsOption) *Events {
	h := &Events{
		now:    time.Now,
		log:    slog.Default(),
		bufLen: 256,
		ring:   make([]Event, 0, 128),
		subs:   map[*Subscription]struct{}{},
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Publish sends an event of type typ with data encoded as JSON to every
// subscriber. It is safe from any goroutine and never blocks on a slow
// subscriber. Data that cannot be encoded is logged and not published.
func (h *Events) Publish(typ string, data any) {
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			h.log.Warn("api: event data cannot be encoded; event not published", "type", typ, "err", err)
			return
		}
		raw = b
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	// IDs are assigned and sends made under the lock, so every subscriber
	// sees events in ID order even with concurrent publishers.
	h.nextID++
	ev := Event{ID: h.nextID, Type: typ, Time: h.now().UTC(), Data: raw}
	if c := cap(h.ring); c > 0 {
		if len(h.ring) == c {
			copy(h.ring, h.ring[1:])
			h.ring = h.ring[:c-1]
		}
		h.ring = append(h.ring, ev)
	}
	h.published.Add(1)
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
			s.lost.Add(1)
			h.dropped.Add(1)
		}
	}
}

// Subscription receives events from Subscribe until Close or the hub's
// Close.
type Subscription struct {
	hub     *Events
	ch      chan Event
	dropped atomic.Uint64 // total lost by this subscriber
	lost    atomic.Uint64 // lost since the last TakeLost
	once    sync.Once
}

// Subscribe returns a new subscription. With replay, it first receives the
// retained events whose ID is greater than after (all retained events for
// after = 0), then live ones; without, only events published from now on.
func (h *Events) Subscribe(replay bool, after uint64) *Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	var backlog []Event
	if replay {
		for _, ev := range h.ring {
			if ev.ID > after {
				backlog = append(backlog, ev)
			}
		}
	}
	s := &Subscription{hub: h, ch: make(chan Event, h.bufLen+len(backlog))}
	for _, ev := range backlog {
		s.ch <- ev // room reserved above
	}
	if h.closed {
		close(s.ch)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// C is the channel of events; it is closed by Close or the hub's Close.
func (s *Subscription) C() <-chan Event { return s.ch }

// Dropped is how many events this subscriber lost because its buffer was
// full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// TakeLost returns the events lost since the previous call and resets the
// count, so a stream can tell its client once per gap.
func (s *Subscription) TakeLost() uint64 { return s.lost.Swap(0) }

// Close ends the subscription and closes its channel.
func (s *Subscription) Close() {
	s.once.Do(func() {
		h := s.hub
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[s]; ok {
			delete(h.subs, s)
			close(s.ch)
		}
	})
}

// Close ends every subscription; later Publish calls do nothing.
func (h *Events) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Subscribers is the number of open subscriptions.
func (h *Events) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Published is the number of events published so far.
func (h *Events) Published() uint64 { return h.published.Load() }

// Dropped is the number of deliveries lost to full subscriber buffers.
func (h *Events) Dropped() uint64 { return h.dropped.Load() }
