//go:build unix

package e2e

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/config"

	"github.com/agentfleet/agent-server/internal/layout/layouttest"
)

// webToken reaches the agents labelled env=prod, with every scope that
// may be limited by a selector.
const webToken = "web-token-0123456789abcdef"

// selectorScopes are the scopes a selector may limit: every one that is
// not fleet-wide.
func selectorScopes() []string {
	var scopes []string
	for _, in := range authz.All() {
		if !in.FleetWide {
			scopes = append(scopes, string(in.Name))
		}
	}
	return scopes
}

func startSelectorServer(t *testing.T) *testServer {
	t.Helper()
	scopes := selectorScopes()
	return startServer(t, serverSpec{mod: func(c *config.Config) {
		c.API.RateLimit = 0
		c.API.Scoped = append(c.API.Scoped, config.ScopedToken{Name: "web", Secret: webToken, Scopes: scopes, Selector: "env=prod"})
	}})
}

// TestAuthzSelectorEveryAgentRoute: for every route that reaches an agent
// (its rule names an agent parameter), a token limited by a selector gets
// 404 "not found: agent" for an agent outside it, exactly as for an agent
// that does not exist, and passes for an agent inside it.
func TestAuthzSelectorEveryAgentRoute(t *testing.T) {
	ts := startSelectorServer(t)
	startAgent(t, ts.addr, agentSpec{id: "in-1", labels: []string{"env=prod"}})
	startAgent(t, ts.addr, agentSpec{id: "out-1", labels: []string{"env=dev"}})
	ts.waitOnline("in-1")
	ts.waitOnline("out-1")
	checked := 0
	for op, rule := range ts.srv.API().Rules() {
		if rule.AgentParam == "" {
			continue
		}
		if in, _ := authz.Lookup(rule.Scope); in.FleetWide {
			continue // no token limited by a selector can hold it
		}
		call, ok := matrixCalls[op]
		if !ok || !strings.Contains(call.path, "/a1") {
			t.Errorf("%s: no matrix call naming agent a1", op)
			continue
		}
		if op == "PUT /api/agents/{id}/labels" {
			call.body = `{"labels":{"env":"prod"}}` // in-1 stays inside
		}
		method, _, _ := strings.Cut(op, " ")
		for _, agent := range []string{"out-1", "in-1", "nobody"} {
			c := call
			c.path = strings.Replace(call.path, "/a1", "/"+agent, 1)
			status, msg := matrixDo(t, ts, method, c, webToken, "")
			hidden := status == 404 && msg == "not found: agent"
			if hidden != (agent != "in-1") {
				t.Errorf("%s for %s: %d %q (hidden %v)", op, agent, status, msg, hidden)
			}
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("only %d routes with an agent parameter", checked)
	}
	// Lists and counts leave out the agents outside.
	e := ts.do("GET", "/api/agents", webToken, nil)
	if e.status != 200 || !strings.Contains(string(e.Payload), `"id":"in-1"`) || strings.Contains(string(e.Payload), "out-1") || e.header.Get("X-Total-Count") != "1" {
		t.Errorf("list: %d %s %v", e.status, e.Payload, e.header.Get("X-Total-Count"))
	}
	if e := ts.do("GET", "/api/agents?labels=env%3Ddev", webToken, nil); e.status != 200 || string(e.Payload) != "[]" {
		t.Errorf("list env=dev: %d %s", e.status, e.Payload)
	}
	if e := ts.do("GET", "/api/agents?online=false", webToken, nil); e.status != 200 || string(e.Payload) != "[]" {
		t.Errorf("list offline: %d %s", e.status, e.Payload)
	}
	if e := ts.do("GET", "/api/info/server", webToken, nil); !strings.Contains(string(e.Payload), `"agents":1`) {
		t.Errorf("info: %s", e.Payload)
	}
	if e := ts.do("GET", "/api/info/server", opToken, nil); !strings.Contains(string(e.Payload), `"agents":2`) {
		t.Errorf("info as admin: %s", e.Payload)
	}
	var who struct {
		Name      string   `json:"name"`
		Scopes    []string `json:"scopes"`
		Selector  string   `json:"selector"`
		ExpiresAt *int64   `json:"expires_at"`
		ReadOnly  bool     `json:"read_only"`
	}
	if e := ts.do("GET", "/api/whoami", webToken, nil); json.Unmarshal(e.Payload, &who) != nil || who.Name != "web" || who.Selector != "env=prod" ||
		who.ReadOnly || who.ExpiresAt != nil || len(who.Scopes) != len(selectorScopes()) || strings.Contains(string(e.Payload), "secret") {
		t.Errorf("whoami: %s", e.Payload)
	}
}

// TestAuthzSelectorFleet: fleet actions of a limited token only reach the
// agents inside its selector, and it sees only its own tasks.
func TestAuthzSelectorFleet(t *testing.T) {
	ts := startSelectorServer(t)
	newFakeExec(t, ts.addr, "x-in")
	newFakeExec(t, ts.addr, "x-out")
	startMetricsAgent(t, ts, metricsSpec{id: "m-in"})
	startMetricsAgent(t, ts, metricsSpec{id: "m-out"})
	for _, id := range []string{"x-in", "x-out", "m-in", "m-out"} {
		ts.waitOnline(id)
	}
	for _, id := range []string{"x-in", "m-in"} {
		if e := ts.do("PUT", "/api/agents/"+id+"/labels", opToken, strings.NewReader(`{"labels":{"env":"prod"}}`)); e.status != 200 {
			t.Fatalf("labels: %d %s", e.status, e.Msg)
		}
	}
	// Metrics collection: only m-in.
	e := ts.do("PUT", "/api/metrics/status?timeout=5", webToken, strings.NewReader(`{"start":false}`))
	if e.status != 200 || !strings.Contains(string(e.Payload), `"total":1`) {
		t.Errorf("fleet metrics as web: %d %s", e.status, e.body)
	}
	e = ts.do("PUT", "/api/metrics/status?timeout=5", opToken, strings.NewReader(`{"start":false}`))
	if e.status != 200 || !strings.Contains(string(e.Payload), `"total":2`) {
		t.Errorf("fleet metrics as admin: %d %s", e.status, e.body)
	}
	// Tasks: ids outside are not found; a filter is narrowed.
	post := func(token, body string) envelope { return ts.do("POST", "/api/tasks", token, strings.NewReader(body)) }
	if e := post(webToken, `{"selector":{"ids":["x-in","x-out"]},"cmd":"true"}`); e.status != 404 || e.Msg != "not found: agent x-out" {
		t.Errorf("ids outside: %d %q", e.status, e.Msg)
	}
	e = post(webToken, `{"selector":{"type":"exec-agent"},"cmd":"echo web-was-here"}`)
	var created struct {
		ID     string `json:"id"`
		Agents int    `json:"agents"`
	}
	if e.status != 200 || json.Unmarshal(e.Payload, &created) != nil || created.Agents != 1 {
		t.Fatalf("filter: %d %s", e.status, e.body)
	}
	ts.token = webToken
	v := ts.waitTask(t, created.ID, 20*time.Second)
	if len(v.Agents) != 1 || v.Agents[0].Agent != "x-in" || !strings.Contains(v.Agents[0].OutputHead, "web-was-here") {
		t.Errorf("task as web: %+v", v)
	}
	ts.token = opToken
	opsTask, e := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"x-in", "x-out"}}, "cmd": "echo SECRET-ops-output"})
	if opsTask == "" {
		t.Fatalf("ops task: %d %s", e.status, e.body)
	}
	ts.waitTask(t, opsTask, 20*time.Second)
	for _, path := range []string{"/api/tasks/" + opsTask, "/api/tasks/" + opsTask + "/agents/x-in/output", "/api/tasks/" + opsTask + "/events"} {
		if e := ts.do("GET", path, webToken, nil); e.status != 404 || e.Msg != "not found: task" {
			t.Errorf("web reads the ops task %s: %d %q", path, e.status, e.Msg)
		}
	}
	if e := ts.do("DELETE", "/api/tasks/"+opsTask, webToken, nil); e.status != 404 {
		t.Errorf("web cancels the ops task: %d %q", e.status, e.Msg)
	}
	if e := ts.do("GET", "/api/tasks", webToken, nil); e.header.Get("X-Total-Count") != "1" || !strings.Contains(string(e.Payload), created.ID) {
		t.Errorf("web's task list: %s", e.body)
	}
	// Layouts: ids outside are not found.
	archive := layouttest.Tar(t, true, mainYAML("  - {name: a, plugin: exec, cmd: 'true'}\n"))
	resp, err := ts.client.Do(ts.layoutRequest(webToken, "layout.tar", archive, "ids", "x-in,x-out"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), "not found: agent x-out") {
		t.Errorf("layout outside: %d %s", resp.StatusCode, b)
	}
}

