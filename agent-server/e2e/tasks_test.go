//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

type taskAgent struct {
	Agent       string `json:"agent"`
	State       string `json:"state"`
	ExitCode    int    `json:"exit_code"`
	Msg         string `json:"msg"`
	OutputHead  string `json:"output_head"`
	OutputTail  string `json:"output_tail"`
	Dropped     int64  `json:"dropped"`
	OutputBytes int64  `json:"output_bytes"`
}

type taskView struct {
	ID          string      `json:"id"`
	Kind        string      `json:"kind"`
	State       string      `json:"state"`
	Msg         string      `json:"msg"`
	MaxInFlight *int        `json:"max_in_flight"`
	Agents      []taskAgent `json:"agents"`
	Summary     struct {
		Total, Pending, Running, OK, Failed, Skipped, Lost int
		TimedOut                                           int `json:"timed_out"`
	} `json:"summary"`
}

func (ts *testServer) postTask(t *testing.T, body any) (string, envelope) {
	t.Helper()
	b, _ := json.Marshal(body)
	e := ts.do("POST", "/api/tasks", opToken, bytes.NewReader(b))
	if e.status != 200 {
		return "", e
	}
	var p struct{ ID string }
	if err := json.Unmarshal(e.Payload, &p); err != nil || p.ID == "" {
		t.Fatalf("create task: %s", e.body)
	}
	return p.ID, e
}

