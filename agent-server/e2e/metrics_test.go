package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/utils"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"

	"github.com/agentfleet/jkframe/eventually"
)

// metricsAgent is a real libagent agent of type metrics-agent that answers
// the metrics requests (30, 32, 34, 36) from canned data, as the
// metrics-agent would, and pushes what the test tells it to.
type metricsAgent struct {
	*testAgent
	rt   chan *libagent.Runtime // the runtime, once set up
	mu   sync.Mutex
	jobs []string
	got  chan []string // job changes received (36)
}

type metricsSpec struct {
	id       string
	addr     string                                                                 // default the server's
	onStatus func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error // 34; default: the jobs
	onStatic func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error // 30; default: mStatic
}

func mStatic(name string) *protocol.HMStatic {
	boot := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	return &protocol.HMStatic{
		Time:   boot.Add(2 * time.Hour),
		Host:   protocol.HMHost{Name: name, Uptime: 2 * time.Hour},
		OS:     protocol.HMOS{Name: "linux", PlatformName: "debian", PlatformVersion: "12.5", Install: boot.Add(-24 * time.Hour), Startup: boot},
		Kernel: protocol.HMKernel{Version: "6.1.0", Arch: "x86_64"},
		CPU:    protocol.HMCPU{Physical: 2, Logical: 4, Cores: []protocol.HMCore{{Processor: 3, Model: "Xeon", Mhz: 2100.25}}},
		Memory: protocol.HMMemory{Physical: 8 << 30, Swap: 1 << 30},
		Disks:  []protocol.HMDisk{{Model: "QEMU", Total: 100 << 30, Type: "hdd", Partitions: []string{"/"}}},
		Partitions: []protocol.HMPartition{
			{Mount: "/", FSType: "ext4", Opts: []string{"rw", "relatime"}, Total: 100 << 30, Inodes: 6 << 20},
		},
		Nameservers: []string{"10.0.0.2"}, Gateway: "10.0.0.1",
		Interface: []protocol.HMInterface{{Index: 2, Name: "eth0", MTU: 1500, Flags: []string{"up"}, MAC: "02:00:00:00:00:01", Addrs: []string{"10.0.0.5/24"}}},
		User:      []protocol.HMUser{{Name: "root", ID: "0", GID: "0"}},
	}
}

func mUsage(cpu float64) *protocol.HMUsage {
	return &protocol.HMUsage{
		CPU:        protocol.HMUsageCPU{Usage: protocol.F2(cpu), Load1: 0.75, Load5: 0.5, Load15: 0.25},
		Memory:     protocol.HMUsageMemory{Used: 2 << 30, Free: 6 << 30, Available: 5 << 30, Usage: 25, SwapUsed: 1 << 20, SwapFree: 1<<30 - 1<<20},
		Partitions: []protocol.HMUsagePart{{Name: "/", Used: 30 << 30, Free: 60 << 30, Usage: 30, InodeUsed: 1000, InodeFree: 5000, ReadPerSecond: 4096, WritePerSecond: 8192}},
		Interface:  []protocol.HMUsageNetwork{{Name: "eth0", BytesSent: 111, BytesRecv: 222, PacketsSent: 3, PacketsRecv: 4}},
	}
}

var (
	mProcs = []protocol.HMProcess{
		{ID: 10, ParentID: 1, User: "root", CPUUsage: 1.5, RSS: 100, Cmd: []string{"sshd"}, Listen: []uint32{22}, Conns: 1},
		{ID: 20, ParentID: 1, User: "www", CPUUsage: 50, RSS: 900, Cmd: []string{"nginx", "-g"}},
		{ID: 30, ParentID: 1, User: "db", CPUUsage: 12.25, RSS: 5000, Cmd: []string{"mysqld"}},
	}
	mConns = []protocol.HMConnection{
		{FD: 3, Pid: 10, Type: "tcp4", Local: "0.0.0.0:22", Status: "LISTEN"},
		{FD: 4, Pid: 20, Type: "udp6", Local: "[::]:53"},
		{FD: 5, Pid: 30, Type: "unix", Local: "/run/mysqld.sock"},
	}
	mTemps = []protocol.HMTemperature{{Name: "coretemp_core0", Temp: 47.5}}
)

