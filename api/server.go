package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prefix is the path prefix of every API endpoint.
const Prefix = "/api/v1"

// DefaultAddr is where the server listens unless configured otherwise.
const DefaultAddr = "127.0.0.1:8645"

// ErrRemoteRefused is returned by New for a listen address that is not
// loopback when AllowRemote is not set.
var ErrRemoteRefused = errors.New("api: refusing a non-loopback listen address without AllowRemote")

// Status is the answer of GET /api/v1/status.
type Status struct {
	PeerID       string   `json:"peer_id"`
	Network      string   `json:"network"`
	ChainID      string   `json:"chain_id"`
	Roles        []string `json:"roles"`
	ListenAddrs  []string `json:"listen_addrs"`
	Peers        int      `json:"peers"`
	RoutingTable int      `json:"routing_table"` // peers in the DHT routing table
	// RoutingTablePeers lists the peer IDs in the DHT routing table.
	RoutingTablePeers []string `json:"routing_table_peers"`
	Version           string   `json:"version"`
	// StartedAt is when the node started; the server derives Uptime from it.
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

// Backend is what the server needs from the node. The node implements it;
// api does not import node.
type Backend interface {
	Status(ctx context.Context) (Status, error)
}

// Route is an endpoint added with Handle.
type Route struct {
	Method string // GET, POST, PUT, PATCH or DELETE
	// Path under Prefix, in net/http ServeMux syntax: "/jobs/{id}".
	Path    string
	Handler http.Handler
	// Auth requires the token on a safe method too (for a GET that reveals
	// secrets). POST, PUT, PATCH and DELETE always require it.
	Auth bool
}

type config struct {
	addr        string
	allowRemote bool
	dataDir     string
	token       string
	registry    *prometheus.Registry
	events      *Events
	log         *slog.Logger
	now         func() time.Time
	heartbeat   time.Duration
}

// Option configures New.
type Option func(*config) error

// WithAddr sets the listen address (default DefaultAddr). A non-loopback
// host, an empty host (all interfaces) or a host name other than localhost
// needs WithAllowRemote(true).
func WithAddr(addr string) Option {
	return func(c *config) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("api: listen address %q: %w", addr, err)
		}
		c.addr = addr
		return nil
	}
}

// WithAllowRemote permits a non-loopback listen address. The token still
// guards mutating calls, but status and events become readable from the
// network, and requests for any Host are served.
func WithAllowRemote(allow bool) Option {
	return func(c *config) error { c.allowRemote = allow; return nil }
}

// WithDataDir makes the server take its token from dataDir/api.token
// (created on first start) and record its URL in dataDir/api.url.
func WithDataDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("api: empty data dir")
		}
		c.dataDir = dir
		return nil
	}
}

// WithToken sets the token directly instead of reading it from the data
// dir, for embedding and tests. It must be at least 32 characters.
func WithToken(token string) Option {
	return func(c *config) error {
		if len(token) < minTokenLen {
			return fmt.Errorf("api: token shorter than %d characters", minTokenLen)
		}
		c.token = token
		return nil
	}
}

// WithRegistry sets the Prometheus registry /metrics serves; the server adds
// the Go and process collectors (unless present) and its own metrics to it.
// Default: a new registry.
func WithRegistry(r *prometheus.Registry) Option {
	return func(c *config) error { c.registry = r; return nil }
}

// WithEvents sets the event hub /api/v1/events streams (default: a new hub,
// available from Server.Events).
func WithEvents(e *Events) Option {
	return func(c *config) error { c.events = e; return nil }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.log = l; return nil }
}

// WithClock sets the clock used for uptime (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) error { c.now = now; return nil }
}

// WithHeartbeat sets how often an idle event stream sends a comment line so
// proxies and clients know it is alive (default 15s).
func WithHeartbeat(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("api: heartbeat must be positive")
		}
		c.heartbeat = d
		return nil
	}
}

// Server is the HTTP API server.
type Server struct {
	cfg       config
	backend   Backend
	tokenHash [sha256.Size]byte
	mux       *http.ServeMux
	handler   http.Handler
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec

	// baseCtx is the parent of every request context; Shutdown cancels it
	// to end event streams, which would otherwise keep Shutdown waiting.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu       sync.Mutex // guards routes, srv, listener and url
	routes   map[string]bool
	srv      *http.Server
	listener net.Listener
	url      string
	done     chan struct{} // closed when Serve returns
}

