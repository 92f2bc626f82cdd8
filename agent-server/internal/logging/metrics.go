package logging

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
)

type metrics struct {
	lines, bytes *prometheus.CounterVec // project, host
	dups         *prometheus.CounterVec // project
	refused      *prometheus.CounterVec // reason
	ingestFull   *prometheus.CounterVec // outcome
	lag          *prometheus.GaugeVec   // project, host
	agentDropped *prometheus.GaugeVec   // project, host
	tailDropped  *prometheus.CounterVec // project
	pushes       prometheus.Counter
	pruned       prometheus.Counter
	prunedBytes  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := stat.New(reg, "agentserver")
	m := &metrics{
		lines:        r.CounterVec("logging_lines_received_total", "Log lines stored, by project and host (agent id); repeats not counted.", "project", "host"),
		bytes:        r.CounterVec("logging_bytes_received_total", "Bytes of the log lines stored, by project and host.", "project", "host"),
		dups:         r.CounterVec("logging_duplicate_lines_total", "Log lines received again (re-sent after an agent crash) and not stored twice, by project.", "project"),
		refused:      r.CounterVec("logging_batches_refused_total", "Log batches not stored (the agent keeps them and sends them again), by reason.", "reason"),
		ingestFull:   r.CounterVec("logging_ingest_queue_full_total", "Log batches that found their session's ingest queue full, by outcome: waited (the session's reader waited for room), disconnected (no room within the ingest wait: the agent was disconnected and sends them again).", "outcome"),
		lag:          r.GaugeVec("logging_lag_bytes", "Bytes a node has not shipped yet (sources not read plus spool not acknowledged), from its last status.", "project", "host"),
		agentDropped: r.GaugeVec("logging_agent_dropped_lines", "Lines a node dropped from its full spool since the project started there, from its last status.", "project", "host"),
		tailDropped:  r.CounterVec("logging_tail_dropped_lines_total", "Lines not sent to a live-tail client that did not keep up (they stay stored), by project.", "project"),
		pushes:       r.Counter("logging_config_pushes_total", "Project lists sent to log-agents."),
		pruned:       r.Counter("logging_segments_deleted_total", "Log segments deleted by retention (logging.max_age, logging.max_bytes)."),
		prunedBytes:  r.Counter("logging_segment_bytes_deleted_total", "Bytes of the log segments deleted by retention."),
	}
	return m, r.Err()
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