func startMetricsAgent(t *testing.T, ts *testServer, spec metricsSpec) *metricsAgent {
	t.Helper()
	ma := &metricsAgent{rt: make(chan *libagent.Runtime, 1), jobs: []string{"static", "usage"}, got: make(chan []string, 16)}
	addr := spec.addr
	if addr == "" {
		addr = ts.addr
	}
	ma.testAgent = startAgent(t, addr, agentSpec{id: spec.id, name: "metrics-agent", setup: func(rt *libagent.Runtime) {
		ma.rt <- rt
		rt.Handle(protocol.TypeHMStaticReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			if spec.onStatic != nil {
				return spec.onStatic(ctx, w, req)
			}
			return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: mStatic(spec.id)})
		})
		rt.Handle(protocol.TypeHMDynamicReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			// Like an old agent, ignores top and aconns: the server filters.
			rep := &protocol.HMDynamicRep{Begin: time.Now(), End: time.Now()}
			for _, c := range req.HMDynamicReq().Req {
				switch c {
				case protocol.HMReqUsage:
					rep.Usage = mUsage(33)
				case protocol.HMReqProcess:
					rep.Process = mProcs
				case protocol.HMReqConnections:
					rep.Connections = mConns
				case protocol.HMReqTemperatures:
					rep.Temperatures = mTemps
				}
			}
			return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: rep})
		})
		rt.Handle(protocol.TypeHMQueryCollect, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			if spec.onStatus != nil {
				return spec.onStatus(ctx, w, req)
			}
			ma.mu.Lock()
			rep := &protocol.HMStatusRep{AConns: []string{"tcp", "udp"}}
			for _, j := range ma.jobs {
				rep.Jobs = append(rep.Jobs, protocol.HMJob{Name: j, Interval: 5 * time.Second})
			}
			ma.mu.Unlock()
			return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMCollectStatus, Payload: rep})
		})
		rt.Handle(protocol.TypeHMChangeCollectStatus, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			jobs := slices.Clone(req.HMChangeStatus().Jobs)
			ma.mu.Lock()
			ma.jobs = jobs
			ma.mu.Unlock()
			ma.got <- jobs
			st := &protocol.HMAgentStatus{}
			for _, j := range jobs {
				st.Jobs = append(st.Jobs, protocol.HMAgentJob{Name: j, Interval: 5, BytesSent: 10, Count: 1})
			}
			return rt.Push(ctx, &protocol.Msg{Type: protocol.TypeHMAgentStatus, Payload: st})
		})
	}})
	return ma
}

// push sends a report without tid once the agent is connected.
func (ma *metricsAgent) push(t *testing.T, m *protocol.Msg) {
	t.Helper()
	rt := <-ma.rt
	ma.rt <- rt
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The server lists an agent online before the agent has read the
	// handshake reply: wait for its side too.
	eventually.Within(t, 30*time.Second, "agent connected", rt.Connected)
	if err := rt.Push(ctx, m); err != nil {
		t.Fatalf("push %s: %v", m.Type, err)
	}
}

// expect checks an answer's status and message.
func expect(t *testing.T, e envelope, what string, status int, msg string) {
	t.Helper()
	if e.status != status || (msg != "" && e.Msg != msg) {
		t.Errorf("%s: %d %q, want %d %q", what, e.status, e.Msg, status, msg)
	}
}

func payloadOf[T any](t *testing.T, e envelope, what string) T {
	t.Helper()
	var v T
	if e.status != 200 {
		t.Fatalf("%s: %d %s", what, e.status, e.Msg)
	}
	if err := json.Unmarshal(e.Payload, &v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, e.Payload)
	}
	return v
}

