// Package metrics holds agent-server's own Prometheus metrics: the API
// request counter and latency histogram ([API]), and the per-agent series of
// agent-server 1.5 built from the agents' type-7 self-reports ([Agents]), so
// that existing dashboards keep working. Everything is registered on a
// registry the caller passes in.
package metrics

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/libagent/protocol"
)

// Agents is a prometheus.Collector exposing, for every agent that sent a
// self-report and is still connected,
//
//	agent_info{id, agent_type, tag} <value>      one series per tag
//	agent_version{id, version, go_version} 1
//
// with the tags of agent-server 1.5 (cpu_usage, memory_usage, threads,
// routines, startup, heap_in_use, gc_0 … gc_1, in_packets, in_bytes,
// out_packets, out_bytes, reconnect_count, read_chan_size, write_chan_size,
// report_time). The series are built at scrape time from the last report, so
// an update costs one map write and removing an agent removes all its series.
// Safe for concurrent use.
type Agents struct {
	info, version *prometheus.Desc

	mu     sync.Mutex
	agents map[string]agentReport
}

type agentReport struct {
	agentType string
	ai        protocol.AgentInfo
	at        time.Time
}

// NewAgents returns an empty collector; register it on the server's registry.
func NewAgents() *Agents {
	return &Agents{
		info: prometheus.NewDesc("agent_info", "Self-reported figures of each connected agent (type 7), one series per tag.",
			[]string{"id", "agent_type", "tag"}, nil),
		version: prometheus.NewDesc("agent_version", "Version and Go version of each connected agent that reported them; always 1.",
			[]string{"id", "version", "go_version"}, nil),
		agents: map[string]agentReport{},
	}
}

// Set records the latest report of agent id (of type agentType) received at at.
func (a *Agents) Set(id, agentType string, ai protocol.AgentInfo, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.agents[id] = agentReport{agentType: agentType, ai: ai, at: at}
}

// Delete removes every series of agent id (it disconnected).
func (a *Agents) Delete(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.agents, id)
}

// Len returns the number of agents with series.
func (a *Agents) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.agents)
}

// Describe implements prometheus.Collector.
func (a *Agents) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.info
	ch <- a.version
}

// gcTags maps the keys of AgentInfo.GC to the 1.5 tag names.
var gcTags = [...][2]string{{"0", "gc_0"}, {"25", "gc_0.25"}, {"50", "gc_0.5"}, {"75", "gc_0.75"}, {"100", "gc_1"}}

// Collect implements prometheus.Collector.
func (a *Agents) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	ids := make([]string, 0, len(a.agents))
	for id := range a.agents {
		ids = append(ids, id)
	}
	reports := make([]agentReport, 0, len(ids))
	sort.Strings(ids)
	for _, id := range ids {
		reports = append(reports, a.agents[id])
	}
	a.mu.Unlock()

	for i, id := range ids {
		r := reports[i]
		ai := &r.ai
		emit := func(tag string, v float64) {
			ch <- prometheus.MustNewConstMetric(a.info, prometheus.GaugeValue, v, id, r.agentType, tag)
		}
		emit("cpu_usage", float64(ai.CPUUsage))
		emit("memory_usage", float64(ai.MemoryUsage))
		emit("threads", float64(ai.Threads))
		emit("routines", float64(ai.Routines))
		emit("startup", float64(ai.Startup))
		emit("heap_in_use", float64(ai.HeapInuse))
		for _, g := range gcTags {
			emit(g[1], ai.GC[g[0]])
		}
		emit("in_packets", float64(ai.InPackets))
		emit("in_bytes", float64(ai.InBytes))
		emit("out_packets", float64(ai.OutPackets))
		emit("out_bytes", float64(ai.OutBytes))
		emit("reconnect_count", float64(ai.ReconnectCount))
		emit("read_chan_size", float64(ai.ReadChanSize))
		emit("write_chan_size", float64(ai.WriteChanSize))
		emit("report_time", float64(r.at.Unix()))
		ch <- prometheus.MustNewConstMetric(a.version, prometheus.GaugeValue, 1, id, ai.Version, ai.GoVersion)
	}
}

// statusLabel is the status label text of an HTTP status.
func statusLabel(code int) string { return strconv.Itoa(code) }