// New makes a server for backend. It needs a token source (WithDataDir or
// WithToken) and checks the listen address; it does not listen yet.
func New(backend Backend, opts ...Option) (*Server, error) {
	if backend == nil {
		return nil, errors.New("api: nil backend")
	}
	cfg := config{addr: DefaultAddr, now: time.Now, heartbeat: 15 * time.Second}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	cfg.log = cfg.log.With("subsystem", "api")
	if cfg.events == nil {
		cfg.events = NewEvents()
	}
	if cfg.registry == nil {
		cfg.registry = prometheus.NewRegistry()
	}
	if !cfg.allowRemote {
		if err := checkLoopback(cfg.addr); err != nil {
			return nil, err
		}
	}
	if cfg.token == "" {
		if cfg.dataDir == "" {
			return nil, errors.New("api: no token source: use WithDataDir or WithToken")
		}
		t, err := LoadOrCreateToken(cfg.dataDir, nil)
		if err != nil {
			return nil, err
		}
		cfg.token = t
	}
	s := &Server{
		cfg:       cfg,
		backend:   backend,
		tokenHash: sha256.Sum256([]byte(cfg.token)),
		mux:       http.NewServeMux(),
		routes:    map[string]bool{},
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.registry, promhttp.HandlerOpts{ErrorLog: slogPromLogger{cfg.log}}))
	for _, r := range []Route{
		{Method: http.MethodGet, Path: "/status", Handler: JSON(s.status)},
		{Method: http.MethodGet, Path: "/events", Handler: http.HandlerFunc(s.serveEvents)},
	} {
		if err := s.Handle(r); err != nil {
			return nil, err
		}
	}
	s.handler = s.instrument(s.guard(http.HandlerFunc(s.dispatch)))
	return s, nil
}

// checkLoopback accepts an address whose host is a loopback IP or
// "localhost".
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrRemoteRefused, addr)
}

var mutating = map[string]bool{http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true}

// Handle adds an endpoint under Prefix. Call it before Start. It returns an
// error for a bad method or path or a pattern that conflicts with one
// already registered.
func (s *Server) Handle(r Route) (err error) {
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return fmt.Errorf("api: route %s %s: unsupported method", r.Method, r.Path)
	}
	if !strings.HasPrefix(r.Path, "/") || r.Handler == nil {
		return fmt.Errorf("api: route %s %q: path must start with / and handler be set", r.Method, r.Path)
	}
	pattern := r.Method + " " + Prefix + r.Path
	h := r.Handler
	if r.Auth && !mutating[r.Method] {
		h = s.requireToken(h)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.routes[pattern] {
		return fmt.Errorf("api: route %s registered twice", pattern)
	}
	// ServeMux panics on conflicting patterns; turn that into an error.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("api: route %s: %v", pattern, p)
		}
	}()
	s.mux.Handle(pattern, h)
	s.routes[pattern] = true
	return nil
}

// HandleFunc is Handle for a handler function.
func (s *Server) HandleFunc(method, path string, f http.HandlerFunc) error {
	return s.Handle(Route{Method: method, Path: path, Handler: f})
}

// Handler is the whole API as an http.Handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Events is the server's event hub.
func (s *Server) Events() *Events { return s.cfg.events }

// Token is the bearer token mutating calls need.
func (s *Server) Token() string { return s.cfg.token }