// TestAuthzOthersOutput: a token without exec:read-any (read-only) reads
// fleet tasks but not the output of another token's task: the view leaves
// it out (X-Output-Withheld), the output route is 403, events skip it.
func TestAuthzOthersOutput(t *testing.T) {
	ts := startServer(t, serverSpec{})
	newFakeExec(t, ts.addr, "x1")
	ts.waitOnline("x1")
	id, e := ts.postTask(t, map[string]any{"selector": map[string]any{"ids": []string{"x1"}}, "cmd": "echo SECRET-task-output"})
	if id == "" {
		t.Fatalf("task: %d %s", e.status, e.body)
	}
	if v := ts.waitTask(t, id, 20*time.Second); !strings.Contains(v.Agents[0].OutputHead, "SECRET-task-output") {
		t.Fatalf("operator's view: %+v", v)
	}
	e = ts.do("GET", "/api/tasks/"+id, roToken, nil)
	// The command is part of the task; its output (with the newline) is not.
	if e.status != 200 || strings.Contains(string(e.body), `SECRET-task-output\n`) || e.header.Get("X-Output-Withheld") == "" || !strings.Contains(string(e.body), `"state":"ok"`) {
		t.Errorf("read-only view: %d %s %v", e.status, e.body, e.header)
	}
	if e := ts.do("GET", "/api/tasks/"+id+"/agents/x1/output", roToken, nil); e.status != 403 || !strings.Contains(e.Msg, "exec:read-any") {
		t.Errorf("read-only output: %d %q", e.status, e.Msg)
	}
	e = ts.do("GET", "/api/tasks/"+id+"/events", roToken, nil)
	if e.status != 200 || strings.Contains(string(e.body), "SECRET") || !strings.Contains(string(e.body), "event: done") {
		t.Errorf("read-only events: %d %s", e.status, e.body)
	}
	if e := ts.do("GET", "/api/tasks/"+id+"/agents/x1/output", opToken, nil); e.status != 200 || !strings.Contains(string(e.body), "SECRET-task-output") {
		t.Errorf("operator output: %d %s", e.status, e.body)
	}
}

