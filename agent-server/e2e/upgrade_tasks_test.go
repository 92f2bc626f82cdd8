//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestUpgradeTaskFollowed: an upgrade task is listed by GET /api/tasks
// (with its kind, and by state), shown by GET /api/tasks/{id} with its
// request, and its event stream ends with its outcome — the routes
// agentctl upgrade and tasks watch follow it with. The agent (in-process,
// no state file) cannot upgrade itself, so the task fails at once: what is
// tested is how the task is seen, not the upgrade (TestSelfUpdate).
func TestUpgradeTaskFollowed(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "ex-1"})
	ts.waitOnline("ex-1")
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte{2}, 500)...)
	if e := ts.do("PUT", "/api/packages/example-agent_9.0.0_linux_amd64", opToken, bytes.NewReader(elf)); e.status != 200 && e.status != 201 {
		t.Fatalf("upload: %d %s", e.status, e.body)
	}
	newExecSim().startExecAgent(t, ts.addr, "x0")
	ts.waitOnline("x0")
	fleetID, e := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"x0"}}, "cmd": "true"})
	if fleetID == "" {
		t.Fatalf("fleet task: %d %s", e.status, e.body)
	}
	b, _ := json.Marshal(map[string]any{"selector": map[string]any{"ids": []string{"ex-1"}}, "agent_type": "example-agent",
		"package": "example-agent_9.0.0_linux_amd64", "deadline": 10, "stay": 2})
	e = ts.do("POST", "/api/agents/upgrade", opToken, bytes.NewReader(b))
	if e.status != 200 {
		t.Fatalf("upgrade: %d %s", e.status, e.body)
	}
	var created struct{ ID string }
	must(t, json.Unmarshal(e.Payload, &created))
	v := ts.waitTask(t, created.ID, 30*time.Second)
	ts.waitTask(t, fleetID, 30*time.Second) // ended too, before the state=running listing below
	if v.Kind != "upgrade" || v.State != "failed" || len(v.Agents) != 1 || v.Agents[0].State != "failed" || v.Agents[0].Msg == "" {
		t.Fatalf("task: %+v", v)
	}
	var detail struct {
		Upgrade struct {
			AgentType string `json:"agent_type"`
			Package   string `json:"package"`
		} `json:"upgrade"`
	}
	must(t, json.Unmarshal(ts.get("/api/tasks/"+created.ID).Payload, &detail))
	if detail.Upgrade.AgentType != "example-agent" || detail.Upgrade.Package != "example-agent_9.0.0_linux_amd64" {
		t.Errorf("the task's upgrade request: %+v", detail.Upgrade)
	}

	list := func(query string) (map[string]string, string) {
		t.Helper()
		e := ts.get("/api/tasks" + query)
		if e.status != 200 {
			t.Fatalf("GET /api/tasks%s: %d %s", query, e.status, e.Msg)
		}
		var ts []struct{ ID, Kind string }
		must(t, json.Unmarshal(e.Payload, &ts))
		kinds := map[string]string{}
		for _, x := range ts {
			kinds[x.ID] = x.Kind
		}
		return kinds, e.header.Get("X-Total-Count")
	}
	if kinds, total := list(""); kinds[created.ID] != "upgrade" || kinds[fleetID] != "fleet" || total != "2" {
		t.Errorf("GET /api/tasks: %v (total %s), want the upgrade and the fleet task", kinds, total)
	}
	if kinds, _ := list("?state=failed"); kinds[created.ID] != "upgrade" {
		t.Errorf("GET /api/tasks?state=failed: %v, want the upgrade task", kinds)
	}
	if kinds, _ := list("?state=running"); len(kinds) != 0 {
		t.Errorf("GET /api/tasks?state=running: %v", kinds)
	}

	req, _ := http.NewRequest("GET", ts.url+"/api/tasks/"+created.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := ts.client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	evs := readSSE(t, resp.Body)
	if resp.StatusCode != 200 || len(evs) == 0 || evs[len(evs)-1].typ != "done" || evs[len(evs)-1].data["state"] != "failed" {
		t.Errorf("events of the finished upgrade task: %d %+v", resp.StatusCode, evs)
	}
	if i := slices.IndexFunc(evs, func(e sseEvent) bool { return e.typ == "output" }); i >= 0 {
		t.Errorf("an upgrade task has no output events: %+v", evs[i])
	}
}
