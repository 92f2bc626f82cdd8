package execsvc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
)

// Outcomes of late output (agentserver_exec_late_output_bytes_total).
const (
	// lateWaited: legacy output after exec_done, within the settle window:
	// in the result and the synchronous reply.
	lateWaited = "waited"
	// lateAppended: legacy output after the result was final: appended to
	// the stored output (and the result's byte counts), not in a reply
	// already sent.
	lateAppended = "appended"
	// lateDropped: output for an exec no longer in memory, or after
	// exec_done from an agent that promises none (stream.v1 / ack.v1).
	lateDropped = "dropped"
)

type metrics struct {
	late       *prometheus.CounterVec // outcome
	agentCut   prometheus.Counter
	agentDrops prometheus.Counter
	settle     prometheus.Histogram
	orphaned   *prometheus.CounterVec // how
	replayed   prometheus.Counter
}

// How execs whose agent lost them ended (agentserver_exec_orphaned_total).
const (
	// orphanReported: a restarted agent reported the command its previous
	// process left (exec_done with restarted).
	orphanReported = "agent_report"
	// orphanNotRunning: the agent's ps after a reconnect did not list it.
	orphanNotRunning = "not_running"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r := stat.New(reg, "agentserver")
	m := &metrics{
		late: r.CounterVec("exec_late_output_bytes_total",
			"Output bytes that arrived after the agent's exec_done (legacy v1 agents), by outcome: waited (in the result and reply), appended (stored after the result was final), dropped (no exec to take them).", "outcome"),
		agentCut: r.Counter("exec_agent_output_cut_total",
			"Execs whose agent reported that it stopped reading the output before its end (background processes held it open, silent for the agent's drain timeout)."),
		agentDrops: r.Counter("exec_agent_dropped_bytes_total",
			"Output bytes agents reported they read but did not send."),
		settle: r.Histogram("exec_late_output_wait_seconds",
			"Time from a legacy agent's exec_done until its output went quiet and the result was made final.", nil),
	}
	m.replayed = r.Counter("exec_replayed_bytes_total",
		"Output bytes an agent sent again that the server held already (a journal replay after a store failure or a restart), skipped by their offset.")
	m.orphaned = r.CounterVec("exec_orphaned_total",
		"Execs ended because their agent lost them (it restarted mid-run), by how the server learnt it: agent_report (the restarted agent killed the command or found it gone), not_running (the agent's ps after a reconnect did not list it).", "how")
	for _, h := range []string{orphanReported, orphanNotRunning} {
		m.orphaned.WithLabelValues(h)
	}
	for _, o := range []string{lateWaited, lateAppended, lateDropped} {
		m.late.WithLabelValues(o)
	}
	return m, r.Err()
}
