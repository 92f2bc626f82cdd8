package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// The API shapes (http-api.md), as much as the tests look at.
type static struct {
	Time int64 `json:"time"`
	Host struct {
		Name   string `json:"name"`
		Uptime int64  `json:"uptime"`
	} `json:"host"`
	OS struct {
		Name         string `json:"name"`
		PlatformName string `json:"platform_name"`
	} `json:"os"`
	Kernel struct {
		Version string `json:"version"`
	} `json:"kernel"`
	CPU struct {
		Physical int               `json:"physical"`
		Logical  int               `json:"logical"`
		Cores    []json.RawMessage `json:"cores"`
	} `json:"cpu"`
	Memory struct {
		Physical uint64 `json:"physical"`
	} `json:"memory"`
	Partitions []struct {
		Mount string `json:"mount"`
	} `json:"partitions"`
	Interface []struct {
		Name string `json:"name"`
	} `json:"interface"`
	User []struct {
		Name string `json:"name"`
	} `json:"user"`
}

type usage struct {
	CPU struct {
		Usage float64 `json:"usage"`
	} `json:"cpu"`
	Memory struct {
		Used      uint64 `json:"used"`
		Available uint64 `json:"available"`
	} `json:"memory"`
	Partitions []struct {
		Name string `json:"name"`
	} `json:"partitions"`
	Interface []struct {
		Name      string `json:"name"`
		BytesRecv uint64 `json:"bytes_recv"`
	} `json:"interface"`
}

type process struct {
	ID     int32    `json:"id"`
	User   string   `json:"user"`
	RSS    uint64   `json:"rss"`
	Cmd    []string `json:"cmd"`
	Listen []uint32 `json:"listen"`
	Conns  int      `json:"conns"`
}

type connection struct {
	Pid    int32  `json:"pid"`
	Type   string `json:"type"`
	Local  string `json:"local"`
	Remote string `json:"remote"`
}

type temperature struct {
	Name string  `json:"name"`
	Temp float64 `json:"temp"`
}

type dynamic struct {
	Usage        *usage        `json:"usage"`
	Process      []process     `json:"process"`
	Connections  []connection  `json:"connections"`
	Temperatures []temperature `json:"temperatures"`
}

type status struct {
	Jobs []struct {
		Name     string `json:"name"`
		Interval int64  `json:"interval"`
	} `json:"jobs"`
	AllowConns []string `json:"allow_conns"`
	Reported   *struct {
		Jobs []struct {
			Name     string `json:"name"`
			Interval uint64 `json:"interval"`
			Count    uint64 `json:"count"`
		} `json:"jobs"`
		Warnings uint64 `json:"warns"`
	} `json:"reported"`
	Requested *struct {
		Jobs []string `json:"jobs"`
	} `json:"requested"`
}

func (s status) names() []string {
	var n []string
	for _, j := range s.Jobs {
		n = append(n, j.Name)
	}
	return n
}

func hasPid(ps []process, pid int) bool {
	return slices.ContainsFunc(ps, func(p process) bool { return int(p.ID) == pid })
}

