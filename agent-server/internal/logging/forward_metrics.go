package logging

import (
	"github.com/prometheus/client_golang/prometheus"
)

// fwdMetrics are the agentserver_logging_forward_* series.
type fwdMetrics struct {
	lines, bytes, dups *prometheus.CounterVec // project
	failures           *prometheus.CounterVec // project, reason
	dropped            *prometheus.CounterVec // project, reason
	truncated          *prometheus.CounterVec // project
	unreadable         *prometheus.CounterVec // project
	lag                *prometheus.GaugeVec   // project, host
	connected          prometheus.Gauge
	ack                prometheus.Histogram
	deleted            prometheus.Counter
}

func newFwdMetrics(reg prometheus.Registerer) (*fwdMetrics, error) {
	m := &fwdMetrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_lines_total",
			Help: "Log lines forwarded to NATS JetStream and acknowledged by it, by project."}, []string{"project"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_bytes_total",
			Help: "Bytes of the log lines forwarded to NATS JetStream and acknowledged, by project."}, []string{"project"}),
		dups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_duplicates_total",
			Help: "Lines sent again (after a failure or a restart) that JetStream recognised by their message id and did not store twice, by project."}, []string{"project"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_failures_total",
			Help: "Forwarding rounds that failed and are retried with backoff, by project and reason (connection, timeout, no_stream, stream, rejected, other)."}, []string{"project", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_dropped_lines_total",
			Help: "Stored lines never forwarded, by project and reason (retention: deleted by logging.max_age or logging.max_size before they were forwarded)."}, []string{"project", "reason"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_truncated_lines_total",
			Help: "Lines longer than the NATS server's max_payload, forwarded cut to it (header Log-Truncated holds the length), by project."}, []string{"project"}),
		unreadable: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_forward_unreadable_segments_total",
			Help: "Closed segments whose rest could not be read (corrupt on disk) and were skipped by the forwarding, by project."}, []string{"project"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "agentserver_logging_forward_lag_bytes",
			Help: "Bytes of stored segments not forwarded yet (compressed, as on disk), by project and host."}, []string{"project", "host"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "agentserver_logging_forward_connected",
			Help: "1 while the connection to NATS is up, else 0."}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "agentserver_logging_forward_round_seconds",
			Help:    "Time from the first publish of a forwarding round (up to 1000 lines of a host) to its last acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentserver_logging_forward_segments_deleted_total",
			Help: "Segments deleted once forwarded (logging.nats.keep_store = false)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lines, m.bytes, m.dups, m.failures, m.dropped, m.truncated, m.unreadable, m.lag, m.connected, m.ack, m.deleted} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// forget drops a removed project's series.
func (m *fwdMetrics) forget(project string) {
	l := prometheus.Labels{"project": project}
	for _, v := range []*prometheus.CounterVec{m.lines, m.bytes, m.dups, m.failures, m.dropped, m.truncated, m.unreadable} {
		v.DeletePartialMatch(l)
	}
	m.lag.DeletePartialMatch(l)
}
