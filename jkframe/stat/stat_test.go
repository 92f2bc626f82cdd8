package stat

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

func TestMetricsExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, "ns")
	c := r.Counter("things_total", "Things seen.")
	cv := r.CounterVec("reqs_total", "Requests.", "route", "status")
	g := r.Gauge("agents", "Connected agents.")
	gv := r.GaugeVec("queue_len", "Queue length.", "queue")
	h := r.Histogram("lat_seconds", "Latency.", []float64{0.1, 1})
	hv := r.HistogramVec("op_seconds", "Op latency.", []float64{1}, "op")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}

	c.Add(3)
	cv.WithLabelValues("/a", "200").Inc()
	cv.WithLabelValues("/a", "200").Inc()
	g.Set(7)
	gv.WithLabelValues("out").Set(2)
	h.Observe(0.05)
	h.Observe(0.5)
	hv.WithLabelValues("put").Observe(2)

	if got := testutil.ToFloat64(c); got != 3 {
		t.Errorf("counter = %v, want 3", got)
	}
	if got := testutil.ToFloat64(cv.WithLabelValues("/a", "200")); got != 2 {
		t.Errorf("counter vec = %v, want 2", got)
	}
	if got := testutil.ToFloat64(g); got != 7 {
		t.Errorf("gauge = %v, want 7", got)
	}
	want := `
# HELP ns_lat_seconds Latency.
# TYPE ns_lat_seconds histogram
ns_lat_seconds_bucket{le="0.1"} 1
ns_lat_seconds_bucket{le="1"} 2
ns_lat_seconds_bucket{le="+Inf"} 2
ns_lat_seconds_sum 0.55
ns_lat_seconds_count 2
# HELP ns_op_seconds Op latency.
# TYPE ns_op_seconds histogram
ns_op_seconds_bucket{op="put",le="1"} 0
ns_op_seconds_bucket{op="put",le="+Inf"} 1
ns_op_seconds_sum{op="put"} 2
ns_op_seconds_count{op="put"} 1
# HELP ns_queue_len Queue length.
# TYPE ns_queue_len gauge
ns_queue_len{queue="out"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ns_lat_seconds", "ns_op_seconds", "ns_queue_len"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 6 {
		t.Errorf("GatherAndCount = %d, %v; want 6 series", n, err)
	}
}

func TestEmptyNamespace(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, "").Counter("plain_total", "Plain.").Inc()
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP plain_total Plain.\n# TYPE plain_total counter\nplain_total 1\n")); err != nil {
		t.Error(err)
	}
}

func TestSameDefinitionSharesCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := New(reg, "ns"), New(reg, "ns")
	a.Counter("x_total", "X.").Inc()
	b.Counter("x_total", "X.").Inc()
	a.CounterVec("v_total", "V.", "l").WithLabelValues("1").Inc()
	b.CounterVec("v_total", "V.", "l").WithLabelValues("1").Inc()
	a.Histogram("h_seconds", "H.", nil).Observe(1)
	b.Histogram("h_seconds", "H.", nil).Observe(1)
	for _, r := range []*Registry{a, b} {
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(a.Counter("x_total", "X.")); got != 2 {
		t.Errorf("shared counter = %v, want 2", got)
	}
	if got := testutil.ToFloat64(a.CounterVec("v_total", "V.", "l").WithLabelValues("1")); got != 2 {
		t.Errorf("shared counter vec = %v, want 2", got)
	}
	if got := testutil.CollectAndCount(a.Histogram("h_seconds", "H.", nil)); got != 1 {
		t.Errorf("histogram series = %d, want 1", got)
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		name    string
		first   func(*Registry)
		second  func(*Registry)
		wantIs  error
		wantMsg string
	}{
		{
			name:    "gauge over counter",
			first:   func(r *Registry) { r.Counter("x", "X.") },
			second:  func(r *Registry) { r.Gauge("x", "X.").Set(1) },
			wantIs:  ErrConflict,
			wantMsg: "stat: metric registered with another type: ns_x is a *prometheus.counter, asked for a *prometheus.gauge",
		},
		{
			name:    "counter over gauge",
			first:   func(r *Registry) { r.Gauge("x", "X.") },
			second:  func(r *Registry) { r.Counter("x", "X.").Inc() },
			wantIs:  ErrConflict,
			wantMsg: "stat: metric registered with another type: ns_x is a *prometheus.gauge, asked for a *prometheus.counter",
		},
		{
			name:    "other help",
			first:   func(r *Registry) { r.Counter("x", "X.") },
			second:  func(r *Registry) { r.Counter("x", "Other.").Inc() },
			wantMsg: `stat: register ns_x: a previously registered descriptor with the same fully-qualified name as Desc{fqName: "ns_x", help: "Other."`,
		},
		{
			name:    "other labels",
			first:   func(r *Registry) { r.CounterVec("x", "X.", "a") },
			second:  func(r *Registry) { r.CounterVec("x", "X.", "b").WithLabelValues("1").Inc() },
			wantMsg: `stat: register ns_x: a previously registered descriptor with the same fully-qualified name as Desc{fqName: "ns_x", help: "X."`,
		},
		{
			name:    "invalid name",
			first:   func(*Registry) {},
			second:  func(r *Registry) { r.Gauge("bad-name", "X.").Set(1) },
			wantMsg: `stat: invalid metric name "ns_bad-name"`,
		},
		{
			name:    "invalid label",
			first:   func(*Registry) {},
			second:  func(r *Registry) { r.HistogramVec("h", "X.", nil, "ok", "9lives").WithLabelValues("a", "b").Observe(1) },
			wantMsg: `stat: ns_h: invalid label name "9lives"`,
		},
		{
			name:    "reserved label",
			first:   func(*Registry) {},
			second:  func(r *Registry) { r.GaugeVec("g", "X.", "__name").WithLabelValues("a").Set(1) },
			wantMsg: `stat: ns_g: invalid label name "__name"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(prometheus.NewRegistry(), "ns")
			tt.first(r)
			if err := r.Err(); err != nil {
				t.Fatalf("first registration: %v", err)
			}
			tt.second(r) // must not panic: the returned collector is usable
			err := r.Err()
			if err == nil {
				t.Fatal("no error recorded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			// The library's own texts are compared up to where they
			// start listing descriptor internals.
			if msg := err.Error(); msg != tt.wantMsg && !(strings.HasPrefix(tt.wantMsg, "stat: register") && strings.HasPrefix(msg, tt.wantMsg)) {
				t.Errorf("err = %q\nwant  %q", err, tt.wantMsg)
			}
		})
	}
}