type apiDynamic struct {
	Usage *struct {
		CPU struct {
			Usage float64 `json:"usage"`
			Load1 float64 `json:"load1"`
		} `json:"cpu"`
		Memory struct {
			SwapUsed  uint64 `json:"swap_used"`
			Available uint64 `json:"available"`
		} `json:"memory"`
		Partitions []struct {
			Name          string  `json:"name"`
			InodeUsed     uint64  `json:"inode_used"`
			ReadPerSecond float64 `json:"read_per_second"`
		} `json:"partitions"`
		Interface []struct {
			Name      string `json:"name"`
			BytesSent uint64 `json:"bytes_sent"`
		} `json:"interface"`
	} `json:"usage"`
	Process []struct {
		ID       int     `json:"id"`
		CPUUsage float64 `json:"cpu_usage"`
		Cmd      []string
	} `json:"process"`
	Connections []struct {
		Type  string `json:"type"`
		Local string `json:"local"`
	} `json:"connections"`
	Temperatures []struct {
		Name string  `json:"name"`
		Temp float64 `json:"temp"`
	} `json:"temperatures"`
}

type apiStatic struct {
	Time int64 `json:"time"`
	Host struct {
		Name   string `json:"name"`
		Uptime int64  `json:"uptime"`
	} `json:"host"`
	OS struct {
		PlatformName string `json:"platform_name"`
		Startup      int64  `json:"startup"`
	} `json:"os"`
	CPU struct {
		Cores []struct {
			Mhz float64 `json:"mhz"`
		} `json:"cores"`
	} `json:"cpu"`
	Partitions []struct {
		Mount string   `json:"mount"`
		Opts  []string `json:"opts"`
	} `json:"partitions"`
}

func checkStatic(t *testing.T, e envelope, what, host string) {
	t.Helper()
	st := payloadOf[apiStatic](t, e, what)
	if st.Host.Name != host || st.Host.Uptime != 7200 || st.OS.PlatformName != "debian" ||
		st.OS.Startup != time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC).Unix() || len(st.CPU.Cores) != 1 || st.CPU.Cores[0].Mhz != 2100.25 ||
		len(st.Partitions) != 1 || st.Partitions[0].Mount != "/" || len(st.Partitions[0].Opts) != 2 {
		t.Errorf("%s = %s", what, e.Payload)
	}
}

