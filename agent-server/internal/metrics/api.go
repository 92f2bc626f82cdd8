package metrics

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
)

// API counts and times HTTP requests by route pattern and status.
type API struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	auditFailed prometheus.Counter
	forwarded   *prometheus.CounterVec
}

// NewAPI registers agentserver_api_requests_total{route, status} and
// agentserver_api_request_duration_seconds{route} on reg.
func NewAPI(reg prometheus.Registerer) (*API, error) {
	// Owned: one API per registry, as two would count each other's requests.
	r := stat.New(reg, "agentserver").Owned()
	a := &API{
		requests:    r.CounterVec("api_requests_total", "HTTP requests by route pattern and status code.", "route", "status"),
		auditFailed: r.Counter("api_audit_failures_total", "Audit entries the store did not take (each also logged at error level)."),
		forwarded: r.CounterVec("api_forwarded_total", "Calls for an agent held by another cluster member, by outcome: "+
			"relayed (to that member), unreachable (it did not answer: 503), moved (a forwarded call whose agent moved on: 503), "+
			"no_owner (the store did not say who holds the agent: 503).", "outcome"),
		latency: r.HistogramVec("api_request_duration_seconds", "HTTP request latency by route pattern, until the handler returned.", nil, "route"),
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("api metrics: %w", err)
	}
	return a, nil
}

// Forwarded counts a call for an agent another cluster member holds, by
// outcome (relayed, unreachable, moved, no_owner).
func (a *API) Forwarded(outcome string) { a.forwarded.WithLabelValues(outcome).Inc() }

// AuditFailed counts an audit entry that could not be stored.
func (a *API) AuditFailed() { a.auditFailed.Inc() }

// Wrap counts and times every request to next under route.
func (a *API) Wrap(route string, next http.Handler) http.Handler {
	obs := a.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			obs.Observe(time.Since(start).Seconds())
			a.requests.WithLabelValues(route, statusLabel(sw.code)).Inc()
		}()
		next.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(p)
}

// Hijack passes through to the connection (the agent WebSocket upgrade).
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.code, s.wroteHeader = http.StatusSwitchingProtocols, true
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// Flush passes through (streamed downloads).
func (s *statusWriter) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Counts is a function returning a gauge value per label value, for
// NewGaugeFunc (tasks by state read from the store at scrape time).
type Counts func(ctx context.Context) (map[string]float64, error)

// countsCollector exposes a Counts function as one gauge vector.
type countsCollector struct {
	desc    *prometheus.Desc
	f       Counts
	timeout time.Duration
}

// NewCountsCollector returns a collector of the gauge name{label} whose values
// f returns at scrape time, bounded by timeout. On error the gauge is left
// out of that scrape rather than failing the whole scrape.
func NewCountsCollector(name, help, label string, timeout time.Duration, f Counts) prometheus.Collector {
	return &countsCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f, timeout: timeout}
}

func (c *countsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *countsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	m, err := c.f(ctx)
	if err != nil {
		return
	}
	for k, v := range m {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, k)
	}
}
