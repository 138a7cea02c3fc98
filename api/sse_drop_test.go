package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter is a ResponseWriter whose writes after the first block until
// the test opens the gate, to play a client that stops reading.
type gateWriter struct {
	header  http.Header
	entered chan struct{} // one send per write that reaches the gate
	gate    chan struct{} // closed to let writes through
	mu      sync.Mutex    // guards buf and writes
	buf     bytes.Buffer
	writes  int
	changed chan struct{} // signalled after every write
}

func (w *gateWriter) Header() http.Header { return w.header }
func (w *gateWriter) WriteHeader(int)     {}
func (w *gateWriter) Flush()              {}
func (w *gateWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	first := w.writes == 0
	w.writes++
	w.mu.Unlock()
	if !first {
		select {
		case w.entered <- struct{}{}:
		default:
		}
		<-w.gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (w *gateWriter) contains(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.buf.String(), s)
}

// TestEventStreamTellsSlowClientItLostEvents: while a client does not read,
// Publish goes on without waiting, the events it cannot take are dropped and
// counted, and once it reads again it is told how many it lost.
func TestEventStreamTellsSlowClientItLostEvents(t *testing.T) {
	hub := NewEvents(WithSubscriberBuffer(1))
	srv, err := New(&fakeBackend{}, WithToken(strings.Repeat("t", 40)), WithEvents(hub), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	w := &gateWriter{header: http.Header{}, entered: make(chan struct{}, 1), gate: make(chan struct{}), changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/events", nil)
	req.Host = "127.0.0.1:8645"
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Handler().ServeHTTP(w, req)
	}()
	deadline := time.After(20 * time.Second)
	// The handler subscribes before its first write; wait for the subscription.
	for hub.Subscribers() == 0 {
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatal("handler never subscribed")
		}
	}
	hub.Publish("t", 1) // taken by the handler, which then blocks writing it
	select {
	case <-w.entered:
	case <-deadline:
		t.Fatal("handler never wrote the first event")
	}
	for i := range 10 {
		hub.Publish("t", i+2) // one fits the buffer, nine are dropped
	}
	if got := hub.Dropped(); got != 9 {
		t.Fatalf("hub dropped %d, want 9", got)
	}
	close(w.gate)
	for !w.contains(`"type":"events.dropped"`) {
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatal("no dropped notice in the stream")
		}
	}
	if !w.contains(`"data":{"dropped":9}`) || !w.contains("id: 1\n") || !w.contains("id: 2\n") || w.contains("id: 3\n") {
		t.Errorf("stream:\n%s", w.buf.String())
	}
	cancel()
	select {
	case <-done:
	case <-deadline:
		t.Fatal("handler did not end with its request")
	}
	if hub.Subscribers() != 0 {
		t.Error("subscription left open after the stream ended")
	}
}