func TestMetricsFresh(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startMetricsAgent(t, ts, metricsSpec{id: "m-1"})
	startAgent(t, ts.addr, agentSpec{id: "x-1", name: "exec-agent"})
	ts.waitOnline("m-1")
	ts.waitOnline("x-1")

	checkStatic(t, ts.get("/api/metrics/m-1/static"), "static", "m-1")

	d := payloadOf[apiDynamic](t, ts.get("/api/metrics/m-1/dynamic?top=2&kinds=tcp,unix"), "dynamic")
	if d.Usage == nil || d.Usage.CPU.Usage != 33 || d.Usage.Memory.SwapUsed != 1<<20 || d.Usage.Partitions[0].ReadPerSecond != 4096 ||
		d.Usage.Partitions[0].InodeUsed != 1000 || d.Usage.Interface[0].BytesSent != 111 {
		t.Errorf("dynamic usage = %+v", d.Usage)
	}
	if len(d.Process) != 2 || d.Process[0].ID != 20 || d.Process[1].ID != 30 {
		t.Errorf("dynamic top=2 processes = %+v", d.Process)
	}
	if len(d.Connections) != 2 || d.Connections[0].Type != "tcp4" || d.Connections[1].Type != "unix" {
		t.Errorf("dynamic kinds=tcp,unix connections = %+v", d.Connections)
	}
	if len(d.Temperatures) != 1 || d.Temperatures[0].Temp != 47.5 {
		t.Errorf("dynamic temperatures = %+v", d.Temperatures)
	}

	e := ts.get("/api/metrics/m-1/dynamic/usage")
	var u struct {
		CPU, Memory map[string]any
	}
	if json.Unmarshal(e.Payload, &u) != nil || u.Memory["swap_free"] == nil || u.CPU["load15"] != 0.25 {
		t.Errorf("usage: %d %s", e.status, e.Payload)
	}
	ps := payloadOf[[]map[string]any](t, ts.get("/api/metrics/m-1/dynamic/process?top=1"), "process")
	if len(ps) != 1 || ps[0]["id"] != 20.0 || ps[0]["pid"] != 1.0 || ps[0]["memory_usage"] == nil {
		t.Errorf("process top=1 = %v", ps)
	}
	cs := payloadOf[[]map[string]any](t, ts.get("/api/metrics/m-1/dynamic/connections?kinds=udp"), "connections")
	if len(cs) != 1 || cs[0]["type"] != "udp6" || cs[0]["fd"] != 4.0 {
		t.Errorf("connections kinds=udp = %v", cs)
	}
	tp := payloadOf[[]map[string]any](t, ts.get("/api/metrics/m-1/dynamic/temps"), "temps")
	if len(tp) != 1 || tp[0]["name"] != "coretemp_core0" {
		t.Errorf("temps = %v", tp)
	}

	// Jobs: 34 → 35, then a change (36) confirmed by the agent's 37.
	type status struct {
		Jobs []struct {
			Name     string `json:"name"`
			Interval int    `json:"interval"`
		} `json:"jobs"`
		AllowConns []string `json:"allow_conns"`
		Requested  *struct {
			Jobs      []string `json:"jobs"`
			Confirmed bool     `json:"confirmed"`
		} `json:"requested"`
		Reported *struct {
			Jobs []struct {
				Name string `json:"name"`
			} `json:"jobs"`
		} `json:"reported"`
	}
	st := payloadOf[status](t, ts.get("/api/metrics/m-1/status"), "status")
	if len(st.Jobs) != 2 || st.Jobs[1].Name != "usage" || st.Jobs[1].Interval != 5 || len(st.AllowConns) != 2 || st.Requested != nil {
		t.Errorf("status = %+v", st)
	}
	e = ts.do("PUT", "/api/metrics/m-1/status", opToken, strings.NewReader(`{"jobs":["usage","temps","usage"]}`))
	sent := payloadOf[struct {
		Jobs      []string `json:"jobs"`
		Confirmed bool     `json:"confirmed"`
	}](t, e, "put status")
	if fmt.Sprint(sent.Jobs) != "[usage temps]" || sent.Confirmed {
		t.Errorf("put status = %s", e.Payload)
	}
	eventually.Within(t, 30*time.Second, "job change confirmed", func() bool {
		e := ts.get("/api/metrics/m-1/status")
		if e.status == http.StatusTooManyRequests {
			return false // the agent-request limit, on a slow machine: ask again, as a client would
		}
		st = payloadOf[status](t, e, "status")
		return st.Requested != nil && st.Requested.Confirmed
	})
	if len(st.Jobs) != 2 || st.Jobs[0].Name != "usage" || st.Jobs[1].Name != "temps" || st.Reported == nil || len(st.Reported.Jobs) != 2 {
		t.Errorf("status after change = %+v", st)
	}
	st = payloadOf[status](t, ts.get("/api/metrics/m-1/status?cached=1"), "cached status")
	if len(st.Jobs) != 2 || st.Jobs[1].Interval != 5 {
		t.Errorf("cached status = %+v", st)
	}
	var audit []struct {
		Action string `json:"action"`
		Target string `json:"target"`
		Result string `json:"result"`
	}
	if err := json.Unmarshal(ts.get("/api/audit?action=PUT+/api/metrics/{id}/status").Payload, &audit); err != nil || len(audit) != 1 || audit[0].Target != "m-1" || audit[0].Result != "ok" {
		t.Errorf("audit = %+v (%v)", audit, err)
	}

	// Wrong type, unknown agent, bad parameters: exact answers, never 500.
	const wrongType = "invalid agent type want [metrics-agent] got [exec-agent]"
	for _, p := range []string{"static", "dynamic", "dynamic/usage", "dynamic/process", "dynamic/connections", "dynamic/temps", "status"} {
		expect(t, ts.get("/api/metrics/x-1/"+p), p+" wrong type", 424, wrongType)
		expect(t, ts.get("/api/metrics/x-1/"+p+"?cached=1"), p+" cached wrong type", 424, wrongType)
		expect(t, ts.get("/api/metrics/nobody/"+p), p+" unknown agent", 404, "not found: agent")
		expect(t, ts.get("/api/metrics/nobody/"+p+"?cached=1"), p+" nothing cached", 404, "not found: metrics")
		expect(t, ts.get("/api/metrics/m-1/"+p+"?cached=maybe"), p+" cached=maybe", 400, "invalid parameter cached: must be true or false")
		expect(t, ts.get("/api/metrics/m-1/"+p+"?timeout=0"), p+" timeout=0", 400, "")
	}
	expect(t, ts.do("PUT", "/api/metrics/x-1/status", opToken, strings.NewReader(`{"jobs":[]}`)), "put wrong type", 424, wrongType)
	for _, tc := range []struct {
		path, msg string
	}{
		{"dynamic?top=-1", "invalid parameter top: must be an integer between 0 and 1048576"},
		{"dynamic/process?top=x", "invalid parameter top: must be an integer between 0 and 1048576"},
		{"dynamic?kinds=sctp", `invalid parameter kinds: unknown connection kind "sctp" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
		{"dynamic/connections?kinds=tcp&kinds=bogus", `invalid parameter kinds: unknown connection kind "bogus" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
		{"dynamic/connections?cached=1&kinds=x", `invalid parameter kinds: unknown connection kind "x" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`},
	} {
		expect(t, ts.get("/api/metrics/m-1/"+tc.path), tc.path, 400, tc.msg)
	}
	for _, tc := range []struct {
		path, body, msg string
	}{
		{"/api/metrics/m-1/status", `{"jobs":["disk"]}`, `invalid parameter jobs: unknown job "disk" (want static, usage, process, conns, temps)`},
		{"/api/metrics/m-1/status", `{}`, "missing parameter jobs"},
		{"/api/metrics/m-1/status", `{"jobs":"usage"}`, ""},
		{"/api/metrics/m-1/status", `{"jobs":[],"x":1}`, "unknown parameter x"},
		{"/api/metrics/status", `{}`, "missing parameter start"},
		{"/api/metrics/status", `{"start":"yes"}`, ""},
		{"/api/metrics/status", `not json`, ""},
	} {
		expect(t, ts.do("PUT", tc.path, opToken, strings.NewReader(tc.body)), tc.path+" "+tc.body, 400, tc.msg)
	}
	expect(t, ts.do("PUT", "/api/metrics/m-1/status", roToken, strings.NewReader(`{"jobs":[]}`)), "read-only put", 403, "")
}

// TestMetricsPushedAndCached: a v1-shaped agent (one category per push)
// and ours (all in one) are both served with ?cached=1, while online, while
// offline, and after a server restart; /metrics/hosts shows both hosts and
// drops the one that disconnects.
func TestMetricsPushedAndCached(t *testing.T) { testMetricsPushed(t, "") }

func TestMetricsPushedAndCachedMariaDB(t *testing.T) { testMetricsPushed(t, mysqlDSN(t)) }

func testMetricsPushed(t *testing.T, mysql string) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir, mysql: mysql})
	v1 := startMetricsAgent(t, ts, metricsSpec{id: "m-v1"})
	ours := startMetricsAgent(t, ts, metricsSpec{id: "m-ours"})
	ts.waitOnline("m-v1")
	ts.waitOnline("m-ours")

	expect(t, ts.get("/api/metrics/m-v1/static?cached=1"), "before any push", 404, "not found: metrics")

	v1.push(t, &protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: mStatic("m-v1")})
	v1.push(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &protocol.HMDynamicRep{Usage: mUsage(11)}})
	v1.push(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &protocol.HMDynamicRep{Process: mProcs}})
	v1.push(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &protocol.HMDynamicRep{Connections: mConns}})
	v1.push(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &protocol.HMDynamicRep{Temperatures: mTemps}})
	ours.push(t, &protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: mStatic("m-ours")})
	ours.push(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &protocol.HMDynamicRep{
		Usage: mUsage(22), Process: mProcs, Connections: mConns, Temperatures: mTemps}})

	eventually.Within(t, 30*time.Second, "pushed temps cached", func() bool {
		return ts.get("/api/metrics/m-v1/dynamic/temps?cached=1").status == 200 && ts.get("/api/metrics/m-ours/dynamic/temps?cached=1").status == 200
	})
	checkCached := func(ts *testServer, when string) {
		t.Helper()
		for id, cpu := range map[string]float64{"m-v1": 11, "m-ours": 22} {
			checkStatic(t, ts.get("/api/metrics/"+id+"/static?cached=1"), when+" static "+id, id)
			e := ts.get("/api/metrics/" + id + "/dynamic?cached=1&top=1&kinds=udp6")
			d := payloadOf[apiDynamic](t, e, when+" dynamic "+id)
			if d.Usage == nil || d.Usage.CPU.Usage != cpu || len(d.Process) != 1 || d.Process[0].ID != 20 ||
				len(d.Connections) != 1 || d.Connections[0].Type != "udp6" || len(d.Temperatures) != 1 {
				t.Errorf("%s dynamic %s = %s", when, id, e.Payload)
			}
			e = ts.get("/api/metrics/" + id + "/dynamic/usage?cached=1")
			if e.status != 200 || e.header.Get("X-Collected-At") == "" {
				t.Errorf("%s usage %s: %d, X-Collected-At %q", when, id, e.status, e.header.Get("X-Collected-At"))
			}
			if ps := payloadOf[[]map[string]any](t, ts.get("/api/metrics/"+id+"/dynamic/process?cached=1"), when+" process"); len(ps) != 3 {
				t.Errorf("%s process %s: %d", when, id, len(ps))
			}
		}
	}
	checkCached(ts, "online")

	// /metrics/hosts: both hosts; open unless api.metrics_token is set.
	hosts := func(ts *testServer) string {
		e := ts.do("GET", "/metrics/hosts", "", nil)
		if e.status != 200 {
			t.Fatalf("/metrics/hosts: %d %s", e.status, e.body)
		}
		return string(e.body)
	}
	out := hosts(ts)
	for _, w := range []string{
		`node_cpu_usage_percent{id="m-v1"} 11`, `node_cpu_usage_percent{id="m-ours"} 22`,
		`node_filesystem_size_bytes{fstype="ext4",id="m-ours",mountpoint="/"} 1.073741824e+11`,
		`node_network_transmit_bytes_total{device="eth0",id="m-v1"} 111`,
		`node_hwmon_temp_celsius{id="m-v1",sensor="coretemp_core0"} 47.5`,
		`node_processes{id="m-ours"} 3`,
	} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("/metrics/hosts lacks %s", w)
		}
	}

	self := metricsText(t, ts)
	for _, w := range []string{`agentserver_hostmetrics_reports_total{category="usage"} 2`, `agentserver_hostmetrics_reports_total{category="static"} 2`, "agentserver_hostmetrics_hosts 2"} {
		if !strings.Contains(self, w+"\n") {
			t.Errorf("/metrics lacks %s", w)
		}
	}

	// Offline: fresh is 404, cached still answers, the host leaves /metrics/hosts.
	ours.stop(t)
	eventually.Within(t, 30*time.Second, "m-ours offline", func() bool {
		return ts.get("/api/agents/m-ours").Payload != nil && !strings.Contains(string(ts.get("/api/agents/m-ours").Payload), `"is_online":true`)
	})
	expect(t, ts.get("/api/metrics/m-ours/static"), "fresh offline", 404, "not found: agent")
	checkCached(ts, "offline")
	out = hosts(ts)
	if strings.Contains(out, `id="m-ours"`) || !strings.Contains(out, `id="m-v1"`) {
		t.Errorf("/metrics/hosts after m-ours left:\n%s", out)
	}

	// Restart: the last reports were flushed at shutdown.
	v1.stop(t)
	ts.stop()
	ts2 := startServer(t, serverSpec{dataDir: dir, mysql: mysql, mod: func(c *config.Config) { c.API.MetricsToken = "scrape-token-0123456789" }})
	checkCached(ts2, "after restart")
	if e := ts2.do("GET", "/metrics/hosts", "", nil); e.status != 401 {
		t.Errorf("/metrics/hosts without the metrics token: %d", e.status)
	}
	if e := ts2.do("GET", "/metrics/hosts", "scrape-token-0123456789", nil); e.status != 200 || strings.Contains(string(e.body), "node_load1") {
		t.Errorf("/metrics/hosts with the token: %d (no host is connected)", e.status)
	}
}

