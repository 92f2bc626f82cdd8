package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentfleet/libagent/protocol"
)

func TestAgents(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := NewAgents()
	if err := reg.Register(a); err != nil {
		t.Fatal(err)
	}
	ai := protocol.AgentInfo{Version: "1.2.3", GoVersion: "go1.26.0", CPUUsage: 1.5, MemoryUsage: 2.25, Threads: 7, Routines: 12,
		Startup: 1700000000, HeapInuse: 4096, GC: map[string]float64{"0": 0.001, "25": 0.002, "50": 0.003, "75": 0.004, "100": 0.005},
		InPackets: 1, InBytes: 2, OutPackets: 3, OutBytes: 4, ReconnectCount: 5, ReadChanSize: 6, WriteChanSize: 8}
	a.Set("a1", "example-agent", ai, time.Unix(1800000000, 0))
	a.Set("a2", "exec-agent", protocol.AgentInfo{Version: "2.0.0", GoVersion: "go1.25"}, time.Unix(1800000001, 0))
	want := `
# HELP agent_version Version and Go version of each connected agent that reported them; always 1.
# TYPE agent_version gauge
agent_version{go_version="go1.26.0",id="a1",version="1.2.3"} 1
agent_version{go_version="go1.25",id="a2",version="2.0.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agent_version"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(a, "agent_info"); n != 2*19 {
		t.Errorf("agent_info series = %d, want 38", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "agent_info" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["id"] == "a1" {
				if l["agent_type"] != "example-agent" {
					t.Errorf("agent_type = %q", l["agent_type"])
				}
				got[l["tag"]] = m.GetGauge().GetValue()
			}
		}
	}
	wantTags := map[string]float64{"cpu_usage": 1.5, "memory_usage": 2.25, "threads": 7, "routines": 12, "startup": 1700000000,
		"heap_in_use": 4096, "gc_0": 0.001, "gc_0.25": 0.002, "gc_0.5": 0.003, "gc_0.75": 0.004, "gc_1": 0.005,
		"in_packets": 1, "in_bytes": 2, "out_packets": 3, "out_bytes": 4, "reconnect_count": 5, "read_chan_size": 6,
		"write_chan_size": 8, "report_time": 1800000000}
	for k, v := range wantTags {
		if got[k] != v {
			t.Errorf("tag %s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(wantTags) {
		t.Errorf("tags %v", got)
	}
	a.Delete("a1")
	a.Delete("nope")
	if n := testutil.CollectAndCount(a, "agent_info"); n != 19 || a.Len() != 1 {
		t.Errorf("after delete: %d series, %d agents", n, a.Len())
	}
}

func TestAPI(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewAPI(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAPI(reg); err == nil {
		t.Fatal("second NewAPI on one registry did not fail")
	}
	h := m.Wrap("GET /x/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("e") != "" {
			w.WriteHeader(404)
			w.WriteHeader(500) // ignored by net/http and by us
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	for _, q := range []string{"", "", "?e=1"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x/1"+q, nil))
	}
	want := `
# HELP agentserver_api_requests_total HTTP requests by route pattern and status code.
# TYPE agentserver_api_requests_total counter
agentserver_api_requests_total{route="GET /x/{id}",status="200"} 2
agentserver_api_requests_total{route="GET /x/{id}",status="404"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agentserver_api_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("latency series %d", n)
	}
}

func TestCounts(t *testing.T) {
	fail := false
	c := NewCountsCollector("agentserver_tasks", "Tasks by state.", "state", time.Second, func(ctx context.Context) (map[string]float64, error) {
		if fail {
			return nil, errors.New("db down")
		}
		return map[string]float64{"running": 2, "done": 5}, nil
	})
	want := `
# HELP agentserver_tasks Tasks by state.
# TYPE agentserver_tasks gauge
agentserver_tasks{state="done"} 5
agentserver_tasks{state="running"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	fail = true
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("on error %d series", n)
	}
}
