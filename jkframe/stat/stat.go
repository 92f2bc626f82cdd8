// Package stat creates Prometheus metrics on a registerer the caller owns,
// without the registration panics of promauto and prometheus.MustRegister.
//
//	r := stat.New(reg, "agentserver")
//	reqs := r.CounterVec("api_requests_total", "API requests by route and status.", "route", "status")
//	lat := r.Histogram("api_request_duration_seconds", "API request latency.", nil)
//	if err := r.Err(); err != nil {
//		return fmt.Errorf("metrics: %w", err)
//	}
//	defer stat.Time(lat)()
//
// Errors surface once, through [Registry.Err], like bufio.Scanner: the
// constructors always return a usable collector so that setup code stays a
// flat list, and the caller checks Err after it. Asking for a metric that is
// already registered with the same definition (name, help, labels and type)
// returns the existing collector, so two components, or two instances of one,
// can share a metric. A conflicting definition (same name, other help, labels
// or type; a name outside [a-zA-Z_:][a-zA-Z0-9_:]* or label outside
// [a-zA-Z_][a-zA-Z0-9_]*) is recorded as an error wrapping [ErrConflict] or
// the registerer's error, and the returned collector is a detached one that
// works but is not exported.
//
// A histogram re-requested with other buckets returns the existing one with
// its original buckets: Prometheus descriptors do not include buckets.
//
// Collectors of other kinds (gauge functions, custom collectors computing
// their series at scrape time) go through the same Registry, so that every
// component of a program registers its metrics one way: a metrics struct
// built from a stat.Registry on the prometheus.Registerer it was given.
//
// A Registry is safe for concurrent use.
package stat

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrConflict is wrapped by the error recorded when a metric name is already
// registered as a collector of another kind.
var ErrConflict = errors.New("stat: metric registered with another type")

// Registry creates metrics named namespace_name on a registerer.
type Registry struct {
	reg    prometheus.Registerer
	ns     string
	labels prometheus.Labels // constant labels of every metric created
	owned  bool              // an existing registration is an error, not shared
	errs   *errs             // shared with the Registries made by With
}

type errs struct {
	mu  sync.Mutex
	err error
}

// New returns a Registry registering on reg, naming metrics
// namespace_name (just name when namespace is empty). A nil reg is a
// private registry: the metrics work but are not exported (components
// whose caller passed no registerer).
func New(reg prometheus.Registerer, namespace string) *Registry {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &Registry{reg: reg, ns: namespace, errs: &errs{}}
}

// With returns a Registry on the same registerer and namespace whose
// metrics all carry the constant labels (merged over r's). Its errors are
// r's: Err on either reports both.
func (r *Registry) With(labels prometheus.Labels) *Registry {
	merged := prometheus.Labels{}
	for k, v := range r.labels {
		merged[k] = v
	}
	for k, v := range labels {
		merged[k] = v
	}
	return &Registry{reg: r.reg, ns: r.ns, labels: merged, owned: r.owned, errs: r.errs}
}

// Owned returns a Registry like r whose metrics are never shared: asking
// for one already registered is an error (wrapping
// prometheus.AlreadyRegisteredError) instead of returning the existing one.
// For components that unregister their metrics when they close.
func (r *Registry) Owned() *Registry {
	return &Registry{reg: r.reg, ns: r.ns, labels: r.labels, owned: true, errs: r.errs}
}

// Err returns every registration error so far, joined, or nil.
func (r *Registry) Err() error {
	r.errs.mu.Lock()
	defer r.errs.mu.Unlock()
	return r.errs.err
}

// LatencyBuckets returns histogram buckets for durations in seconds, from
// 100µs to 30s, roughly 1-2.5-5 per decade. Used when a histogram is asked
// for with nil buckets.
func LatencyBuckets() []float64 {
	return []float64{
		0.0001, 0.00025, 0.0005,
		0.001, 0.0025, 0.005,
		0.01, 0.025, 0.05,
		0.1, 0.25, 0.5,
		1, 2.5, 5,
		10, 30,
	}
}

// Counter returns the counter namespace_name.
func (r *Registry) Counter(name, help string) prometheus.Counter {
	return register(r, name, prometheus.NewCounter(prometheus.CounterOpts(r.opts(name, help))))
}