// TestMetricsFleet: PUT /api/metrics/status counts, among the connected
// metrics-agents only, those that took the change (success) and those that
// failed, timed out or dropped mid-call (failure).
func TestMetricsFleet(t *testing.T) {
	ts := startServer(t, serverSpec{mod: func(c *config.Config) { c.HostMetrics.FleetConcurrency = 2 }})
	ok1 := startMetricsAgent(t, ts, metricsSpec{id: "ok-1"})
	ok2 := startMetricsAgent(t, ts, metricsSpec{id: "ok-2"})
	startMetricsAgent(t, ts, metricsSpec{id: "fail-1", onStatus: func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeError, ErrMsg: "collector broken"})
	}})
	startMetricsAgent(t, ts, metricsSpec{id: "slow-1", onStatus: func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
		return nil
	}})
	px := newProxy(t, ts.addr)
	startMetricsAgent(t, ts, metricsSpec{id: "drop-1", addr: px.Addr(), onStatus: func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		px.Cut() // the connection drops before the answer
		return nil
	}})
	startAgent(t, ts.addr, agentSpec{id: "ex-1"}) // not a metrics-agent: not counted
	for _, id := range []string{"ok-1", "ok-2", "fail-1", "slow-1", "drop-1", "ex-1"} {
		ts.waitOnline(id)
	}
	type result struct{ Total, Success, Failure int }
	put := func(body string) result {
		e := ts.do("PUT", "/api/metrics/status?timeout=1", opToken, strings.NewReader(body))
		var r result
		if e.status != 200 || json.Unmarshal(e.Payload, &r) != nil {
			t.Fatalf("PUT %s: %d %s", body, e.status, e.body)
		}
		return r
	}
	if r := put(`{"start":false}`); r != (result{5, 2, 3}) {
		t.Errorf("stop: %+v, want {5 2 3}", r)
	}
	for _, a := range []*metricsAgent{ok1, ok2} {
		select {
		case jobs := <-a.got:
			if len(jobs) != 0 {
				t.Errorf("stop sent jobs %v", jobs)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("an agent did not get the stop")
		}
	}
	if r := put(`{"start":true,"os":"plan9"}`); r != (result{}) {
		t.Errorf("os=plan9: %+v", r)
	}
	ts.waitOnline("drop-1") // it reconnects through the proxy
	if r := put(`{"start":true,"os":"LINUX"}`); r.Total != 5 || r.Success != 2 || r.Failure != 3 {
		t.Errorf("start on linux: %+v", r)
	}
	if jobs := <-ok1.got; fmt.Sprint(jobs) != "[static usage process conns temps]" {
		t.Errorf("start sent %v", jobs)
	}
}