// Registry is the Prometheus registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.cfg.registry }

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	// Comparing hashes keeps the comparison constant-time in the token's
	// length too.
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="gpunode"`)
	WriteError(w, Errorf(http.StatusUnauthorized, CodeUnauthorized, "missing or wrong API token (see %s in the data directory)", TokenFile))
}

func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			unauthorized(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// guard runs before routing: it refuses foreign Host headers (DNS rebinding
// from a web page) and, for every mutating method on any path, a missing or
// wrong token, so that no handler runs for an unauthenticated change.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.allowRemote && !loopbackHost(r.Host) {
			WriteError(w, Errorf(http.StatusForbidden, CodeForbidden, "host %q not allowed; the API answers on loopback names only", r.Host))
			return
		}
		if mutating[r.Method] && !s.authorized(r) {
			unauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dispatch routes through the mux and turns its plain-text 404 and 405
// answers into JSON errors.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		WriteError(w, Errorf(http.StatusNotFound, CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		WriteError(w, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
	default: // e.g. a redirect to the cleaned path
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// recorder captures the mux's own small answers (404, 405, redirects).
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (s *Server) status(r *http.Request, _ struct{}) (Status, error) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		return Status{}, err
	}
	if !st.StartedAt.IsZero() {
		st.UptimeSeconds = s.cfg.now().Sub(st.StartedAt).Seconds()
	}
	if st.Roles == nil {
		st.Roles = []string{}
	}
	if st.ListenAddrs == nil {
		st.ListenAddrs = []string{}
	}
	return st, nil
}

// Start listens on the configured address and serves in the background.
// With a data dir it records the server's URL in api.url.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("api: server already started")
	}
	l, err := net.Listen("tcp", s.cfg.addr)
	if err != nil {
		return fmt.Errorf("api: listen: %w", err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && !s.cfg.allowRemote && !tcp.IP.IsLoopback() {
		// "localhost" resolved to something else: never serve off-host by accident.
		l.Close()
		return fmt.Errorf("%w: %q listens on %s", ErrRemoteRefused, s.cfg.addr, l.Addr())
	}
	s.url = "http://" + l.Addr().String()
	if s.cfg.dataDir != "" {
		if err := writeFileAtomic(filepath.Join(s.cfg.dataDir, URLFile), []byte(s.url+"\n"), 0o644); err != nil {
			l.Close()
			return fmt.Errorf("api: record URL: %w", err)
		}
	}
	s.listener = l
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		ErrorLog:          slog.NewLogLogger(s.cfg.log.Handler(), slog.LevelWarn),
	}
	s.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.log.Error("api: serve", "err", err)
		}
	}(s.srv, s.done)
	s.cfg.log.Info("api listening", "url", s.url)
	return nil
}

// Addr is the listening address, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// URL is the base URL ("http://127.0.0.1:8645"), empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Shutdown ends event streams, stops accepting requests, waits for the
// others to finish (or ctx to end) and removes api.url.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancelBase()
	s.mu.Lock()
	srv, done, url := s.srv, s.done, s.url
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err == nil {
		<-done
	}
	if s.cfg.dataDir != "" {
		// Remove the URL file only if it is still ours: a newer daemon may
		// have replaced it.
		path := filepath.Join(s.cfg.dataDir, URLFile)
		if b, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(b)) == url {
			_ = os.Remove(path)
		}
	}
	return err
}

// serveEvents streams events as Server-Sent Events. Each event is one
// "id: N" line and one "data: <Event JSON>" line; there is no "event:" line,
// so a browser EventSource gets everything in onmessage. A reconnecting
// EventSource sends Last-Event-ID and gets the retained events after it.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	replay, after := false, uint64(0)
	if v := r.URL.Query().Get("replay"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			WriteError(w, Errorf(http.StatusBadRequest, CodeBadRequest, "replay=%q is not a boolean", v))
			return
		}
		replay = b
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			WriteError(w, Errorf(http.StatusBadRequest, CodeBadRequest, "Last-Event-ID %q is not an event ID", v))
			return
		}
		replay, after = true, n
	}
	sub := s.cfg.events.Subscribe(replay, after)
	defer sub.Close()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": gpunode events\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		s.cfg.log.Warn("api: event stream cannot flush", "err", err)
		return
	}
	tick := time.NewTicker(s.cfg.heartbeat)
	defer tick.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			writeSSE(&buf, ev)
		case <-tick.C:
			buf.WriteString(": ping\n\n")
		}
		if n := sub.TakeLost(); n > 0 {
			notice, _ := jsonMarshal(map[string]uint64{"dropped": n})
			writeSSE(&buf, Event{Type: DroppedType, Time: s.cfg.now().UTC(), Data: notice})
		}
		// A client that stops reading must not hold this handler forever:
		// its writes time out and the stream ends (it can reconnect with
		// Last-Event-ID). Meanwhile Publish drops for it instead of waiting.
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// sseWriteTimeout bounds one write of the event stream.
const sseWriteTimeout = 30 * time.Second

func writeSSE(buf *bytes.Buffer, ev Event) {
	b, _ := jsonMarshal(ev) // RawMessage data is valid JSON from Publish
	if ev.ID != 0 {
		fmt.Fprintf(buf, "id: %d\n", ev.ID)
	}
	// JSON has no raw newlines, so the event is a single data line.
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
}