// CounterVec returns the counter vector namespace_name with the given labels.
func (r *Registry) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(r, name, prometheus.NewCounterVec(prometheus.CounterOpts(r.opts(name, help)), labels), labels...)
}

// Gauge returns the gauge namespace_name.
func (r *Registry) Gauge(name, help string) prometheus.Gauge {
	return register(r, name, prometheus.NewGauge(prometheus.GaugeOpts(r.opts(name, help))))
}

// GaugeVec returns the gauge vector namespace_name with the given labels.
func (r *Registry) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(r, name, prometheus.NewGaugeVec(prometheus.GaugeOpts(r.opts(name, help)), labels), labels...)
}

// GaugeFunc returns the gauge namespace_name whose value fn computes at
// every scrape (fn must be safe for concurrent use).
func (r *Registry) GaugeFunc(name, help string, fn func() float64) prometheus.GaugeFunc {
	return register(r, name, prometheus.NewGaugeFunc(prometheus.GaugeOpts(r.opts(name, help)), fn))
}

// Collector registers a collector of its own kind (one that builds its
// series at scrape time); a failure is recorded for Err. Its metric names
// are its own: neither the namespace nor With's labels apply.
func (r *Registry) Collector(c prometheus.Collector) {
	if err := r.reg.Register(c); err != nil {
		r.fail(fmt.Errorf("stat: register %T: %w", c, err))
	}
}

// Histogram returns the histogram namespace_name; nil buckets means
// [LatencyBuckets].
func (r *Registry) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(r, name, prometheus.NewHistogram(r.histOpts(name, help, buckets)))
}

// HistogramVec returns the histogram vector namespace_name with the given
// labels; nil buckets means [LatencyBuckets].
func (r *Registry) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(r, name, prometheus.NewHistogramVec(r.histOpts(name, help, buckets), labels), labels...)
}

func (r *Registry) opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: r.ns, Name: name, Help: help, ConstLabels: r.labels}
}

func (r *Registry) histOpts(name, help string, buckets []float64) prometheus.HistogramOpts {
	if buckets == nil {
		buckets = LatencyBuckets()
	}
	return prometheus.HistogramOpts{Namespace: r.ns, Name: name, Help: help, ConstLabels: r.labels, Buckets: buckets}
}

func (r *Registry) fail(err error) {
	r.errs.mu.Lock()
	defer r.errs.mu.Unlock()
	r.errs.err = errors.Join(r.errs.err, err)
}

// register registers c, or returns the collector already registered under
// the same definition.
func register[C prometheus.Collector](r *Registry, name string, c C, labels ...string) C {
	fq := prometheus.BuildFQName(r.ns, "", name)
	// The client library accepts any UTF-8 name; keep to the classic
	// character set that every scraper and query language handles.
	if !validName(fq, true) {
		r.fail(fmt.Errorf("stat: invalid metric name %q", fq))
		return c
	}
	for _, l := range labels {
		if !validName(l, false) || strings.HasPrefix(l, "__") {
			r.fail(fmt.Errorf("stat: %s: invalid label name %q", fq, l))
			return c
		}
	}
	err := r.reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) || r.owned {
		r.fail(fmt.Errorf("stat: register %s: %w", fq, err))
		return c
	}
	// Compare concrete types: a gauge also satisfies prometheus.Counter.
	existing, ok := are.ExistingCollector.(C)
	if !ok || reflect.TypeOf(are.ExistingCollector) != reflect.TypeOf(c) {
		r.fail(fmt.Errorf("%w: %s is a %T, asked for a %T", ErrConflict, fq, are.ExistingCollector, c))
		return c
	}
	return existing
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]* (metric
// names) or [a-zA-Z_][a-zA-Z0-9_]* (label names, colon false).
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
			i > 0 && '0' <= c && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// Time starts a timer and returns the function that observes the seconds
// elapsed since, for `defer stat.Time(h)()`.
func Time(o prometheus.Observer) func() {
	start := time.Now()
	return func() { Since(o, start) }
}

// Since observes the seconds elapsed since start.
func Since(o prometheus.Observer, start time.Time) {
	o.Observe(time.Since(start).Seconds())
}
