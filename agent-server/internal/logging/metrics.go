package logging

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lines, bytes *prometheus.CounterVec // project, host
	dups         *prometheus.CounterVec // project
	refused      *prometheus.CounterVec // reason
	lag          *prometheus.GaugeVec   // project, host
	agentDropped *prometheus.GaugeVec   // project, host
	tailDropped  *prometheus.CounterVec // project
	pushes       prometheus.Counter
	pruned       prometheus.Counter
	prunedBytes  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_lines_received_total",
			Help: "Log lines stored, by project and host (agent id); repeats not counted."}, []string{"project", "host"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_bytes_received_total",
			Help: "Bytes of the log lines stored, by project and host."}, []string{"project", "host"}),
		dups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_duplicate_lines_total",
			Help: "Log lines received again (re-sent after an agent crash) and not stored twice, by project."}, []string{"project"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_batches_refused_total",
			Help: "Log batches not stored (the agent keeps them and sends them again), by reason."}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "agentserver_logging_lag_bytes",
			Help: "Bytes a node has not shipped yet (sources not read plus spool not acknowledged), from its last status."}, []string{"project", "host"}),
		agentDropped: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "agentserver_logging_agent_dropped_lines",
			Help: "Lines a node dropped from its full spool since the project started there, from its last status."}, []string{"project", "host"}),
		tailDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentserver_logging_tail_dropped_lines_total",
			Help: "Lines not sent to a live-tail client that did not keep up (they stay stored), by project."}, []string{"project"}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentserver_logging_config_pushes_total",
			Help: "Project lists sent to log-agents."}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentserver_logging_segments_deleted_total",
			Help: "Log segments deleted by retention (logging.max_age, logging.max_bytes)."}),
		prunedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentserver_logging_segment_bytes_deleted_total",
			Help: "Bytes of the log segments deleted by retention."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lines, m.bytes, m.dups, m.refused, m.lag, m.agentDropped, m.tailDropped, m.pushes, m.pruned, m.prunedBytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) received(project, host string, lines, bytes, dup int) {
	if lines > 0 {
		m.lines.WithLabelValues(project, host).Add(float64(lines))
		m.bytes.WithLabelValues(project, host).Add(float64(bytes))
	}
	if dup > 0 {
		m.dups.WithLabelValues(project).Add(float64(dup))
	}
}

// forget drops a removed project's series.
func (m *metrics) forget(project string) {
	l := prometheus.Labels{"project": project}
	m.lines.DeletePartialMatch(l)
	m.bytes.DeletePartialMatch(l)
	m.dups.DeletePartialMatch(l)
	m.lag.DeletePartialMatch(l)
	m.agentDropped.DeletePartialMatch(l)
	m.tailDropped.DeletePartialMatch(l)
}
