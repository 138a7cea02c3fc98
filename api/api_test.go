package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeBackend struct {
	st  Status
	err error
}

func (f *fakeBackend) Status(context.Context) (Status, error) { return f.st, f.err }

var testStatus = Status{
	PeerID: "12D3KooWBAaN9ZCc85GB3CcfjneSFzVk9bqKJGc8JweN1HtiQsQu", Network: "devnet", ChainID: "devnet-1",
	Roles: []string{"provider", "validator"}, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/4001"},
	Peers: 3, RoutingTable: 2, Version: "v0.0.0-test",
	StartedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer starts a server on a random loopback port with a data dir
// and returns it with a client from the data dir.
func startServer(t *testing.T, opts ...Option) (*Server, *Client, string) {
	t.Helper()
	dir := t.TempDir()
	base := []Option{WithAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(quietLogger()),
		WithClock(func() time.Time { return testStatus.StartedAt.Add(90 * time.Second) })}
	srv, err := New(&fakeBackend{st: testStatus}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	c, err := ClientForDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, dir
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStatus(t *testing.T) {
	_, c, _ := startServer(t)
	st, err := c.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.PeerID != testStatus.PeerID || st.Network != "devnet" || st.ChainID != "devnet-1" ||
		strings.Join(st.Roles, ",") != "provider,validator" || st.Peers != 3 || st.RoutingTable != 2 ||
		st.Version != "v0.0.0-test" || len(st.ListenAddrs) != 1 {
		t.Errorf("Status = %+v, want %+v", st, testStatus)
	}
	if st.UptimeSeconds != 90 {
		t.Errorf("UptimeSeconds = %v, want 90", st.UptimeSeconds)
	}
}

func TestStatusBackendError(t *testing.T) {
	srv, err := New(&fakeBackend{err: Errorf(http.StatusServiceUnavailable, CodeUnavailable, "node starting")},
		WithAddr("127.0.0.1:0"), WithToken(strings.Repeat("t", 40)), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	c, err := NewClient(srv.URL(), srv.Token())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(ctxT(t))
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != CodeUnavailable || e.Message != "node starting" {
		t.Fatalf("Status error = %#v, want 503 unavailable \"node starting\"", err)
	}
}

// TestMutatingCallNeedsToken: a mutating call without the right token gets
// 401 with a JSON error and its handler never runs.
func TestMutatingCallNeedsToken(t *testing.T) {
	var counter atomic.Int64
	srv, c, _ := startServerWithCounter(t, &counter)

	noToken, err := NewClient(srv.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	wrongToken, err := NewClient(srv.URL(), strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Client{noToken, wrongToken} {
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			err := cl.Do(ctxT(t), method, "/test/counter", map[string]int{"by": 5}, nil)
			var e *Error
			if !errors.As(err, &e) || e.Status != 401 || e.Code != CodeUnauthorized || e.Message == "" {
				t.Errorf("%s without the token: %v, want a 401 JSON error", method, err)
			}
		}
	}
	// Other schemes and a token without the Bearer scheme are refused too.
	for _, auth := range []string{"Basic " + srv.Token(), srv.Token(), "Bearer", "bearer " + srv.Token()} {
		req, _ := http.NewRequest("POST", srv.URL()+"/api/v1/test/counter", strings.NewReader(`{"by":1}`))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Contains(body, []byte(`"code":"unauthorized"`)) {
			t.Errorf("Authorization %q: %d %s %s, want 401 JSON", auth, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// A mutating call to a path that does not exist is 401 as well, not
	// 404: unauthenticated callers learn nothing about the routes.
	if err := noToken.Do(ctxT(t), "DELETE", "/no/such/thing", nil, nil); !IsStatus(err, 401) {
		t.Errorf("DELETE unknown path without token: %v, want 401", err)
	}
	if got := counter.Load(); got != 0 {
		t.Fatalf("counter = %d after refused calls, want 0 (a handler ran)", got)
	}
	var out struct{ Value int64 }
	if err := c.Do(ctxT(t), "POST", "/test/counter", map[string]int{"by": 5}, &out); err != nil {
		t.Fatalf("POST with the token: %v", err)
	}
	if out.Value != 5 || counter.Load() != 5 {
		t.Fatalf("after one authorised POST: answer %d, counter %d; want 5, 5", out.Value, counter.Load())
	}
	// Reads need no token.
	if _, err := noToken.Status(ctxT(t)); err != nil {
		t.Fatalf("GET status without token: %v", err)
	}
}

func startServerWithCounter(t *testing.T, counter *atomic.Int64) (*Server, *Client, string) {
	t.Helper()
	return startServerHook(t, func(s *Server) {
		type req struct {
			By int64 `json:"by"`
		}
		type resp struct {
			Value int64 `json:"value"`
		}
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			err := s.Handle(Route{Method: m, Path: "/test/counter", Handler: JSON(func(r *http.Request, in req) (resp, error) {
				if in.By <= 0 {
					return resp{}, Errorf(400, CodeBadRequest, "by must be positive")
				}
				return resp{counter.Add(in.By)}, nil
			})})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// startServerHook is startServer with a hook that adds routes before Start.
func startServerHook(t *testing.T, hook func(*Server)) (*Server, *Client, string) {
	t.Helper()
	dir := t.TempDir()
	srv, err := New(&fakeBackend{st: testStatus}, WithAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	hook(srv)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c, err := ClientForDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, dir
}

func TestTokenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	s1, err := New(&fakeBackend{}, WithDataDir(dir), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, TokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %04o, want 0600", perm)
	}
	if len(s1.Token()) != 64 {
		t.Errorf("token %q is not 64 hex characters", s1.Token())
	}
	// A restart (a second server on the same data dir) keeps the token.
	s2, err := New(&fakeBackend{}, WithDataDir(dir), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if s1.Token() != s2.Token() {
		t.Errorf("token changed across restarts: %q then %q", s1.Token(), s2.Token())
	}
	if tok, err := ReadToken(dir); err != nil || tok != s1.Token() {
		t.Errorf("ReadToken = %q, %v; want %q", tok, err, s1.Token())
	}
	// Two data dirs get different tokens.
	s3, err := New(&fakeBackend{}, WithDataDir(t.TempDir()), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if s3.Token() == s1.Token() {
		t.Error("two data dirs share a token")
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only %s", len(entries), TokenFile)
	}

	// A token file others can read is refused, and so is a broken one.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&fakeBackend{}, WithDataDir(dir)); !errors.Is(err, ErrTokenFile) {
		t.Errorf("New with a 0644 token file: %v, want ErrTokenFile", err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(dir); !errors.Is(err, ErrTokenFile) {
		t.Errorf("ReadToken of a truncated token: %v, want ErrTokenFile", err)
	}
}

func TestNewNeedsTokenSource(t *testing.T) {
	if _, err := New(&fakeBackend{}); err == nil {
		t.Error("New without data dir or token succeeded")
	}
	if _, err := New(&fakeBackend{}, WithToken("short")); err == nil {
		t.Error("New with a short token succeeded")
	}
}

func TestListenAddress(t *testing.T) {
	tok := WithToken(strings.Repeat("t", 40))
	srv, err := New(&fakeBackend{}, tok)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(srv.cfg.addr)
	if srv.cfg.addr != DefaultAddr || !net.ParseIP(host).IsLoopback() {
		t.Errorf("default address %q is not loopback", srv.cfg.addr)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:8645", "192.168.1.10:8645", "example.com:80", "10.0.0.1:0"} {
		if _, err := New(&fakeBackend{}, tok, WithAddr(addr)); !errors.Is(err, ErrRemoteRefused) {
			t.Errorf("New(WithAddr(%q)) = %v, want ErrRemoteRefused", addr, err)
		}
		if _, err := New(&fakeBackend{}, tok, WithAddr(addr), WithAllowRemote(true)); err != nil {
			t.Errorf("New(WithAddr(%q), WithAllowRemote) = %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"} {
		if _, err := New(&fakeBackend{}, tok, WithAddr(addr)); err != nil {
			t.Errorf("New(WithAddr(%q)) = %v", addr, err)
		}
	}
	if _, err := New(&fakeBackend{}, tok, WithAddr("no-port")); err == nil {
		t.Error("WithAddr without a port accepted")
	}
	// A started server is on loopback.
	s, _, _ := startServer(t)
	if ip := s.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("server listens on %v", s.Addr())
	}
}

// TestForeignHostRefused: a web page that rebinds its name to 127.0.0.1
// sends its own Host header; the API refuses it.
func TestForeignHostRefused(t *testing.T) {
	srv, _, _ := startServer(t)
	req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/status", nil)
	req.Host = "evil.example:8645"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host: %d, want 403", resp.StatusCode)
	}
	req.Host = "localhost:8645"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Host localhost: %d, want 200", resp.StatusCode)
	}
}

func TestJSONErrors(t *testing.T) {
	var counter atomic.Int64
	srv, c, _ := startServerWithCounter(t, &counter)
	ctx := ctxT(t)
	cases := []struct {
		method, path, body, ctype string
		status                    int
		code                      string
	}{
		{"GET", "/api/v1/nothing", "", "", 404, CodeNotFound},
		{"GET", "/api/v1/test/counter", "", "", 405, CodeMethodNotAllowed},
		{"POST", "/api/v1/status", "", "", 405, CodeMethodNotAllowed},
		{"POST", "/api/v1/test/counter", `{"by":1,"extra":2}`, "application/json", 400, CodeBadRequest},
		{"POST", "/api/v1/test/counter", `{"by":1} {"by":2}`, "application/json", 400, CodeBadRequest},
		{"POST", "/api/v1/test/counter", `{"by":`, "application/json", 400, CodeBadRequest},
		{"POST", "/api/v1/test/counter", `{"by":"x"}`, "application/json", 400, CodeBadRequest},
		{"POST", "/api/v1/test/counter", `{"by":-1}`, "application/json", 400, CodeBadRequest},
		{"POST", "/api/v1/test/counter", `by=1`, "application/x-www-form-urlencoded", 415, CodeUnsupportedMedia},
		{"POST", "/api/v1/test/counter", `{"by":1,"pad":"` + strings.Repeat("x", DefaultMaxBody) + `"}`, "application/json", 413, CodeTooLarge},
	}
	for _, tc := range cases {
		req, _ := http.NewRequestWithContext(ctx, tc.method, srv.URL()+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+srv.Token())
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = readError(resp)
		resp.Body.Close()
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %.40q: %v (%s), want %d %s as JSON", tc.method, tc.path, tc.body, err, resp.Header.Get("Content-Type"), tc.status, tc.code)
		}
	}
	if counter.Load() != 0 {
		t.Errorf("counter = %d after bad requests, want 0", counter.Load())
	}
	// The client carries status and message.
	err := c.Do(ctx, "GET", "/nothing", nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || !strings.Contains(e.Error(), "no endpoint GET /api/v1/nothing") {
		t.Errorf("client error %v", err)
	}
}

func TestHandleRejectsBadRoutes(t *testing.T) {
	srv, err := New(&fakeBackend{}, WithToken(strings.Repeat("t", 40)))
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, r := range []Route{
		{Method: "GET", Path: "/status", Handler: ok},        // already there
		{Method: "TRACE", Path: "/x", Handler: ok},           // method
		{Method: "GET", Path: "x", Handler: ok},              // no slash
		{Method: "GET", Path: "/y"},                          // no handler
		{Method: "GET", Path: "/{a}/{a}", Handler: ok},       // bad pattern
		{Method: "GET", Path: "/{b}", Handler: ok},           // fine
		{Method: "GET", Path: "/{c}", Handler: ok},           // conflicts with /{b}
		{Method: "GET", Path: "/events/{x...}", Handler: ok}, // fine
	} {
		err := srv.Handle(r)
		wantOK := r.Path == "/{b}" || r.Path == "/events/{x...}"
		if (err == nil) != wantOK {
			t.Errorf("Handle(%s %q) = %v, want ok=%v", r.Method, r.Path, err, wantOK)
		}
	}
}

func TestAuthRouteOnGet(t *testing.T) {
	srv, c, _ := startServerHook(t, func(s *Server) {
		if err := s.Handle(Route{Method: "GET", Path: "/secret", Auth: true, Handler: JSON(func(*http.Request, struct{}) (string, error) {
			return "s3cret", nil
		})}); err != nil {
			t.Fatal(err)
		}
	})
	anon, _ := NewClient(srv.URL(), "")
	var out string
	if err := anon.Do(ctxT(t), "GET", "/secret", nil, &out); !IsStatus(err, 401) || out != "" {
		t.Errorf("anonymous GET of an Auth route: %v %q, want 401", err, out)
	}
	if err := c.Do(ctxT(t), "GET", "/secret", nil, &out); err != nil || out != "s3cret" {
		t.Errorf("GET with token: %q, %v", out, err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, c, _ := startServer(t, WithRegistry(reg))
	if _, err := c.Status(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	srv.Events().Publish("test.x", nil)
	resp, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		"go_goroutines ",
		"process_cpu_seconds_total ",
		`gpunode_api_requests_total{code="200",method="GET",route="GET /api/v1/status"} 1`,
		"gpunode_api_events_published_total 1",
		"gpunode_api_event_subscribers 0",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The metrics are on the registry passed in, not on a global one.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "gpunode_api_requests_total"
	}
	if !found {
		t.Error("gpunode_api_requests_total not on the given registry")
	}
	// A second server on a registry that has the Go collector already
	// works; one that repeats the API metrics is an error, not a panic.
	if _, err := New(&fakeBackend{}, WithToken(strings.Repeat("t", 40)), WithRegistry(reg)); err == nil {
		t.Error("second server on the same registry: no error for duplicate API metrics")
	}
}

func TestEventsStreamInOrder(t *testing.T) {
	srv, c, _ := startServer(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	ch, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Events returns once the server has subscribed, so nothing published
	// from here on is missed.
	const n = 200
	go func() {
		for i := range n {
			srv.Events().Publish("test.count", map[string]int{"i": i})
		}
	}()
	for i := range n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d events", i)
			}
			want := fmt.Sprintf(`{"i":%d}`, i)
			if ev.ID != uint64(i+1) || ev.Type != "test.count" || string(ev.Data) != want || ev.Time.IsZero() {
				t.Fatalf("event %d = %+v %s, want ID %d data %s", i, ev, ev.Data, i+1, want)
			}
		case <-ctx.Done():
			t.Fatalf("timed out after %d events", i)
		}
	}
	cancel()
	// Cancelling closes the client's channel.
	for range ch {
	}
}

func TestEventsReplayAfterID(t *testing.T) {
	srv, c, _ := startServer(t)
	for i := range 5 {
		srv.Events().Publish("test.early", i)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	ch, err := c.EventsAfter(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	srv.Events().Publish("test.live", 5)
	for _, want := range []uint64{3, 4, 5, 6} {
		select {
		case ev := <-ch:
			if ev.ID != want {
				t.Fatalf("got event %d, want %d", ev.ID, want)
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for event %d", want)
		}
	}
}

func TestEventsBadQuery(t *testing.T) {
	srv, _, _ := startServer(t)
	resp, err := http.Get(srv.URL() + "/api/v1/events?replay=maybe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("replay=maybe: %d, want 400", resp.StatusCode)
	}
}

// TestShutdownEndsStreams: an open event stream does not hold up Shutdown,
// and api.url is removed.
func TestShutdownEndsStreams(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(&fakeBackend{}, WithAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := ClientForDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.Events(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open stream: %v", err)
	}
	for range ch { // closes when the server ends the stream
	}
	if _, err := os.Stat(filepath.Join(dir, URLFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api.url after Shutdown: %v", err)
	}
	if _, err := ClientForDataDir(dir); !errors.Is(err, ErrNoServer) {
		t.Errorf("ClientForDataDir after Shutdown: %v, want ErrNoServer", err)
	}
}

func TestReadURLForms(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"http://127.0.0.1:8645\n": "http://127.0.0.1:8645",
		"127.0.0.1:9000":          "http://127.0.0.1:9000",
	} {
		if err := os.WriteFile(filepath.Join(dir, URLFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadURL(dir); err != nil || got != want {
			t.Errorf("ReadURL with %q = %q, %v; want %q", content, got, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, URLFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadURL(dir); !errors.Is(err, ErrNoServer) {
		t.Errorf("ReadURL of an empty file: %v, want ErrNoServer", err)
	}
}
