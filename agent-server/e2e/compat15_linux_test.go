package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// compat holds the OpenAPI document for check.
type compat struct {
	doc openAPI
}

// check holds one response of route (its pattern, "GET /api/agents/{id}")
// to what a 1.5 client decodes: the envelope, then the payload into out (a
// pointer to the 1.5 type) with encoding/json, then every 1.5 field's JSON
// kind (checkKinds), and the route's OpenAPI payload schema against the
// same type. A nil out means 1.5 sent no payload: only the envelope is
// checked.
func (c *compat) check(t *testing.T, route string, e envelope, out any) {
	t.Helper()
	if e.status != http.StatusOK {
		t.Errorf("%s: %d %s", route, e.status, e.body)
		return
	}
	var env struct {
		v15Envelope
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(e.body, &env); err != nil || env.Code != http.StatusOK {
		t.Errorf("%s: envelope %s: %v", route, e.body, err)
	}
	v, err := decodeNumbers(e.body)
	if err != nil {
		t.Fatalf("%s: %v", route, err)
	}
	for _, d := range checkKinds("envelope", v, reflect.TypeFor[v15Envelope]()) {
		t.Errorf("%s: %s", route, d)
	}
	if out == nil {
		return
	}
	if err := json.Unmarshal(e.Payload, out); err != nil {
		t.Errorf("%s: a 1.5 client cannot decode the payload: %v\n%s", route, err, e.Payload)
	}
	pv, err := decodeNumbers(e.Payload)
	if err != nil {
		t.Fatalf("%s: payload: %v", route, err)
	}
	typ := reflect.TypeOf(out).Elem()
	for _, d := range checkKinds("payload", pv, typ) {
		t.Errorf("%s: %s", route, d)
	}
	s, err := c.doc.payloadSchema(route)
	if err != nil {
		t.Errorf("openapi: %v", err)
		return
	}
	for _, d := range c.doc.checkSchema("payload", s, typ) {
		t.Errorf("openapi %s: %s", route, d)
	}
}

// TestCompat15 calls every route agent-server 1.5 has, through the real
// server and the real exec-agent, metrics-agent and example-agent (built
// and run as processes), and decodes each response as a 1.5 client does:
// into the 1.5 types with their JSON types (compat15_test.go). Every field
// 1.5 sends must be there with the same JSON kind; the OpenAPI document
// must describe it so. Ours may add fields.
func TestCompat15(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three agents")
	}
	ts := startServerForReal(t)
	var doc openAPI
	if err := json.Unmarshal(ts.srv.API().Doc().JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	c := &compat{doc: doc}

	bins := t.TempDir()
	execBin := buildAgent(t, bins, "exec-agent")
	metricsBin := buildAgent(t, bins, "metrics-agent")
	exampleBin := buildAgent(t, bins, "example-agent")
	ex := startBinAgent(t, ts, execBin, "c15-exec", "")
	mx := startBinAgent(t, ts, metricsBin, "c15-metrics", "")
	startBinAgent(t, ts, exampleBin, "c15-example", "")
	// Enough agents for two pages, connected in an order that is not
	// theirs by id.
	var ids []string
	for i := range 22 {
		id := fmt.Sprintf("c15-lib-%02d", 21-i)
		startAgent(t, ts.addr, agentSpec{id: id})
		ids = append(ids, id)
	}
	for _, id := range ids {
		ts.waitOnline(id)
	}

	t.Run("info", func(t *testing.T) {
		var info v15ServerInfo
		c.check(t, "GET /api/info/server", ts.get("/api/info/server"), &info)
		if info.Agents != 25 {
			t.Errorf("agents = %d, want 25", info.Agents)
		}
	})

	t.Run("agents", func(t *testing.T) {
		var page1, page2, small []v15Agent
		c.check(t, "GET /api/agents", ts.get("/api/agents"), &page1)
		c.check(t, "GET /api/agents", ts.get("/api/agents?page=2"), &page2)
		c.check(t, "GET /api/agents", ts.get("/api/agents?page=3&size=10"), &small)
		if len(page1) != 20 || len(page2) != 5 || len(small) != 5 {
			t.Fatalf("pages of %d, %d (size 20: the default) and %d (size 10), want 20, 5, 5", len(page1), len(page2), len(small))
		}
		all := append(page1, page2...)
		if !slices.IsSortedFunc(all, func(a, b v15Agent) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("not sorted by id: %v", all)
		}
		for _, id := range []string{"c15-exec", "c15-metrics", "c15-example"} {
			var a v15Agent
			c.check(t, "GET /api/agents/{id}", ts.get("/api/agents/"+id), &a)
			if a.ID != id || a.Type != strings.TrimPrefix(id, "c15-")+"-agent" || a.OS != "linux" || a.IsBusy {
				t.Errorf("agent %s: %+v", id, a)
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		var logs []v15LogFile
		c.check(t, "GET /api/agents/{id}/logs", ts.get("/api/agents/c15-exec/logs"), &logs)
		fi, err := os.Stat(filepath.Join(ex.logDir, "exec-agent.log"))
		if err != nil || len(logs) == 0 || logs[0].Name != "exec-agent.log" || logs[0].ModTime < fi.ModTime().Unix()-60 || logs[0].ModTime > time.Now().Unix() {
			t.Errorf("logs %+v (file: %v)", logs, err)
		}
	})

	t.Run("exec", func(t *testing.T) {
		var run v15Run
		c.check(t, "POST /api/exec/{id}/run", ts.json("POST", "/api/exec/c15-exec/run", map[string]any{"cmd": "echo", "args": []string{"compat 1.5"}, "pipe": true}), &run)
		out, _ := base64.StdEncoding.DecodeString(run.Result.Data)
		now := time.Now().Unix()
		if run.ID == "" || run.Pid <= 0 || run.Begin < now-60 || run.Begin > now || run.Result.Running || run.Result.Code != 0 ||
			run.Result.End < run.Begin || string(out) != "compat 1.5\n" {
			t.Errorf("sync run: %+v %+v %q", run, run.Result, out)
		}

		// Async: status while running, ps, pty, is_busy, kill, status done.
		var async v15Run
		c.check(t, "POST /api/exec/{id}/run", ts.json("POST", "/api/exec/c15-exec/run", map[string]any{"cmd": "echo started; sleep 30", "result": false}), &async)
		if async.Result != nil || async.Pid <= 0 {
			t.Fatalf("async run: %+v", async)
		}
		pid := fmt.Sprint(async.Pid)
		var st v15Status
		c.check(t, "GET /api/exec/{id}/status/{pid}", ts.get("/api/exec/c15-exec/status/"+pid), &st)
		if st.Done || st.End != 0 || st.Begin != async.Begin {
			t.Errorf("status while running: %+v", st)
		}
		var ps []v15Ps
		c.check(t, "GET /api/exec/{id}/ps", ts.get("/api/exec/c15-exec/ps"), &ps)
		if !slices.ContainsFunc(ps, func(p v15Ps) bool { return p.Pid == async.Pid && p.TaskID == async.ID && p.Begin == async.Begin }) {
			t.Errorf("ps %+v lacks %+v", ps, async)
		}
		var a v15Agent
		c.check(t, "GET /api/agents/{id}", ts.get("/api/agents/c15-exec"), &a)
		if !a.IsBusy {
			t.Errorf("is_busy false while a command runs: %+v", a)
		}
		var pty []byte
		eventually.Within(t, 20*time.Second, "the command's output in pty", func() bool {
			e := ts.get("/api/exec/c15-exec/pty/" + pid)
			if e.status != 200 || e.header.Get("Content-Type") != "application/octet-stream" {
				t.Fatalf("pty: %d %s", e.status, e.body)
			}
			pty = append(pty, e.body...)
			return strings.Contains(string(pty), "started")
		})
		c.check(t, "DELETE /api/exec/{id}/kill/{pid}", ts.do("DELETE", "/api/exec/c15-exec/kill/"+pid, opToken, nil), nil)
		eventually.Within(t, 20*time.Second, "the killed command done", func() bool {
			st = v15Status{}
			c.check(t, "GET /api/exec/{id}/status/{pid}", ts.get("/api/exec/c15-exec/status/"+pid), &st)
			return st.Done
		})
		if st.End < st.Begin || st.Code == 0 {
			t.Errorf("status after kill: %+v", st)
		}
		eventually.Within(t, 20*time.Second, "is_busy false", func() bool {
			a = v15Agent{}
			c.check(t, "GET /api/agents/{id}", ts.get("/api/agents/c15-exec"), &a)
			return !a.IsBusy
		})
	})

	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		sub := filepath.Join(dir, "private")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("12345"), 0o640); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2026, 11, 24, 13, 41, 28, 0, time.UTC)
		if err := os.Chtimes(filepath.Join(dir, "a.txt"), mt, mt); err != nil {
			t.Fatal(err)
		}
		var ls []v15File
		c.check(t, "GET /api/file/{id}/ls", ts.get("/api/file/c15-exec/ls?dir="+url.QueryEscape(dir)), &ls)
		want := []v15File{
			{Name: "a.txt", Auth: 0o640, Size: 5, ModTime: mt.Unix()},
			{Name: "private", Auth: 2147484096, IsDir: true}, // Go's FileMode of a 0700 directory
		}
		if len(ls) != 2 {
			t.Fatalf("ls = %+v", ls)
		}
		for i := range ls {
			ls[i].User, ls[i].Group = "", ""
			if ls[i].IsDir {
				ls[i].Size, ls[i].ModTime = 0, 0
			}
		}
		if !reflect.DeepEqual(ls, want) {
			t.Errorf("ls = %+v\nwant %+v", ls, want)
		}

		// Upload into a directory that does not exist: created, 0755.
		target := filepath.Join(dir, "new", "deeper")
		c.check(t, "POST /api/file/{id}/upload", ts.multipart("/api/file/c15-exec/upload", map[string]string{"dir": target}, "up.txt", "uploaded"), nil)
		if b, err := os.ReadFile(filepath.Join(target, "up.txt")); err != nil || string(b) != "uploaded" {
			t.Errorf("uploaded file: %q %v", b, err)
		}
		umask := syscall.Umask(0)
		syscall.Umask(umask)
		for _, d := range []string{filepath.Join(dir, "new"), target} {
			if fi, err := os.Stat(d); err != nil || fi.Mode() != os.ModeDir|os.FileMode(0o755&^umask) {
				t.Errorf("created %s: %v %v, want a 0755 directory", d, fi.Mode(), err)
			}
		}
		e := ts.get("/api/file/c15-exec/download?dir=" + url.QueryEscape(filepath.Join(target, "up.txt")))
		if e.status != 200 || string(e.body) != "uploaded" {
			t.Errorf("download: %d %q", e.status, e.body)
		}
	})

	t.Run("script", func(t *testing.T) {
		var sr v15Script
		c.check(t, "POST /api/script/{id}/run", ts.multipart("/api/script/c15-exec/run", map[string]string{"type": "sh"}, "s.sh", "echo from-script; exit 3"), &sr)
		out, _ := base64.StdEncoding.DecodeString(sr.Data)
		if sr.Code != 3 || sr.End < sr.Begin || sr.Begin <= 0 || !strings.Contains(string(out), "from-script") {
			t.Errorf("script: %+v %q", sr, out)
		}
	})

	t.Run("foo", func(t *testing.T) {
		c.check(t, "GET /api/foo/{id}", ts.get("/api/foo/c15-example"), nil)
	})

	t.Run("metrics", func(t *testing.T) {
		base := "/api/metrics/" + mx.id
		var static v15Static
		c.check(t, "GET /api/metrics/{id}/static", ts.get(base+"/static"), &static)
		if static.Time <= 0 || static.Host.Name == "" || static.OS.Name != "linux" || static.CPU.Logical <= 0 {
			t.Errorf("static: %+v", static)
		}
		var dyn v15Dynamic
		c.check(t, "GET /api/metrics/{id}/dynamic", ts.get(base+"/dynamic?top=5"), &dyn)
		if dyn.Usage == nil || len(dyn.Process) == 0 || len(dyn.Process) > 5 {
			t.Errorf("dynamic: usage %v, %d processes", dyn.Usage, len(dyn.Process))
		}
		var usage v15Usage
		c.check(t, "GET /api/metrics/{id}/dynamic/usage", ts.get(base+"/dynamic/usage"), &usage)
		var procs []v15Process
		c.check(t, "GET /api/metrics/{id}/dynamic/process", ts.get(base+"/dynamic/process?top=3"), &procs)
		var conns []v15Connection
		c.check(t, "GET /api/metrics/{id}/dynamic/connections", ts.get(base+"/dynamic/connections"), &conns)
		if len(conns) == 0 {
			t.Error("no connection listed (the agent's own to the server at least)")
		}
		var temps []v15Temp
		c.check(t, "GET /api/metrics/{id}/dynamic/temps", ts.get(base+"/dynamic/temps"), &temps)

		c.check(t, "PUT /api/metrics/{id}/status", ts.json("PUT", base+"/status", map[string]any{"jobs": []string{"static", "usage"}}), nil)
		var st v15MetricsStatus
		eventually.Within(t, 20*time.Second, "the jobs changed", func() bool {
			st = v15MetricsStatus{}
			c.check(t, "GET /api/metrics/{id}/status", ts.get(base+"/status"), &st)
			return len(st.Jobs) == 2
		})
		if st.Jobs[0].Name != "static" || st.Jobs[0].Interval != 86400 || st.Jobs[1].Name != "usage" || st.Jobs[1].Interval != 5 {
			t.Errorf("status: %+v", st)
		}
		var fleet v15Fleet
		c.check(t, "PUT /api/metrics/status", ts.json("PUT", "/api/metrics/status", map[string]any{"start": true}), &fleet)
		if fleet.Total != 1 || fleet.Success != 1 || fleet.Failure != 0 {
			t.Errorf("fleet: %+v", fleet)
		}
	})
}