func (ts *testServer) task(t *testing.T, id string) taskView {
	t.Helper()
	e := ts.get("/api/tasks/" + id)
	if e.status != 200 {
		t.Fatalf("get task %s: %d %s", id, e.status, e.Msg)
	}
	var v taskView
	if err := json.Unmarshal(e.Payload, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (ts *testServer) waitTask(t *testing.T, id string, d time.Duration) taskView {
	t.Helper()
	var v taskView
	eventually.Within(t, d, "task "+id+" to end", func() bool {
		v = ts.task(t, id)
		return v.State == "done" || v.State == "failed" || v.State == "cancelled"
	})
	return v
}

func byAgent(v taskView) map[string]taskAgent {
	m := map[string]taskAgent{}
	for _, a := range v.Agents {
		m[a.Agent] = a
	}
	return m
}

// fleet starts a server and n exec agents x0..x{n-1}.
func fleet(t *testing.T, n int) (*testServer, *execSim, []string) {
	ts := startServer(t, serverSpec{})
	x := newExecSim()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("x%d", i)
		x.startExecAgent(t, ts.addr, id)
		ids = append(ids, id)
	}
	for _, id := range ids {
		ts.waitOnline(id)
	}
	return ts, x, ids
}

func TestFleetTask(t *testing.T) {
	ts, _, ids := fleet(t, 3)
	// A known exec-agent that is offline: lost at start.
	gone := newExecSim().startExecAgent(t, ts.addr, "x9")
	ts.waitOnline("x9")
	gone.stop(t)
	eventually.Within(t, 30*time.Second, "x9 offline", func() bool { return len(ts.agents("online=false&type=exec-agent")) == 1 })

	id, e := ts.postTask(t, map[string]any{"selector": map[string]any{"type": "exec-agent"}, "cmd": `echo "hello from $AGENT_ID"; test "$AGENT_ID" != x1 || exit 7`})
	if id == "" {
		t.Fatalf("create: %d %s", e.status, e.Msg)
	}
	v := ts.waitTask(t, id, 20*time.Second)
	if v.State != "done" || v.Kind != "fleet" || len(v.Agents) != 4 {
		t.Fatalf("task %+v", v)
	}
	m := byAgent(v)
	for _, a := range ids {
		r := m[a]
		want, code := "ok", 0
		if a == "x1" {
			want, code = "failed", 7
		}
		if r.State != want || r.ExitCode != code || r.OutputHead != "hello from "+a+"\n" {
			t.Errorf("agent %s: %+v", a, r)
		}
	}
	if r := m["x9"]; r.State != "lost" || r.Msg != "agent offline at start" {
		t.Errorf("offline agent: %+v", r)
	}
	// Full output with Range.
	req, _ := http.NewRequest("GET", ts.url+"/api/tasks/"+id+"/agents/x2/output", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	req.Header.Set("Range", "bytes=6-9")
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(b) != "from" {
		t.Fatalf("range: %d %q", resp.StatusCode, b)
	}
	// Listed, audited, and errors.
	e = ts.get("/api/tasks?state=done")
	if e.status != 200 || e.header.Get("X-Total-Count") != "1" || !strings.Contains(string(e.Payload), id) {
		t.Fatalf("list: %d %s", e.status, e.body)
	}
	e = ts.get("/api/audit?action=" + urlQuery("POST /api/tasks"))
	if e.status != 200 || !strings.Contains(string(e.Payload), `"target":"`+id+`"`) {
		t.Fatalf("audit: %s", e.body)
	}
	if e := ts.do("DELETE", "/api/tasks/"+id, opToken, nil); e.status != 409 {
		t.Fatalf("cancel finished: %d %s", e.status, e.Msg)
	}
	for _, c := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{"cmd":"true"}`, 400, "selector: empty (give ids or a filter)"},
		{`{"selector":{"ids":["x0"]}}`, 400, "missing cmd or script"},
		{`{"selector":{"ids":["nope"]},"cmd":"true"}`, 404, "not found: agent nope"},
		{`{"selector":{"ids":["x0"]},"cmd":"true","max_errors":"x"}`, 400, ""},
		{`{"selector":{"ids":["x0"]},"script":"echo","type":"cobol"}`, 400, `type: "cobol" is not one of sh, bash, python, python3, php, lua, powershell`},
		{`{"selector":{"keyword":"zzz"},"cmd":"true"}`, 400, "selector: matches no agents"},
		{`{"selector":{"type":"metrics-agent"},"cmd":"true"}`, 424, "invalid agent type want [exec-agent] got [metrics-agent]"},
	} {
		e := ts.do("POST", "/api/tasks", opToken, strings.NewReader(c.body))
		if e.status != c.status || c.msg != "" && e.Msg != c.msg {
			t.Errorf("%s: %d %q, want %d %q", c.body, e.status, e.Msg, c.status, c.msg)
		}
	}
	if e := ts.get("/api/tasks/nope"); e.status != 404 || e.Msg != "not found: task" {
		t.Errorf("unknown task: %d %q", e.status, e.Msg)
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer(" ", "%20", "/", "%2F", "{", "%7B", "}", "%7D").Replace(s)
}

func TestFleetScript(t *testing.T) {
	ts, _, _ := fleet(t, 2)
	id, e := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"x0", "x1"}}, "script": "a=2\nb=3\necho $((a*b)) \"$1\"", "args": []string{"arg"}})
	if id == "" {
		t.Fatalf("create: %d %s", e.status, e.Msg)
	}
	v := ts.waitTask(t, id, 20*time.Second)
	for _, a := range v.Agents {
		if a.State != "ok" || a.OutputHead != "6 arg\n" {
			t.Errorf("%+v", a)
		}
	}
}

func TestFleetMaxErrors(t *testing.T) {
	ts, x, ids := fleet(t, 6)
	for _, c := range []struct{ max any }{{2}, {"34%"}} { // 34% of 6 = 2.04: 2 tolerated
		before := x.started.Load()
		id, e := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": "exit 3", "concurrency": 1, "max_errors": c.max})
		if id == "" {
			t.Fatalf("create: %d %s", e.status, e.Msg)
		}
		v := ts.waitTask(t, id, 20*time.Second)
		if v.State != "failed" || v.Summary.Failed != 3 || v.Summary.Skipped != 3 || x.started.Load()-before != 3 {
			t.Fatalf("max_errors %v: %+v (started %d)", c.max, v, x.started.Load()-before)
		}
		if !strings.HasPrefix(v.Msg, "max_errors exceeded: 3 failed, 2 tolerated") {
			t.Fatalf("msg %q", v.Msg)
		}
		m := byAgent(v)
		for i, a := range ids {
			want := "failed"
			if i >= 3 {
				want = "skipped"
			}
			if m[a].State != want {
				t.Errorf("max_errors %v: agent %s %s, want %s", c.max, a, m[a].State, want)
			}
		}
		if m["x5"].Msg != "not started: max_errors exceeded (3 failed, 2 tolerated (max_errors "+fmt.Sprint(c.max)+" of 6))" {
			t.Errorf("skip msg %q", m["x5"].Msg)
		}
	}
}

func TestFleetCanary(t *testing.T) {
	ts, x, ids := fleet(t, 5)
	id, _ := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": `test "$AGENT_ID" != x1`, "canary": 2})
	v := ts.waitTask(t, id, 20*time.Second)
	m := byAgent(v)
	if v.State != "failed" || m["x0"].State != "ok" || m["x1"].State != "failed" || x.started.Load() != 2 {
		t.Fatalf("%+v started %d", v, x.started.Load())
	}
	for _, a := range ids[2:] {
		if m[a].State != "skipped" || m[a].Msg != "not started: canary failed (1 of 2 canary items failed)" {
			t.Errorf("%s: %+v", a, m[a])
		}
	}
	// A passing canary lets the rest run.
	id, _ = ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": "true", "canary": 2, "batch_wait": 0.05, "concurrency": 2})
	v = ts.waitTask(t, id, 20*time.Second)
	if v.State != "done" || v.Summary.OK != 5 {
		t.Fatalf("%+v", v)
	}
}

func TestFleetCancel(t *testing.T) {
	ts, x, ids := fleet(t, 5)
	marker := filepath.Join(t.TempDir(), "survivors")
	id, _ := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": "sleep 30; echo survived >> " + marker, "concurrency": 2})
	eventually.Within(t, 10*time.Second, "two commands running", func() bool { return x.cur.Load() == 2 })
	e := ts.do("DELETE", "/api/tasks/"+id, opToken, nil)
	if e.status != 200 {
		t.Fatalf("cancel: %d %s", e.status, e.Msg)
	}
	v := ts.task(t, id)
	if v.State != "cancelled" || x.started.Load() != 2 {
		t.Fatalf("%+v started %d", v, x.started.Load())
	}
	eventually.Within(t, 20*time.Second, "killed commands gone", func() bool { return x.cur.Load() == 0 })
	m := byAgent(v)
	for i, a := range ids {
		r := m[a]
		if i < 2 && (r.State != "failed" || r.ExitCode != 137 || r.Msg != "killed: task cancelled") {
			t.Errorf("running agent %s: %+v", a, r)
		}
		if i >= 2 && (r.State != "skipped" || r.Msg != "not started: task cancelled") {
			t.Errorf("pending agent %s: %+v", a, r)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a killed command ran on")
	}
	e = ts.get("/api/audit?action=" + urlQuery("DELETE /api/tasks/{id}"))
	if !strings.Contains(string(e.Payload), `"target":"`+id+`"`) {
		t.Fatalf("audit: %s", e.body)
	}
}

func TestFleetRestartResumes(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})
	addr := ts.addr
	x := newExecSim()
	ids := []string{"x0", "x1", "x2", "x3"}
	for _, id := range ids {
		x.startExecAgent(t, addr, id)
	}
	for _, id := range ids {
		ts.waitOnline(id)
	}
	id, _ := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": `sleep 1; echo "done on $AGENT_ID"`, "concurrency": 2})
	eventually.Within(t, 30*time.Second, "two commands running", func() bool { return x.cur.Load() == 2 })
	ts.stop()
	if x.started.Load() != 2 {
		t.Fatalf("started %d before the restart", x.started.Load())
	}
	ts2 := startServer(t, serverSpec{dataDir: dir, addr: addr})
	v := ts2.waitTask(t, id, 30*time.Second)
	if v.State != "done" || v.Summary.OK != 4 || x.started.Load() != 4 {
		t.Fatalf("after restart: %+v (started %d)", v, x.started.Load())
	}
	for _, a := range v.Agents {
		if a.OutputHead != "done on "+a.Agent+"\n" {
			t.Errorf("%s: output %q", a.Agent, a.OutputHead)
		}
	}
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	typ  string
	data map[string]any
}

func readSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("bad data %q", line)
			}
		}
	}
	return out
}

func TestFleetEvents(t *testing.T) {
	ts, _, _ := fleet(t, 2)
	id, _ := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"x0", "x1"}}, "cmd": "sleep 0.5; seq 1 20000"})
	req, _ := http.NewRequest("GET", ts.url+"/api/tasks/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs := readSSE(t, resp.Body)
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		want.WriteString(strconv.Itoa(i) + "\n")
	}
	got := map[string]*strings.Builder{"x0": {}, "x1": {}}
	final := map[string]string{}
	for _, e := range evs {
		agent, _ := e.data["agent"].(string)
		switch e.typ {
		case "output":
			if final[agent] != "" {
				t.Fatalf("output of %s after its final state", agent)
			}
			off := int64(e.data["offset"].(float64))
			if off != int64(got[agent].Len()) {
				t.Fatalf("%s: output at offset %d after %d bytes", agent, off, got[agent].Len())
			}
			got[agent].WriteString(e.data["data"].(string))
		case "state":
			if st := e.data["state"].(string); st != "running" {
				final[agent] = st
			}
		}
	}
	if last := evs[len(evs)-1]; last.typ != "done" || last.data["state"] != "done" {
		t.Fatalf("last event %+v", last)
	}
	for a, b := range got {
		if b.String() != want.String() || final[a] != "ok" {
			t.Errorf("%s: %d bytes of output (want %d), final %q", a, b.Len(), want.Len(), final[a])
		}
	}
	// A finished task answers with its done event at once.
	resp2, err := ts.client.Do(req.Clone(req.Context()))
	if err != nil {
		t.Fatal(err)
	}
	evs = readSSE(t, resp2.Body)
	resp2.Body.Close()
	if len(evs) != 1 || evs[0].typ != "done" {
		t.Fatalf("events after the end: %+v", evs)
	}

}

func TestFleetWaitOffline(t *testing.T) {
	ts, _, _ := fleet(t, 1)
	x := newExecSim()
	late := x.startExecAgent(t, ts.addr, "late")
	ts.waitOnline("late")
	late.stop(t)
	eventually.Within(t, 30*time.Second, "late offline", func() bool { return len(ts.agents("online=false&type=exec-agent")) == 1 })
	// Waited for: it comes back within wait_offline.
	id, _ := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"late", "x0"}}, "cmd": "echo hi", "wait_offline": 20})
	if v := ts.task(t, id); byAgent(v)["late"].State != "pending" || byAgent(v)["late"].Msg != "agent offline; waiting for it" {
		t.Fatalf("before it is back: %+v", byAgent(v)["late"])
	}
	x.startExecAgent(t, ts.addr, "late")
	v := ts.waitTask(t, id, 20*time.Second)
	if r := byAgent(v)["late"]; r.State != "ok" || r.OutputHead != "hi\n" {
		t.Fatalf("late agent: %+v", r)
	}
	// Not back in time: lost.
	t.Run("never back", func(t *testing.T) {
		x2 := newExecSim()
		gone := x2.startExecAgent(t, ts.addr, "gone")
		ts.waitOnline("gone")
		gone.stop(t)
		ts.waitOffline("gone")
		id, _ := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"gone"}}, "cmd": "true", "wait_offline": "300ms"})
		v := ts.waitTask(t, id, 10*time.Second)
		if r := byAgent(v)["gone"]; r.State != "lost" || r.Msg != "agent offline when its turn came" {
			t.Fatalf("%+v", r)
		}
	})
}