func TestErrJoinsAll(t *testing.T) {
	r := New(prometheus.NewRegistry(), "")
	r.Counter("a-b", "X.")
	r.Counter("c-d", "X.")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), `"a-b"`) || !strings.Contains(err.Error(), `"c-d"`) {
		t.Fatalf("err = %v, want both names", err)
	}
}

func TestLatencyBuckets(t *testing.T) {
	b := LatencyBuckets()
	if b[0] != 0.0001 || b[len(b)-1] != 30 {
		t.Fatalf("buckets span %v..%v, want 0.0001..30", b[0], b[len(b)-1])
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Fatalf("buckets not increasing at %d: %v", i, b)
		}
	}
	b[0] = 99
	if LatencyBuckets()[0] != 0.0001 {
		t.Fatal("LatencyBuckets returned shared state")
	}
	h := New(prometheus.NewRegistry(), "").Histogram("d_seconds", "D.", nil)
	h.Observe(0.00005)
	got, err := testutil.CollectAndFormat(h, expfmt.TypeTextPlain, "d_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(got), "d_seconds_bucket{"); n != len(LatencyBuckets())+1 {
		t.Errorf("nil buckets gave %d buckets, want %d:\n%s", n, len(LatencyBuckets())+1, got)
	}
	if !strings.Contains(string(got), `d_seconds_bucket{le="0.0001"} 1`) {
		t.Errorf("smallest bucket did not count 50µs:\n%s", got)
	}
}

func TestTimeAndSince(t *testing.T) {
	h := New(prometheus.NewRegistry(), "").Histogram("t_seconds", "T.", []float64{3600})
	func() { defer Time(h)() }()
	Since(h, time.Now().Add(-2*time.Hour))
	want := `
# HELP t_seconds T.
# TYPE t_seconds histogram
t_seconds_bucket{le="3600"} 1
t_seconds_bucket{le="+Inf"} 2
`
	// Compare only the buckets: the sum depends on the wall clock.
	got, err := testutil.CollectAndFormat(h, expfmt.TypeTextPlain, "t_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		if !strings.Contains(string(got), line+"\n") {
			t.Errorf("exposition lacks %q:\n%s", line, got)
		}
	}
}

func TestGaugeFuncWithAndCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, "ns")
	n := 4.0
	r.GaugeFunc("hosts", "Hosts now.", func() float64 { return n })
	lat := r.With(prometheus.Labels{"driver": "sqlite"}).HistogramVec("op_seconds", "Op latency.", []float64{1}, "op")
	lat.WithLabelValues("get").Observe(0.5)
	r.Collector(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "own_metric", Help: "Named by its collector."}, func() float64 { return 1 }))
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP ns_hosts Hosts now.
# TYPE ns_hosts gauge
ns_hosts 4
# HELP ns_op_seconds Op latency.
# TYPE ns_op_seconds histogram
ns_op_seconds_bucket{driver="sqlite",op="get",le="1"} 1
ns_op_seconds_bucket{driver="sqlite",op="get",le="+Inf"} 1
ns_op_seconds_sum{driver="sqlite",op="get"} 0.5
ns_op_seconds_count{driver="sqlite",op="get"} 1
# HELP own_metric Named by its collector.
# TYPE own_metric gauge
own_metric 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// A second registration of the same custom collector fails; the error
	// of a With child shows on its parent.
	c := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "own_metric", Help: "Named by its collector."}, func() float64 { return 1 })
	r.With(prometheus.Labels{"x": "y"}).Collector(c)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("Err = %v, want the duplicate registration", err)
	}
}

func TestNilRegistererIsPrivate(t *testing.T) {
	r := New(nil, "ns")
	c := r.Counter("things_total", "Things seen.")
	c.Inc()
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(c); got != 1 {
		t.Errorf("counter = %v, want 1", got)
	}
}

func TestOwnedIsNotShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, "ns")
	first := r.Owned().HistogramVec("op_seconds", "Op latency.", nil, "op")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	r2 := New(reg, "ns").Owned()
	second := r2.HistogramVec("op_seconds", "Op latency.", nil, "op")
	var are prometheus.AlreadyRegisteredError
	if err := r2.Err(); !errors.As(err, &are) {
		t.Fatalf("Err = %v, want AlreadyRegisteredError", err)
	}
	if first == second {
		t.Fatal("owned metric shared")
	}
	// Unregistering the owner's collector leaves nothing behind.
	first.WithLabelValues("get").Observe(1)
	reg.Unregister(first)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("%d series after Unregister (%v)", n, err)
	}
}
