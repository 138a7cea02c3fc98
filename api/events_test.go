package api

import (
	"sync"
	"testing"
	"time"
)

func TestEventsSlowSubscriberDropsAndCounts(t *testing.T) {
	h := NewEvents(WithSubscriberBuffer(4))
	slow := h.Subscribe(false, 0)
	defer slow.Close()
	for i := range 10 {
		h.Publish("t", i) // must not block although nobody reads
	}
	if got := slow.Dropped(); got != 6 {
		t.Errorf("subscriber dropped %d, want 6", got)
	}
	if got := h.Dropped(); got != 6 {
		t.Errorf("hub dropped %d, want 6", got)
	}
	if got := slow.TakeLost(); got != 6 {
		t.Errorf("TakeLost = %d, want 6", got)
	}
	if got := slow.TakeLost(); got != 0 {
		t.Errorf("second TakeLost = %d, want 0", got)
	}
	for want := uint64(1); want <= 4; want++ {
		if ev := <-slow.C(); ev.ID != want {
			t.Fatalf("kept event %d, want %d (the oldest are kept)", ev.ID, want)
		}
	}
	if h.Published() != 10 {
		t.Errorf("Published = %d, want 10", h.Published())
	}
}

func TestEventsReplayRing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := NewEvents(WithReplay(3), WithEventClock(func() time.Time { return now }))
	for i := range 5 {
		h.Publish("t", i)
	}
	s := h.Subscribe(true, 0)
	defer s.Close()
	for _, want := range []uint64{3, 4, 5} { // only the last 3 are retained
		ev := <-s.C()
		if ev.ID != want || !ev.Time.Equal(now) {
			t.Fatalf("replayed %+v, want ID %d at %v", ev, want, now)
		}
	}
	none := h.Subscribe(false, 0)
	defer none.Close()
	h.Publish("t", 5)
	if ev := <-none.C(); ev.ID != 6 {
		t.Fatalf("live subscriber got %d first, want 6", ev.ID)
	}
	if ev := <-s.C(); ev.ID != 6 {
		t.Fatalf("replaying subscriber got %d after the backlog, want 6", ev.ID)
	}
}

func TestEventsConcurrentPublishersKeepIDOrder(t *testing.T) {
	h := NewEvents(WithSubscriberBuffer(1000))
	s := h.Subscribe(false, 0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				h.Publish("t", g*1000+i)
			}
		}()
	}
	wg.Wait()
	s.Close()
	var last uint64
	n := 0
	for ev := range s.C() {
		if ev.ID != last+1 {
			t.Fatalf("event %d after %d", ev.ID, last)
		}
		last = ev.ID
		n++
	}
	if n != 400 {
		t.Fatalf("received %d events, want 400", n)
	}
}

func TestEventsCloseAndBadData(t *testing.T) {
	h := NewEvents(WithEventLogger(quietLogger()))
	s := h.Subscribe(false, 0)
	h.Publish("bad", func() {}) // cannot be JSON: logged, not published
	if h.Published() != 0 {
		t.Errorf("unencodable event was published")
	}
	h.Close()
	if _, ok := <-s.C(); ok {
		t.Error("subscription channel open after hub Close")
	}
	s.Close() // after the hub closed it: no panic
	h.Publish("t", 1)
	if h.Subscribers() != 0 || h.Published() != 0 {
		t.Errorf("after Close: %d subscribers, %d published", h.Subscribers(), h.Published())
	}
	late := h.Subscribe(true, 0)
	if _, ok := <-late.C(); ok {
		t.Error("subscription to a closed hub is open")
	}
}

var _ Publisher = PublisherFunc(nil)