// TestRuntimeTokens: an admin makes a token (the secret is shown once and
// never again), the token works with its scopes and selector at once, and
// a revocation or an expiry ends it at the next request, with a clear 401.
func TestRuntimeTokens(t *testing.T) {
	ts := startServer(t, serverSpec{mod: func(c *config.Config) {
		c.API.Scoped = append(c.API.Scoped, config.ScopedToken{Name: "old", Secret: "expired-token-0123456789", Scopes: []string{"agents:read"}, Expires: time.Now().Add(-time.Hour)})
	}})
	startAgent(t, ts.addr, agentSpec{id: "in-1", labels: []string{"env=prod"}})
	startAgent(t, ts.addr, agentSpec{id: "out-1"})
	ts.waitOnline("in-1")
	ts.waitOnline("out-1")
	create := func(token, body string) envelope {
		return ts.do("POST", "/api/tokens", token, strings.NewReader(body))
	}
	var made struct {
		Name      string   `json:"name"`
		Scopes    []string `json:"scopes"`
		Secret    string   `json:"secret"`
		CreatedBy string   `json:"created_by"`
		ExpiresAt int64    `json:"expires_at"`
		State     string   `json:"state"`
	}
	e := create(opToken, `{"name":"ci","scopes":["exec:run","agents:read"],"selector":"env=prod","ttl":"720h"}`)
	if e.status != 200 || json.Unmarshal(e.Payload, &made) != nil || !strings.HasPrefix(made.Secret, "aft_") || len(made.Secret) != 47 ||
		made.CreatedBy != "ops" || made.State != "active" || made.ExpiresAt < time.Now().Add(719*time.Hour).Unix() {
		t.Fatalf("create: %d %s", e.status, e.body)
	}
	for _, path := range []string{"/api/tokens", "/api/tokens/ci"} {
		if e := ts.do("GET", path, opToken, nil); e.status != 200 || strings.Contains(string(e.body), made.Secret) || strings.Contains(string(e.body), "secret") ||
			!strings.Contains(string(e.body), `"name":"ci"`) {
			t.Errorf("GET %s: %d %s", path, e.status, e.body)
		}
	}
	if e := ts.do("GET", "/api/foo/in-1", made.Secret, nil); e.status != 200 {
		t.Errorf("foo with the new token: %d %q", e.status, e.Msg)
	}
	if e := ts.do("GET", "/api/foo/out-1", made.Secret, nil); e.status != 404 || e.Msg != "not found: agent" {
		t.Errorf("foo outside the selector: %d %q", e.status, e.Msg)
	}
	if e := ts.do("PUT", "/api/agents/in-1/labels", made.Secret, strings.NewReader(`{"labels":{}}`)); e.status != 403 {
		t.Errorf("labels without agents:write: %d %q", e.status, e.Msg)
	}
	if e := ts.do("GET", "/api/tokens", made.Secret, nil); e.status != 403 {
		t.Errorf("token management without admin: %d", e.status)
	}
	for _, tc := range []struct{ body, msg string }{
		{`{"name":"ci","scopes":["agents:read"]}`, "conflict: a token named ci exists"},
		{`{"name":"ops","scopes":["agents:read"]}`, "conflict: a configured token is named ops"},
		{`{"scopes":["agents:read"]}`, "missing parameter name"},
		{`{"name":"a b","scopes":["agents:read"]}`, "invalid parameter name"},
		{`{"name":"x"}`, "missing parameter scopes"},
		{`{"name":"x","scopes":["root"]}`, `invalid parameter scopes: unknown scope "root"`},
		{`{"name":"x","scopes":["admin"],"selector":"env=prod"}`, "invalid parameter scopes: scope admin is fleet-wide"},
		{`{"name":"x","scopes":["exec:run"],"selector":"a,,b"}`, "invalid parameter selector"},
		{`{"name":"x","scopes":["exec:run"],"ttl":"-1h"}`, "invalid parameter ttl"},
		{`{"name":"x","scopes":["exec:run"],"ttl":"soon"}`, "invalid parameter ttl"},
		{`{"name":"x","scopes":["exec:run"],"expires_at":1}`, "invalid parameter expires_at"},
		{`{"name":"x","scopes":["exec:run"],"expires_at":99999999999,"ttl":60}`, "invalid parameter ttl: give expires_at or ttl, not both"},
	} {
		if e := create(opToken, tc.body); e.status/100 != 4 || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("create %s: %d %q, want %q", tc.body, e.status, e.Msg, tc.msg)
		}
	}
	// Revocation: the next request fails.
	if e := ts.do("DELETE", "/api/tokens/ci", opToken, nil); e.status != 200 || !strings.Contains(string(e.Payload), `"state":"revoked"`) {
		t.Fatalf("revoke: %d %s", e.status, e.body)
	}
	if e := ts.do("GET", "/api/agents", made.Secret, nil); e.status != 401 || e.Msg != "unauthorized: token revoked" {
		t.Errorf("revoked token: %d %q", e.status, e.Msg)
	}
	if e := ts.do("DELETE", "/api/tokens/ops", opToken, nil); e.status != 409 {
		t.Errorf("revoke a configured token: %d %q", e.status, e.Msg)
	}
	// Expiry (runtime tokens: TestRuntimeTokenExpiry with a clock); a
	// configured token past its expiry.
	if e := ts.do("GET", "/api/agents", "expired-token-0123456789", nil); e.status != 401 || e.Msg != "unauthorized: token expired" {
		t.Errorf("expired configured token: %d %q", e.status, e.Msg)
	}
	// A made-up secret of the runtime form is just invalid.
	if e := ts.do("GET", "/api/agents", "aft_"+strings.Repeat("A", 43), nil); e.status != 401 || e.Msg != "unauthorized: invalid token" {
		t.Errorf("unknown runtime secret: %d %q", e.status, e.Msg)
	}
	// Creation and revocation are audited; the secret is not in the log.
	e = ts.do("GET", "/api/audit?size=1000", opToken, nil)
	if !strings.Contains(string(e.body), `"action":"POST /api/tokens"`) || !strings.Contains(string(e.body), `"action":"DELETE /api/tokens/{name}"`) ||
		strings.Contains(string(e.body), "aft_") {
		t.Errorf("audit: %s", e.body)
	}
}

// TestRuntimeTokensRestart: runtime tokens survive a restart.
func TestRuntimeTokensRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})
	e := ts.do("POST", "/api/tokens", opToken, strings.NewReader(`{"name":"keep","scopes":["agents:read"]}`))
	var made struct{ Secret string }
	if e.status != 200 || json.Unmarshal(e.Payload, &made) != nil {
		t.Fatalf("create: %d %s", e.status, e.body)
	}
	ts.stop()
	ts2 := startServer(t, serverSpec{dataDir: dir})
	if e := ts2.do("GET", "/api/whoami", made.Secret, nil); e.status != 200 || !strings.Contains(string(e.Payload), `"name":"keep"`) || !strings.Contains(string(e.Payload), `"read_only":true`) {
		t.Errorf("whoami after restart: %d %s", e.status, e.body)
	}
}
