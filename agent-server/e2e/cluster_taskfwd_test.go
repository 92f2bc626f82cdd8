//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/internal/api"
	"github.com/agentfleet/agent-server/internal/store"
)

// TestClusterTaskForwarding: the task routes that read the run in its
// owner's memory are served by the member that owns the task, through
// any member. A fleet task created on s1 (s1 owns it) is followed through
// s2 with the same events as through s1, up to its end; a second task,
// one agent at a time over three agents whose commands are held, is
// cancelled through s2: s1's run stops at once (the command in flight
// killed, the others never launched) and the task ends cancelled; the
// cancel is audited once, by s1, as forwarded by s2. A read-only token
// gets the same answers through either member.
func TestClusterTaskForwarding(t *testing.T) {
	a, b := twoMembers(t) // s1, s2
	x := newExecSim()
	ids := []string{"x0", "x1", "x2"}
	for _, id := range ids {
		x.startExecAgent(t, a.addr, id)
	}
	for _, id := range ids {
		a.waitOnline(id)
	}
	dir := t.TempDir()
	held := func(gate string) string {
		return `while [ ! -e '` + gate + `' ]; do sleep 0.05; done; echo "done on $AGENT_ID"`
	}

	// Events: both streams open while both commands are held, so they
	// see the same events from there on.
	gate1 := filepath.Join(dir, "gate1")
	id1, e := a.postTask(t, map[string]any{"selector": map[string]any{"ids": ids[:2]}, "cmd": held(gate1), "concurrency": 2})
	if id1 == "" {
		t.Fatalf("create task: %d %s", e.status, e.body)
	}
	eventually.Within(t, 30*time.Second, "both commands running", func() bool { return x.cur.Load() == 2 })
	follow := func(ts *testServer, token string) *http.Response { return followTask(t, ts, id1, token) }
	// The owner subscribed before it sent the headers: nothing is missed.
	direct, relayed := follow(a, opToken), follow(b, opToken)
	if err := os.WriteFile(gate1, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got1, got2 := readSSE(t, direct.Body), readSSE(t, relayed.Body)
	summary := func(evs []sseEvent) []string {
		var out []string
		for _, e := range evs {
			b, _ := json.Marshal(e.data)
			out = append(out, e.typ+" "+string(b))
		}
		return out
	}
	s1, s2 := summary(got1), summary(got2)
	if !slices.Equal(s1, s2) {
		t.Errorf("events through s2 differ from those through s1:\ns1: %q\ns2: %q", s1, s2)
	}
	finals := map[string]string{}
	for _, e := range got2 {
		if st, _ := e.data["state"].(string); e.typ == "state" && st != "running" {
			finals[e.data["agent"].(string)] = st
		}
	}
	if finals["x0"] != "ok" || finals["x1"] != "ok" {
		t.Errorf("per-agent results through s2: %v\n%q", finals, s2)
	}
	if len(got2) == 0 || got2[len(got2)-1].typ != "done" || got2[len(got2)-1].data["state"] != "done" {
		t.Errorf("the stream through s2 does not end with the task done: %q", s2)
	}

	// Cancel: one agent at a time, the first command held.
	gate2 := filepath.Join(dir, "gate2")
	base := x.started.Load()
	id2, e := a.postTask(t, map[string]any{"selector": map[string]any{"ids": ids}, "cmd": held(gate2), "concurrency": 1})
	if id2 == "" {
		t.Fatalf("create task: %d %s", e.status, e.body)
	}
	eventually.Within(t, 30*time.Second, "the first command running", func() bool { return x.cur.Load() == 1 })

	// A read-only token: the same answers through either member.
	for _, c := range []struct{ method, path string }{
		{"DELETE", "/api/tasks/" + id2},
		{"GET", "/api/tasks/" + id2},
		{"GET", "/api/tasks/nosuchtask/events"},
		{"DELETE", "/api/layout/" + id2},
	} {
		d, f := a.do(c.method, c.path, roToken, nil), b.do(c.method, c.path, roToken, nil)
		if d.status != f.status || d.Msg != f.Msg {
			t.Errorf("%s %s with a read-only token: %d %q at s1, %d %q through s2", c.method, c.path, d.status, d.Msg, f.status, f.Msg)
		}
	}

	// Every task route that reads the owner's run is relayed (seen here by
	// its hop limit): a call forwarded already is not forwarded again.
	var walked []string
	for pattern, rule := range b.srv.API().Rules() {
		if !rule.ForwardedToTaskOwner {
			continue
		}
		walked = append(walked, pattern)
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.ReplaceAll(path, "{id}", id2)
		e := b.doHeader(method, path, opToken, map[string]string{api.HeaderForwardedBy: "s9"})
		if e.status != 503 || e.header.Get("Retry-After") == "" || !strings.Contains(e.Msg, "task "+id2+" moved to member s1") {
			t.Errorf("%s %s with a hop taken: %d %q", method, path, e.status, e.Msg)
		}
	}
	slices.Sort(walked)
	if want := []string{"DELETE /api/layout/{id}", "DELETE /api/tasks/{id}", "GET /api/layout/{id}/file", "GET /api/tasks/{id}", "GET /api/tasks/{id}/events"}; !slices.Equal(walked, want) {
		t.Errorf("routes forwarded to the task's owner: %q, want %q", walked, want)
	}

	const reqID = "taskfwd-cancel-1"
	if e := b.doHeader("DELETE", "/api/tasks/"+id2, opToken, map[string]string{"X-Request-Id": reqID}); e.status != 200 {
		t.Fatalf("cancel through s2: %d %s", e.status, e.Msg)
	}
	// The owner answered once its run had ended: right now, the task is
	// cancelled, the held command killed and the others never launched.
	v := a.task(t, id2)
	if v.State != "cancelled" {
		t.Errorf("task state right after the cancel through s2: %s", v.State)
	}
	for _, r := range v.Agents {
		if r.State == "pending" || r.State == "running" {
			t.Errorf("%s still %s right after the cancel through s2", r.Agent, r.State)
		}
	}
	if n := x.started.Load() - base; n != 1 {
		t.Errorf("%d commands started, want 1", n)
	}
	eventually.Within(t, 30*time.Second, "the held command killed", func() bool { return x.cur.Load() == 0 })
	// Released now, the gate would let a run that goes on launch the next.
	if err := os.WriteFile(gate2, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v = b.waitTask(t, id2, 30*time.Second)
	if v.State != "cancelled" || x.started.Load()-base != 1 {
		t.Errorf("after the cancel: %s, %d started", v.State, x.started.Load()-base)
	}

	// Audited once, by the owner, naming the forwarding member.
	list, _, err := a.srv.Store().ListAudit(context.Background(), store.AuditFilter{Target: id2, Paging: store.Paging{Size: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var got []store.AuditEntry
	for _, e := range list {
		if e.RequestID == reqID {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Status != 200 || got[0].Action != "DELETE /api/tasks/{id}" || !strings.Contains(got[0].Remote, "forwarded by member s2") {
		t.Fatalf("audit entries of the forwarded cancel: %+v", got)
	}

	// A running task no live member owns (here: nobody owns it) is served
	// where asked: its events end at once, saying it is not run there.
	un, err := a.srv.Store().CreateTask(context.Background(), store.Task{Kind: store.KindFleet, State: store.TaskRunning, StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.srv.Store().DeleteTask(context.Background(), un.ID) })
	evs := readSSE(t, followTask(t, b, un.ID, opToken).Body)
	if len(evs) != 1 || evs[0].typ != "done" || evs[0].data["state"] != "running" || !strings.Contains(fmt.Sprint(evs[0].data["msg"]), "not run by this server now") {
		t.Errorf("events of a task no live member owns: %+v", evs)
	}

	// The forwards are counted.
	m := b.do("GET", "/metrics", "", nil)
	if !regexp.MustCompile(`(?m)^agentserver_api_forwarded_total\{outcome="relayed"\} [1-9]`).Match(m.body) {
		t.Errorf("no relayed forward counted at s2:\n%s", linesWith(m.body, "agentserver_api_forwarded"))
	}
}

// followTask opens GET /api/tasks/{id}/events at ts.
func followTask(t *testing.T, ts *testServer, id, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.url+"/api/tasks/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	// The stream lasts the task.
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events at %s: %d %s", ts.url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}