// Every /api/metrics route and /metrics/hosts, through the real server and
// the real agent.
func TestMetricsRoutes(t *testing.T) {
	srv := startServer(t, nil)
	ag := startAgent(t, srv, "", "task.usage.interval = 1s\n")
	id := srv.agentID(t)
	base := "/api/metrics/" + id

	t.Run("static", func(t *testing.T) {
		var st static
		srv.ok(t, "GET", base+"/static", nil, &st)
		host, _ := os.Hostname()
		if st.Host.Name != host || st.OS.Name != "linux" || st.Kernel.Version == "" || st.CPU.Logical == 0 ||
			len(st.CPU.Cores) != st.CPU.Logical || st.Memory.Physical == 0 || len(st.User) == 0 || st.Host.Uptime == 0 {
			t.Errorf("static = %+v", st)
		}
		if !slices.ContainsFunc(st.Partitions, func(p struct {
			Mount string `json:"mount"`
		}) bool {
			return p.Mount == "/"
		}) {
			t.Errorf("static partitions %v lack /", st.Partitions)
		}
	})

	t.Run("dynamic", func(t *testing.T) {
		var d dynamic
		srv.ok(t, "GET", base+"/dynamic", nil, &d)
		if d.Usage == nil || d.Usage.Memory.Used == 0 || len(d.Usage.Interface) == 0 {
			t.Errorf("usage = %+v", d.Usage)
		}
		if !hasPid(d.Process, ag.PID()) {
			t.Errorf("the process list (%d) lacks the agent's pid %d", len(d.Process), ag.PID())
		}
		// The agent's own link to the server is among the connections.
		if !slices.ContainsFunc(d.Connections, func(c connection) bool {
			return int(c.Pid) == ag.PID() && strings.HasSuffix(c.Remote, srv.addr[strings.LastIndex(srv.addr, ":"):])
		}) {
			t.Errorf("no connection of pid %d to the server among %d", ag.PID(), len(d.Connections))
		}
		if d.Temperatures == nil {
			t.Error("temperatures is null, want a list (maybe empty)")
		}
		var d2 dynamic
		srv.ok(t, "GET", base+"/dynamic?top=3&kinds=tcp", nil, &d2)
		if len(d2.Process) != 3 {
			t.Errorf("top=3: %d processes", len(d2.Process))
		}
		for _, c := range d2.Connections {
			if c.Type != "tcp4" && c.Type != "tcp6" {
				t.Errorf("kinds=tcp: a %s connection", c.Type)
			}
		}
	})

	t.Run("one category", func(t *testing.T) {
		var u usage
		srv.ok(t, "GET", base+"/dynamic/usage", nil, &u)
		if u.Memory.Available == 0 || len(u.Partitions) == 0 {
			t.Errorf("usage = %+v", u)
		}
		var ps []process
		srv.ok(t, "GET", base+"/dynamic/process?top=5", nil, &ps)
		if len(ps) != 5 {
			t.Errorf("process?top=5: %d processes", len(ps))
		}
		srv.ok(t, "GET", base+"/dynamic/process", nil, &ps)
		if !hasPid(ps, ag.PID()) || !hasPid(ps, os.Getpid()) {
			t.Errorf("process list (%d) lacks the agent %d or the test %d", len(ps), ag.PID(), os.Getpid())
		}
		var cs []connection
		srv.ok(t, "GET", base+"/dynamic/connections?kinds=unix", nil, &cs)
		for _, c := range cs {
			if c.Type != "unix" {
				t.Errorf("kinds=unix: a %s connection", c.Type)
			}
		}
		srv.ok(t, "GET", base+"/dynamic/connections?kinds=tcp4,tcp6", nil, &cs)
		if !slices.ContainsFunc(cs, func(c connection) bool { return c.Local == srv.addr && c.Pid == int32(srv.PID()) }) {
			t.Errorf("no listening socket %s of the server (pid %d) among %d tcp connections", srv.addr, srv.PID(), len(cs))
		}
		var ts []temperature
		e := srv.ok(t, "GET", base+"/dynamic/temps", nil, &ts)
		if ts == nil {
			t.Errorf("temps payload %s, want a list", e.Payload)
		}
	})

	t.Run("cached", func(t *testing.T) {
		// The pushes at start (every category) reach the store.
		for _, route := range []string{"/static", "/dynamic", "/dynamic/usage", "/dynamic/process", "/dynamic/connections"} {
			eventually.Within(t, 15*time.Second, route+"?cached=1", func() bool {
				e := srv.do(t, "GET", base+route+"?cached=1", nil)
				return e.status == http.StatusOK
			})
		}
		// Temperatures: a host without sensors pushes none (the v1 wire
		// format omits an empty list), so nothing is cached.
		var live []temperature
		srv.ok(t, "GET", base+"/dynamic/temps", nil, &live)
		eventually.Within(t, 15*time.Second, "/dynamic/temps?cached=1", func() bool {
			e := srv.do(t, "GET", base+"/dynamic/temps?cached=1", nil)
			if len(live) == 0 {
				return e.status == http.StatusNotFound && e.Msg == "not found: metrics"
			}
			return e.status == http.StatusOK
		})
		var ps []process
		e := srv.ok(t, "GET", base+"/dynamic/process?cached=1&top=2", nil, &ps)
		if len(ps) != 2 || e.header.Get("X-Collected-At") == "" {
			t.Errorf("cached process?top=2: %d processes, X-Collected-At %q", len(ps), e.header.Get("X-Collected-At"))
		}
	})

	t.Run("status", func(t *testing.T) {
		var st status
		srv.ok(t, "GET", base+"/status", nil, &st)
		want := map[string]int64{"static": 86400, "usage": 1, "process": 60, "conns": 60, "temps": 60}
		if len(st.Jobs) != 5 || !slices.Equal(st.AllowConns, []string{"tcp", "udp", "unix"}) {
			t.Fatalf("status = %+v", st)
		}
		for _, j := range st.Jobs {
			if want[j.Name] != j.Interval {
				t.Errorf("job %s interval %d, want %d", j.Name, j.Interval, want[j.Name])
			}
		}
		eventually.Within(t, 15*time.Second, "a type-37 report", func() bool {
			srv.ok(t, "GET", base+"/status", nil, &st)
			return st.Reported != nil && len(st.Reported.Jobs) == 5
		})
	})

	t.Run("switch jobs", func(t *testing.T) {
		conf, _ := os.ReadFile(ag.conf)
		srv.ok(t, "PUT", base+"/status", map[string]any{"jobs": []string{"usage", "temps"}}, nil)
		var st status
		eventually.Within(t, 15*time.Second, "jobs usage, temps", func() bool {
			srv.ok(t, "GET", base+"/status", nil, &st)
			return slices.Equal(st.names(), []string{"usage", "temps"}) && st.Reported != nil && len(st.Reported.Jobs) == 2
		})
		var state struct {
			Jobs []string `json:"jobs"`
		}
		b, err := os.ReadFile(filepath.Join(ag.dir, "conf", "agent.state"))
		if err != nil || json.Unmarshal(b, &state) != nil || !slices.Equal(state.Jobs, []string{"usage", "temps"}) {
			t.Errorf("state file: %s (%v)", b, err)
		}
		if now, _ := os.ReadFile(ag.conf); string(now) != string(conf) {
			t.Errorf("the agent's config was rewritten:\n%s", now)
		}
		e := srv.do(t, "PUT", base+"/status", map[string]any{"jobs": []string{"usage", "disk"}})
		if e.status != http.StatusBadRequest || !strings.Contains(e.Msg, `unknown job "disk"`) {
			t.Errorf("bad job: %d %s", e.status, e.body)
		}
	})

	t.Run("fleet", func(t *testing.T) {
		var res struct{ Total, Success, Failure int }
		srv.ok(t, "PUT", "/api/metrics/status", map[string]any{"start": false}, &res)
		if res.Total != 1 || res.Success != 1 || res.Failure != 0 {
			t.Errorf("stop: %+v", res)
		}
		var st status
		eventually.Within(t, 15*time.Second, "every job stopped", func() bool {
			srv.ok(t, "GET", base+"/status", nil, &st)
			return len(st.Jobs) == 0
		})
		srv.ok(t, "PUT", "/api/metrics/status", map[string]any{"start": true, "os": "windows"}, &res)
		if res.Total != 0 {
			t.Errorf("start on windows hosts: %+v", res)
		}
		srv.ok(t, "PUT", "/api/metrics/status", map[string]any{"start": true}, &res)
		if res.Total != 1 || res.Success != 1 {
			t.Errorf("start: %+v", res)
		}
		eventually.Within(t, 15*time.Second, "every job running", func() bool {
			srv.ok(t, "GET", base+"/status", nil, &st)
			return len(st.Jobs) == 5
		})
	})

	t.Run("hosts", func(t *testing.T) {
		label := fmt.Sprintf(`id="%s"`, id)
		var body string
		eventually.Within(t, 15*time.Second, "/metrics/hosts series of the agent", func() bool {
			resp, err := srv.client.Get("http://" + srv.addr + "/metrics/hosts")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			body = string(b)
			if err != nil || resp.StatusCode != http.StatusOK {
				return false
			}
			return strings.Contains(body, "node_load1{"+label)
		})
		for _, series := range []string{"node_cpus{", "node_memory_", "node_filesystem_size_bytes{", "node_network_receive_bytes_total{", "node_processes{", "node_uname_info{"} {
			if !strings.Contains(body, series) || !strings.Contains(body, label) {
				t.Errorf("/metrics/hosts lacks %s…%s", series, label)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			path   string
			status int
			msg    string
		}{
			{"/api/metrics/no-such-agent/static", 404, "not found: agent"},
			{base + "/dynamic?kinds=raw", 400, `unknown connection kind "raw"`},
			{base + "/dynamic/process?top=x", 400, "top"},
		} {
			e := srv.do(t, "GET", c.path, nil)
			if e.status != c.status || !strings.Contains(e.Msg, c.msg) {
				t.Errorf("GET %s: %d %q, want %d %q", c.path, e.status, e.Msg, c.status, c.msg)
			}
		}
	})

	t.Run("restart keeps the server's jobs", func(t *testing.T) {
		srv.ok(t, "PUT", base+"/status", map[string]any{"jobs": []string{"usage"}}, nil)
		eventually.Within(t, 15*time.Second, "jobs [usage], reported", func() bool {
			var st status
			srv.ok(t, "GET", base+"/status", nil, &st)
			return slices.Equal(st.names(), []string{"usage"}) && st.Reported != nil && len(st.Reported.Jobs) == 1
		})
		if err := ag.Stop(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
		eventually.Within(t, 15*time.Second, "the agent offline", func() bool {
			return srv.do(t, "GET", base+"/status", nil).status == http.StatusNotFound
		})
		// Offline: the cached routes still answer.
		var st status
		srv.ok(t, "GET", base+"/status?cached=1", nil, &st)
		if st.Reported == nil || len(st.Reported.Jobs) != 1 {
			t.Errorf("cached status = %+v", st)
		}
		var u usage
		srv.ok(t, "GET", base+"/dynamic/usage?cached=1", nil, &u)

		ag = startAgent(t, srv, ag.dir, "")
		if got := srv.agentID(t); got != id {
			t.Fatalf("the restarted agent has id %q, want %q (state file)", got, id)
		}
		srv.ok(t, "GET", base+"/status", nil, &st)
		if !slices.Equal(st.names(), []string{"usage"}) {
			t.Errorf("after a restart the jobs are %v, want [usage] from the state file", st.names())
		}
	})
	if t.Failed() {
		t.Logf("agent output:\n%s", lastLines(ag.Tail(1<<20), 40))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
