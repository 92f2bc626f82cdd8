package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
)

// Reasons in the handshake, disconnect and drop counters.
const (
	reasonOK           = "ok"
	reasonBadToken     = "bad_token"
	reasonNoToken      = "no_token"
	reasonRateLimited  = "rate_limited"
	reasonShutdown     = "shutdown"
	reasonNotAdmitted  = "not_admitted" // Options.Admit refused the upgrade
	reasonLeaseLost    = "lease_lost"   // Session.LeaseLost: the cluster member's lease ended
	reasonRedirected   = "redirected"   // Options.Redirect sent the agent to other servers
	reasonDraining     = "draining"     // Session.Drain: the cluster member is draining
	reasonUpgrade      = "upgrade_failed"
	reasonComeTimeout  = "come_timeout"
	reasonNotCome      = "not_come"
	reasonMalformed    = "malformed"
	reasonBadID        = "bad_id"
	reasonConflict     = "id_conflict"
	reasonBadSecret    = "bad_secret"
	reasonLegacy       = "legacy_refused" // a v1 session without AllowLegacy
	reasonStore        = "store_error"
	reasonClosed       = "closed"        // the peer closed the connection
	reasonReadError    = "read_error"    // a read failed for another reason
	reasonDeadPeer     = "dead_peer"     // nothing received within DeadAfter
	reasonFrameTooBig  = "frame_too_big" // a frame over MaxFrame
	reasonWriteTimeout = "write_timeout" // a write did not finish in time
	reasonWriteError   = "write_error"
	reasonQueueFull    = "queue_full" // the send queue stayed full past WriteTimeout
	reasonReplaced     = "replaced"   // a connection proving the secret took over
	reasonKicked       = "kicked"     // Session.Close
	reasonJournal      = "journal_error"
	reasonDuplicate    = "duplicate"       // journaled message already stored
	reasonOverflow     = "stream_overflow" // a Stream consumer fell behind
	reasonUnhandled    = "unhandled"       // no waiter and no handler
	reasonBadMessage   = "bad_message"     // a frame that does not decode
)

// Bounds of a send queue (agentserver_hub_send_queue_full_total).
const (
	limitMessages = "messages"
	limitBytes    = "bytes"
)

type metrics struct {
	connected   *prometheus.GaugeVec   // type, version
	handshakes  *prometheus.CounterVec // result, reason
	disconnects *prometheus.CounterVec // reason
	dropped     *prometheus.CounterVec // reason
	msgsIn      prometheus.Counter
	msgsOut     prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	pending     prometheus.Gauge
	gaps        prometheus.Counter
	queueBytes  prometheus.Gauge       // bytes in all send queues
	queueFull   *prometheus.CounterVec // limit
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r := stat.New(reg, "agentserver")
	m := &metrics{
		connected:   r.GaugeVec("hub_connected_agents", "Agents connected now, by agent type (come.name) and version.", "type", "version"),
		handshakes:  r.CounterVec("hub_handshakes_total", "Agent connection attempts by result (ok, rejected) and reason.", "result", "reason"),
		disconnects: r.CounterVec("hub_disconnects_total", "Agent sessions ended, by reason.", "reason"),
		dropped:     r.CounterVec("hub_dropped_messages_total", "Messages dropped by the hub, by reason.", "reason"),
		msgsIn:      r.Counter("hub_messages_received_total", "Messages received from agents."),
		msgsOut:     r.Counter("hub_messages_sent_total", "Messages sent to agents."),
		bytesIn:     r.Counter("hub_received_bytes_total", "Message bytes received from agents."),
		bytesOut:    r.Counter("hub_sent_bytes_total", "Message bytes sent to agents."),
		pending:     r.Gauge("hub_pending_requests", "Requests waiting for an agent's reply."),
		gaps:        r.Counter("hub_journal_gaps_total", "Gaps in journaled sequence numbers (ack.v1)."),
		queueBytes:  r.Gauge("hub_send_queue_bytes", "Encoded bytes waiting in the send queues of all connections."),
		queueFull: r.CounterVec("hub_send_queue_full_total",
			"Sends refused because a send queue stayed full past WriteTimeout (the agent is disconnected, reason queue_full), by the bound that was reached: messages (hub.Options.SendQueue) or bytes (agent.send_queue_bytes).", "limit"),
	}
	for _, l := range []string{limitMessages, limitBytes} {
		m.queueFull.WithLabelValues(l)
	}
	return m, r.Err()
}
