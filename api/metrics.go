package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// registerMetrics adds the Go and process collectors (unless the registry
// has them) and the server's own metrics.
func (s *Server) registerMetrics() error {
	reg := s.cfg.registry
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gpunode", Subsystem: "api", Name: "requests_total",
		Help: "API requests by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gpunode", Subsystem: "api", Name: "request_duration_seconds",
		Help:    "API request latency by route pattern (event streams count until they close).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
	}, []string{"route"})
	ev := s.cfg.events
	for _, c := range []prometheus.Collector{
		s.requests, s.duration,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "gpunode", Subsystem: "api", Name: "events_published_total",
			Help: "Events published to the event hub.",
		}, func() float64 { return float64(ev.Published()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "gpunode", Subsystem: "api", Name: "events_dropped_total",
			Help: "Event deliveries lost because a subscriber's buffer was full.",
		}, func() float64 { return float64(ev.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "gpunode", Subsystem: "api", Name: "event_subscribers",
			Help: "Open event stream subscriptions.",
		}, func() float64 { return float64(ev.Subscribers()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// statusWriter records the status code for metrics. Unwrap lets
// http.ResponseController reach the underlying writer's Flush.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// instrument counts requests by method, route pattern and code. Labels come
// from fixed sets (known methods, registered patterns), so a client cannot
// grow the metric's cardinality.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set by the mux on this request when a route matched
		if route == "" {
			route = "unmatched"
		}
		method := r.Method
		if !knownMethods[method] {
			method = "other"
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
		s.duration.WithLabelValues(route).Observe(s.cfg.now().Sub(start).Seconds())
	})
}

// slogPromLogger adapts slog to promhttp's error logger.
type slogPromLogger struct{ log *slog.Logger }

func (l slogPromLogger) Println(v ...any) { l.log.Warn("api: metrics", "err", v) }
