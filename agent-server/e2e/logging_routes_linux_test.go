package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logAgentBin returns the log-agent binary: AGENTSERVER_LOGAGENT_BIN or a
// fresh build.
func logAgentBin(t *testing.T) string {
	if bin := os.Getenv("AGENTSERVER_LOGAGENT_BIN"); bin != "" {
		return bin
	}
	return buildAgent(t, t.TempDir(), "log-agent")
}

// runLogAgent starts the log-agent binary as id against addr; stop ends it
// (SIGTERM) and is also called at the end of the test.
func runLogAgent(t *testing.T, bin, dir, id, addr string) (stop func()) {
	t.Helper()
	lgMust(t, os.MkdirAll(dir, 0o755))
	conf := fmt.Sprintf(`basic.id = %s
basic.server = %s
basic.token = %s
basic.log.target = file
basic.log.dir = %s
basic.monitor.enabled = false
collect.projects =
collect.data_dir = %s
collect.poll = 10ms
collect.scan = 50ms
collect.rotate_wait = 200ms
`, id, addr, agentToken, filepath.Join(dir, "logs"), filepath.Join(dir, "data"))
	path := filepath.Join(dir, "agent.conf")
	lgMust(t, os.WriteFile(path, []byte(conf), 0o644))
	var out bytes.Buffer
	cmd := exec.Command(bin, "--conf", path, "run")
	cmd.Stdout, cmd.Stderr = &out, &out
	lgMust(t, cmd.Start())
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", id, out.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestLoggingRoutes drives the /api/logging routes against the real
// server and real log-agents: bad input on every route, config pushed to a
// node online and to one that connects later, task_info, query filters,
// the live tail, stop/start/remove.
func TestLoggingRoutes(t *testing.T) {
	bin := logAgentBin(t)
	dir := t.TempDir()
	ts := startServer(t, serverSpec{deadAfter: time.Minute})
	stop1 := runLogAgent(t, bin, filepath.Join(dir, "a1"), "lr1", ts.addr)
	stop2 := runLogAgent(t, bin, filepath.Join(dir, "a2"), "lr2", ts.addr)
	ts.waitOnline("lr1")
	ts.waitOnline("lr2")
	stop2() // lr2 is known to the server, and offline

	logs := filepath.Join(dir, "logs")
	lgMust(t, os.MkdirAll(logs, 0o755))
	app := filepath.Join(logs, "app.log")
	lgMust(t, os.WriteFile(app, []byte("first line\nERROR second line\n"), 0o644))

	post := func(path string, form url.Values) envelope {
		return ts.do("POST", path+"?"+form.Encode(), opToken, nil)
	}
	// Bad input: a clear 4xx naming what is wrong, never a 5xx.
	checkAPI(t, ts, strings.Contains, []apiCase{
		{"POST", "/api/logging/config", "", 400, "pid"},
		{"POST", "/api/logging/config?pid=a%2Fb&type=logtail", "", 400, "invalid parameter pid"},
		{"POST", "/api/logging/config?pid=p&type=syslog", "", 400, "invalid parameter type"},
		{"POST", "/api/logging/config?pid=p&type=logtail&ids=lr1", "", 400, "dir"},
		{"POST", "/api/logging/config?pid=p&type=logtail&ids=lr1&dir=/x&batch=many", "", 400, "invalid parameter batch"},
		{"POST", "/api/logging/config?pid=p&type=logtail&ids=lr1&dir=/x&exclude=(", "", 400, "invalid parameter exclude"},
		{"POST", "/api/logging/config?pid=p&type=logtail&ids=nobody&dir=/x", "", 409, "no available collection node"},
		{"POST", "/api/logging/config", `{"pid":`, 400, "invalid JSON body"},
		{"POST", "/api/logging/config", `{"pid":{"a":1}}`, 400, "invalid parameter pid"},
		{"POST", "/api/logging/remove", "", 400, "pid"},
		{"POST", "/api/logging/remove?pid=nope", "", 404, "not found: project"},
		{"POST", "/api/logging/start?pid=nope", "", 404, "not found: project"},
		{"POST", "/api/logging/stop?pid=..", "", 400, "invalid parameter pid"},
		{"GET", "/api/logging/task_info", "", 400, "pid"},
		{"GET", "/api/logging/task_info?pid=nope", "", 404, "not found: project"},
		{"GET", "/api/logging/query", "", 400, "missing parameter pid"},
		{"GET", "/api/logging/query?pid=nope", "", 404, "not found: project"},
		{"GET", "/api/logging/query?pid=p&limit=0", "", 400, "invalid parameter limit"},
		{"GET", "/api/logging/query?pid=p&since=yesterday", "", 400, "invalid parameter since"},
		{"GET", "/api/logging/query?pid=p&since=100&until=50", "", 400, "invalid parameter until"},
		{"GET", "/api/logging/query?pid=p&grep=(", "", 400, "invalid parameter grep"},
		{"GET", "/api/logging/query?pid=p&cursor=%21", "", 400, "invalid parameter cursor"},
		{"GET", "/api/logging/tail?pid=nope", "", 404, "not found: project"},
		{"GET", "/api/logging/tail?pid=p&grep=%5B", "", 400, "invalid parameter grep"},
	})

	// Config as JSON (csv as an array), pushed to lr1 now and to lr2 when
	// it connects.
	e := ts.do("POST", "/api/logging/config", opToken, strings.NewReader(fmt.Sprintf(
		`{"pid":"web","type":"logtail","ids":["lr1","lr2"],"dir":%q,"read_from":"beginning","interval":1,"batch":100}`, filepath.Join(logs, "*.log"))))
	if e.status != 200 {
		t.Fatalf("config: %d %s", e.status, e.body)
	}
	ts.waitTaskRunning(t, "web", "lr1")
	ti := taskInfo(t, ts, "web")
	if ti.Type != "logtail" || ti.Batch != 100 || ti.Buffer != 4096 || ti.Interval != 1 || ti.Created == 0 || len(ti.Nodes) != 2 {
		t.Fatalf("task_info %+v", ti)
	}
	for _, n := range ti.Nodes {
		switch n.ID {
		case "lr1":
			if n.Status != "running" || len(n.Info) != 1 || n.Info[0]["dir"] != filepath.Join(logs, "*.log") {
				t.Errorf("lr1 %+v", n)
			}
		case "lr2":
			if n.Status != "stoped" || n.Online {
				t.Errorf("lr2 (offline) %+v", n)
			}
		}
	}
	runLogAgent(t, bin, filepath.Join(dir, "a2"), "lr2", ts.addr)
	ts.waitTaskRunning(t, "web", "lr2")

	// The list: every project as task_info shows it.
	e = ts.do("GET", "/api/logging/projects", opToken, nil)
	var list struct {
		Projects []struct {
			PID     string `json:"pid"`
			Running bool   `json:"running"`
			taskInfoT
		} `json:"projects"`
	}
	lgMust(t, json.Unmarshal(e.Payload, &list))
	if e.status != 200 || len(list.Projects) != 1 || list.Projects[0].PID != "web" || !list.Projects[0].Running || len(list.Projects[0].Nodes) != 2 {
		t.Errorf("projects: %d %s", e.status, e.body)
	}

	// The lines arrive; the query filters.
	query := func(q string) []LogLineT {
		e := ts.do("GET", "/api/logging/query?pid=web&"+q, opToken, nil)
		if e.status != 200 {
			t.Fatalf("query %s: %d %s", q, e.status, e.body)
		}
		var p struct {
			Lines []LogLineT `json:"lines"`
		}
		lgMust(t, json.Unmarshal(e.Payload, &p))
		return p.Lines
	}
	lgWait(t, "the 2 lines from each host", func() bool { return len(query("")) == 4 })
	if l := query("grep=^ERROR&host=lr1"); len(l) != 1 || l[0].Line != "ERROR second line" || l[0].Host != "lr1" || l[0].Source != app || l[0].Stream != "file" {
		t.Errorf("grep: %+v", l)
	}
	if l := query("source=" + url.QueryEscape(filepath.Join(logs, "*.log"))); len(l) != 4 {
		t.Errorf("source pattern: %d lines", len(l))
	}
	if l := query("until=2000-01-01T00:00:00Z"); len(l) != 0 {
		t.Errorf("until 2000: %d lines", len(l))
	}

	// The live tail sees a new line that matches, not one that does not.
	req, _ := http.NewRequest("GET", ts.url+"/api/logging/tail?pid=web&host=lr1&grep=tail", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := (&http.Client{}).Do(req)
	lgMust(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	f, err := os.OpenFile(app, os.O_APPEND|os.O_WRONLY, 0)
	lgMust(t, err)
	_, err = f.WriteString("not this one\nfor the tail\n")
	lgMust(t, err)
	f.Close()
	select {
	case d := <-events:
		var l LogLineT
		lgMust(t, json.Unmarshal([]byte(d), &l))
		if l.Line != "for the tail" || l.Host != "lr1" {
			t.Errorf("tail event %s", d)
		}
	case <-time.After(time.Minute):
		t.Fatal("no tail event within a minute")
	}
	resp.Body.Close()

	// stop / start / remove, with the seed's conflicts.
	if e := post("/api/logging/stop", url.Values{"pid": {"web"}}); e.status != 200 {
		t.Fatalf("stop: %d %s", e.status, e.body)
	}
	if e := post("/api/logging/stop", url.Values{"pid": {"web"}}); e.status != 409 || !strings.Contains(e.Msg, "not started") {
		t.Errorf("stop twice: %d %q", e.status, e.Msg)
	}
	// task_info shows a stop at once (pending until the nodes report: a
	// fast node may have reported already), then the nodes confirm it.
	for _, n := range taskInfo(t, ts, "web").Nodes {
		if n.Status != "stoped" {
			t.Errorf("right after stop: %+v", n)
		}
	}
	lgWait(t, "both nodes stopped", func() bool {
		for _, n := range taskInfo(t, ts, "web").Nodes {
			if n.Status != "stoped" || n.Pending && n.Online {
				return false
			}
		}
		return true
	})
	if e := post("/api/logging/start", url.Values{"pid": {"web"}}); e.status != 200 {
		t.Fatalf("start: %d %s", e.status, e.body)
	}
	// And a start: the online nodes show running before they report (what
	// they report then decides; TestLoggingTaskInfoPending has each step).
	for _, n := range taskInfo(t, ts, "web").Nodes {
		if n.Online && n.Pending && n.Status != "running" {
			t.Errorf("right after start: %+v", n)
		}
	}
	if e := post("/api/logging/start", url.Values{"pid": {"web"}}); e.status != 409 || !strings.Contains(e.Msg, "already started") {
		t.Errorf("start twice: %d %q", e.status, e.Msg)
	}
	ts.waitTaskRunning(t, "web", "lr1")
	if e := post("/api/logging/remove", url.Values{"pid": {"web"}}); e.status != 200 {
		t.Fatalf("remove: %d %s", e.status, e.body)
	}
	if e := ts.do("GET", "/api/logging/task_info?pid=web", opToken, nil); e.status != 404 {
		t.Errorf("task_info after remove: %d", e.status)
	}
	defer func() {
		if t.Failed() {
			out, _ := exec.Command("sh", "-c", "cat "+dir+"/a1/data/server-projects.json; tail -20 "+dir+"/a1/logs/*.log").CombinedOutput()
			t.Logf("files:\n%s", out)
		}
	}()
	lgWait(t, "the nodes to drop the project's state", func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "a1", "data", "web"))
		_, err2 := os.Stat(filepath.Join(dir, "a2", "data", "web"))
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	})
	_ = stop1
}

// LogLineT is a line of the query and tail routes as a client reads it.
type LogLineT struct {
	Host   string `json:"host"`
	Source string `json:"source"`
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

type taskInfoT struct {
	Type     string `json:"type"`
	Batch    int    `json:"batch"`
	Buffer   int    `json:"buffer"`
	Interval int    `json:"interval"`
	Created  int64  `json:"created"`
	Nodes    []struct {
		ID      string           `json:"id"`
		Status  string           `json:"status"`
		Pending bool             `json:"pending"`
		Online  bool             `json:"online"`
		Info    []map[string]any `json:"info"`
	} `json:"nodes"`
}

func taskInfo(t *testing.T, ts *testServer, pid string) taskInfoT {
	t.Helper()
	e := ts.do("GET", "/api/logging/task_info?pid="+pid, opToken, nil)
	if e.status != 200 {
		t.Fatalf("task_info: %d %s", e.status, e.body)
	}
	var ti taskInfoT
	lgMust(t, json.Unmarshal(e.Payload, &ti))
	return ti
}