// TestMetricsHostsRoute: /metrics/hosts answers the Prometheus text format
// even with no host.
func TestMetricsHostsRoute(t *testing.T) {
	ts := startServer(t, serverSpec{})
	resp, err := ts.client.Get(ts.url + "/metrics/hosts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || len(b) != 0 {
		t.Errorf("/metrics/hosts with no host: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

// TestMetricsAgentFailures: an agent's error reply, a wrong reply type, no
// answer in time and a connection dropped mid-request each get their
// status and message, never 500.
func TestMetricsAgentFailures(t *testing.T) {
	ts := startServer(t, serverSpec{})
	static := func(id string, fn func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error) {
		startMetricsAgent(t, ts, metricsSpec{id: id, onStatic: fn})
		ts.waitOnline(id)
	}
	static("err-1", func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeError, ErrMsg: "cannot read /etc/os-release"})
	})
	static("odd-1", func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeHMCollectStatus, Payload: &protocol.HMStatusRep{}})
	})
	static("mute-1", func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		<-ctx.Done()
		return nil
	})
	px := newProxy(t, ts.addr)
	startMetricsAgent(t, ts, metricsSpec{id: "drop-1", addr: px.Addr(), onStatic: func(ctx context.Context, w libagent.Replier, req *protocol.Msg) error {
		px.Cut()
		return nil
	}})
	ts.waitOnline("drop-1")

	expect(t, ts.get("/api/metrics/err-1/static"), "agent error", 503, "cannot read /etc/os-release")
	expect(t, ts.get("/api/metrics/odd-1/static"), "wrong reply", 503, "unexpected reply type 35 (hm_collect_status) to hm_static_req")
	expect(t, ts.get("/api/metrics/mute-1/static?timeout=1"), "no answer", 504, "timeout: the agent did not answer within 1s")
	expect(t, ts.get("/api/metrics/drop-1/static"), "dropped", 410, "agent went away: the connection closed before it answered")
}

