package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/config"
	logcollect "github.com/agentfleet/agent-server/internal/logging"
	"github.com/agentfleet/jkframe/linetest"

	"github.com/agentfleet/jkframe/eventually"
)

// TestLoggingExactlyOnce runs the real agent-server and the real log-agent
// binary: numbered lines are written to a file that is rotated both ways
// logrotate does (rename + create, copytruncate), the log-agent is killed
// with SIGKILL and restarted several times and the server restarted, and
// the lines the query route returns are checked: every line exactly once,
// in order within each source, count and SHA-256 over all lines.
//
// AGENTSERVER_LOGGING_MB sets the volume (default 8 MB, 3 kills, 1 server
// restart); with 1024 the run is the (5 kills, 2 server restarts),
// recorded in docs/logging.md. AGENTSERVER_LOGAGENT_BIN takes a log-agent
// built before (bin/log-agent of `make build`) instead of building one.
func TestLoggingExactlyOnce(t *testing.T) {
	totalMB, kills, restarts := 8, 3, 1
	if v := os.Getenv("AGENTSERVER_LOGGING_MB"); v != "" {
		totalMB, _ = strconv.Atoi(v)
		kills, restarts = 5, 2
	}
	const (
		lineLen    = 100
		rotateSize = 2 << 20
		keep       = 200
	)
	total := totalMB << 20 / lineLen
	bin := os.Getenv("AGENTSERVER_LOGAGENT_BIN")
	if bin == "" {
		bin = buildAgent(t, t.TempDir(), "log-agent")
	}
	dir := t.TempDir()
	srvDir := filepath.Join(dir, "server")
	addr := freeAddr(t)
	spec := serverSpec{dataDir: srvDir, addr: addr, deadAfter: time.Minute, mod: func(c *config.Config) { c.Logging.SegmentSize = 4 << 20 }}
	ts := startServer(t, spec)

	logs := filepath.Join(dir, "logs")
	lgMust(t, os.MkdirAll(logs, 0o755))
	path := filepath.Join(logs, "app.log")
	agentDir := filepath.Join(dir, "agent")
	lgMust(t, os.MkdirAll(agentDir, 0o755))
	conf := fmt.Sprintf(`basic.id = lg1
basic.server = %s
basic.token = %s
basic.log.target = stdout
basic.log.level = info
basic.monitor.enabled = false
collect.projects =
collect.data_dir = %s
collect.sink = server
collect.spool_size = 64M
collect.poll = 5ms
collect.scan = 50ms
collect.rotate_wait = 200ms
`, addr, agentToken, filepath.Join(agentDir, "data"))
	confPath := filepath.Join(agentDir, "agent.conf")
	lgMust(t, os.WriteFile(confPath, []byte(conf), 0o644))
	var agentLog bytes.Buffer
	var cmd *exec.Cmd
	startLogAgent := func() {
		cmd = exec.Command(bin, "--conf", confPath, "run")
		cmd.Stdout, cmd.Stderr = &agentLog, &agentLog
		lgMust(t, cmd.Start())
	}
	kill := func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	startLogAgent()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if t.Failed() {
			s := agentLog.String()
			t.Logf("log-agent output (tail):\n%s", s[max(0, len(s)-6000):])
		}
	}()
	ts.waitOnline("lg1")

	// The project, through the seed's route; the agent gets it pushed.
	form := url.Values{"pid": {"e2e"}, "type": {"logtail"}, "ids": {"lg1"}, "dir": {path + "*"},
		"read_from": {"beginning"}, "interval": {"1"}, "buffer": {"262144"}, "batch": {"5000"}}
	if e := ts.do("POST", "/api/logging/config?"+form.Encode(), opToken, nil); e.status != 200 {
		t.Fatalf("config: %d %s", e.status, e.body)
	}
	ts.waitTaskRunning(t, "e2e", "lg1")

	count := func() int {
		st, err := logcollect.OpenStore(logcollect.StoreOptions{Dir: filepath.Join(srvDir, "logcollect")})
		lgMust(t, err)
		n, err := st.Count("e2e")
		lgMust(t, err)
		return int(n)
	}
	w := &linetest.Writer{Path: path, Keep: keep}
	w.Open(t)
	killEvery := total / (kills + 1)
	nextKill := killEvery
	restartEvery := total / (restarts + 1)
	nextRestart := restartEvery + killEvery/2
	rotations, killed, restarted, last := 0, 0, 0, 0
	for w.N < total {
		w.Write(t, min(2000, total-w.N))
		if w.Size >= rotateSize {
			lgWait(t, "the agent within the kept files", func() bool {
				return count() > w.N-(keep-10)*(rotateSize/lineLen)
			})
			if rotations%2 == 0 {
				w.RotateRename(t)
			} else {
				w.RotateCopyTruncate(t)
			}
			rotations++
		}
		if w.N >= nextKill && killed < kills {
			// Kill it while it ships: after progress since the last event.
			lgWait(t, "progress before a kill", func() bool { return count() > last })
			last = count()
			kill()
			startLogAgent()
			killed++
			nextKill += killEvery
		}
		if w.N >= nextRestart && restarted < restarts {
			lgWait(t, "progress before a server restart", func() bool { return count() > last })
			last = count()
			ts.stop()
			ts = startServer(t, spec)
			restarted++
			nextRestart += restartEvery
		}
	}
	w.Close()
	lgWait(t, fmt.Sprintf("all %d lines stored", total), func() bool { return count() >= total })

	// Read everything back through the query route.
	bySource := map[string][]string{}
	cursor := ""
	for {
		q := url.Values{"pid": {"e2e"}, "limit": {"10000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		e := ts.do("GET", "/api/logging/query?"+q.Encode(), opToken, nil)
		if e.status != 200 {
			t.Fatalf("query: %d %s", e.status, e.body)
		}
		var page struct {
			Lines []struct {
				Host     string `json:"host"`
				SourceID string `json:"source_id"`
				Line     string `json:"line"`
			} `json:"lines"`
			Next string `json:"next"`
		}
		lgMust(t, json.Unmarshal(e.Payload, &page))
		for _, l := range page.Lines {
			if l.Host != "lg1" {
				t.Fatalf("line of host %q", l.Host)
			}
			bySource[l.SourceID] = append(bySource[l.SourceID], l.Line)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	sum := linetest.Check(t, total, bySource)
	t.Logf("%d lines (%d MB), %d sources, %d rotations, %d kill -9 of the log-agent, %d server restarts, sha256 %x…",
		total, totalMB, len(bySource), rotations, killed, restarted, sum[:8])
}

// waitTaskRunning waits until task_info shows the node running the project,
// as the node reported it (not pending).
func (ts *testServer) waitTaskRunning(t *testing.T, pid, node string) {
	t.Helper()
	lgWait(t, node+" running "+pid, func() bool {
		e := ts.do("GET", "/api/logging/task_info?pid="+pid, opToken, nil)
		var ti struct {
			Nodes []struct {
				ID, Status string
				Pending    bool
			} `json:"nodes"`
		}
		if e.status != 200 || json.Unmarshal(e.Payload, &ti) != nil {
			return false
		}
		for _, n := range ti.Nodes {
			if n.ID == node && n.Status == "running" && !n.Pending {
				return true
			}
		}
		return false
	})
}

func lgWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	d := 5 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("AGENTSERVER_LOGGING_WAIT")); err == nil {
		d = v
	}
	eventually.Poll{Timeout: d, Interval: 50 * time.Millisecond}.True(t, what, cond)
}

func lgMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