// A synchronous run the server stops waiting for (the command's timeout
// plus 5 s) answers running with code -65535 and no end, as 1.5 did. The
// fake agent's "hold" ignores its timeout, so the wait always ends first.
func TestExecServerTimeoutCode(t *testing.T) {
	ts := startServerForReal(t) // the fake agent sends no pings: the default dead-peer timeout
	fa := newFakeExec(t, ts.addr, "x1", protocol.CapStream)
	ts.waitOnline("x1")
	e := ts.json("POST", "/api/exec/x1/run", map[string]any{"cmd": "hold", "timeout": 1})
	var rep struct {
		Begin  int64 `json:"begin"`
		PID    int   `json:"pid"`
		Result *struct {
			Running bool   `json:"running"`
			Code    int    `json:"code"`
			End     *int64 `json:"end"`
			Data    string `json:"data"`
		} `json:"result"`
	}
	if err := json.Unmarshal(e.Payload, &rep); err != nil || e.status != 200 || rep.Result == nil {
		t.Fatalf("run: %d %s (%v)", e.status, e.body, err)
	}
	if r := rep.Result; !r.Running || r.Code != -65535 || r.End != nil || r.Data != "YmVmb3JlCg==" {
		t.Errorf("result %+v (end %v), want running, code -65535, no end, the output so far", r, r.End)
	}
	if k := ts.do("DELETE", fmt.Sprintf("/api/exec/x1/kill/%d", rep.PID), opToken, nil); k.status != 200 {
		t.Errorf("kill: %d %s", k.status, k.body)
	}
	eventually.Within(t, 30*time.Second, "the held task to end", func() bool {
		fa.mu.Lock()
		defer fa.mu.Unlock()
		return len(fa.running) == 0
	})
}