// TestMetricsHistoryRoute: GET /api/metrics/{id}/history answers from the
// in-memory history of pushed usage, and from the store once the memory is
// gone (restart); bad input is a 400 naming the parameter.
func TestMetricsHistoryRoute(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *config.Config) {
		c.HostMetrics.RecentStep = utils.Duration(time.Second)
		c.HostMetrics.HistoryInterval = 0 // every pushed sample is stored
	}
	ts := startServer(t, serverSpec{dataDir: dir, mod: mod})
	ma := startMetricsAgent(t, ts, metricsSpec{id: "m-h"})
	startAgent(t, ts.addr, agentSpec{id: "ex-h"})
	ts.waitOnline("m-h")
	ts.waitOnline("ex-h")

	type history struct {
		Source  string     `json:"source"`
		Step    int        `json:"step"`
		Time    []int64    `json:"time"`
		CPU     []float64  `json:"cpu"`
		NetSent []*float64 `json:"net_sent"`
	}
	h := payloadOf[history](t, ts.get("/api/metrics/m-h/history"), "before any push")
	if len(h.Time) != 0 || h.CPU == nil {
		t.Errorf("before any push: %+v", h)
	}
	// Push until two samples at least a step apart are kept (no sleep: the
	// condition is what the test waits for).
	cpu := 0.0
	eventually.Within(t, 20*time.Second, "two samples in the history", func() bool {
		cpu++
		ma.push(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: &protocol.HMDynamicRep{Usage: mUsage(cpu)}})
		h = payloadOf[history](t, ts.get("/api/metrics/m-h/history"), "memory")
		return len(h.Time) >= 2
	})
	if h.Source != "memory" || h.Step != 1 || h.CPU[0] != 1 || h.NetSent[0] != nil || h.NetSent[1] == nil || *h.NetSent[1] != 0 {
		t.Errorf("memory history: %+v", h)
	}
	since := fmt.Sprint(h.Time[len(h.Time)-1])
	if h2 := payloadOf[history](t, ts.get("/api/metrics/m-h/history?since="+since), "since"); len(h2.Time) == 0 || h2.Time[0] != h.Time[len(h.Time)-1] {
		t.Errorf("since=%s: %v", since, h2.Time)
	}
	for _, tc := range []struct {
		path, msg string
		code      int
	}{
		{"/api/metrics/m-h/history?since=yesterday", "invalid parameter since: must be an RFC 3339 time or unix seconds", 400},
		{"/api/metrics/nope/history", "not found: agent", 404},
		{"/api/metrics/ex-h/history", "invalid agent type want [metrics-agent] got [example-agent]", 424},
	} {
		expect(t, ts.get(tc.path), tc.path, tc.code, tc.msg)
	}

	// After a restart the memory is empty: the stored samples answer.
	ma.stop(t)
	ts.stop()
	ts2 := startServer(t, serverSpec{dataDir: dir, mod: mod})
	h2 := payloadOf[history](t, ts2.get("/api/metrics/m-h/history"), "after restart")
	if h2.Source != "store" || len(h2.Time) < len(h.Time) || h2.CPU[0] != 1 {
		t.Errorf("store history: %+v", h2)
	}
}
