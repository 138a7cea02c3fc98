package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestSSERoundTrip(t *testing.T) {
	evs := []Event{
		{ID: 1, Type: "a.b", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Data: json.RawMessage(`{"x":"line1\nline2"}`)},
		{ID: 2, Type: "c", Time: time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)},
		{Type: DroppedType, Time: time.Date(2026, 1, 1, 0, 0, 2, 0, time.UTC), Data: json.RawMessage(`{"dropped":3}`)},
	}
	var buf bytes.Buffer
	buf.WriteString(": comment\n\n")
	for _, ev := range evs {
		writeSSE(&buf, ev)
	}
	var got []Event
	if err := readSSE(&buf, func(ev Event) bool { got = append(got, ev); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("read %+v, want %+v", got, evs)
	}
}

// FuzzReadSSE: the client's stream parser never panics, and every event it
// yields survives a write and read again unchanged.
func FuzzReadSSE(f *testing.F) {
	f.Add([]byte("id: 1\ndata: {\"id\":1,\"type\":\"t\",\"time\":\"2026-01-01T00:00:00Z\"}\n\n"))
	f.Add([]byte(": ping\n\ndata: {}\ndata: x\n\nretry: 5\nevent: e\n\n"))
	f.Add([]byte("data:{\"data\":[1,2]}\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []Event
		_ = readSSE(bytes.NewReader(data), func(ev Event) bool { got = append(got, ev); return true })
		for _, ev := range got {
			if ev.Data != nil && !json.Valid(ev.Data) {
				t.Fatalf("event with invalid JSON data %q", ev.Data)
			}
			var buf bytes.Buffer
			writeSSE(&buf, ev)
			var again []Event
			if err := readSSE(&buf, func(e Event) bool { again = append(again, e); return true }); err != nil || len(again) != 1 {
				t.Fatalf("re-read of %q: %v, %d events", buf.String(), err, len(again))
			}
			a, _ := json.Marshal(again[0])
			b, _ := json.Marshal(ev)
			if !bytes.Equal(a, b) {
				t.Fatalf("event changed on a round trip: %s -> %s", b, a)
			}
		}
	})
}
