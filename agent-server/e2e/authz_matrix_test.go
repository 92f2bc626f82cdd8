package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/config"
)

// matrixCall is how the authorization matrix calls one operation: a
// concrete path (agent a1 is an example-agent, ids that do not exist give
// 404s) and a body.
type matrixCall struct {
	path string
	body string
	// ownCredential: the route checks a credential of its own (enrollment
	// token, transfer id), not API tokens: every caller must get the same
	// answer.
	ownCredential bool
}

// matrixCalls has one entry per operation of the OpenAPI document: an
// operation missing here fails TestAuthzMatrix.
var matrixCalls = map[string]matrixCall{
	"GET /healthz":                              {path: "/healthz"},
	"GET /readyz":                               {path: "/readyz"},
	"GET /metrics":                              {path: "/metrics"},
	"GET /metrics/hosts":                        {path: "/metrics/hosts"},
	"GET /ws/agent":                             {path: "/ws/agent", ownCredential: true},
	"GET /docs/":                                {path: "/docs/"},
	"GET /ui/":                                  {path: "/ui/"},
	"GET /{$}":                                  {path: "/"},
	"GET /api/metrics/{id}/history":             {path: "/api/metrics/a1/history"},
	"POST /api/logging/config":                  {path: "/api/logging/config", body: `{"pid":"matrix","type":"logtail","ids":"a1","dir":"/var/log/*.log"}`},
	"POST /api/logging/remove":                  {path: "/api/logging/remove?pid=nope"},
	"POST /api/logging/start":                   {path: "/api/logging/start?pid=nope"},
	"POST /api/logging/stop":                    {path: "/api/logging/stop?pid=nope"},
	"GET /api/logging/task_info":                {path: "/api/logging/task_info?pid=nope"},
	"GET /api/logging/projects":                 {path: "/api/logging/projects"},
	"GET /api/logging/query":                    {path: "/api/logging/query?pid=nope"},
	"GET /api/logging/tail":                     {path: "/api/logging/tail?pid=nope"},
	"GET /api/openapi.json":                     {path: "/api/openapi.json"},
	"GET /api/openapi.yaml":                     {path: "/api/openapi.yaml"},
	"GET /api/info/server":                      {path: "/api/info/server"},
	"GET /api/whoami":                           {path: "/api/whoami"},
	"GET /api/cluster":                          {path: "/api/cluster"},
	"POST /api/cluster/drain":                   {path: "/api/cluster/drain"},
	"GET /api/agents":                           {path: "/api/agents"},
	"GET /api/agents/{id}":                      {path: "/api/agents/a1"},
	"POST /api/agents/upgrade":                  {path: "/api/agents/upgrade", body: `{"selector":{"ids":["a1"]},"agent_type":"example-agent","package":"nope"}`},
	"PUT /api/agents/{id}/labels":               {path: "/api/agents/a1/labels", body: `{"labels":{"k":"v"}}`},
	"DELETE /api/agents/{id}/secret":            {path: "/api/agents/a1/secret"},
	"GET /api/agents/{id}/logs":                 {path: "/api/agents/a1/logs"},
	"GET /api/agents/{id}/log/download":         {path: "/api/agents/a1/log/download?files=a.log"},
	"GET /api/foo/{id}":                         {path: "/api/foo/a1"},
	"POST /api/agents/{id}/call":                {path: "/api/agents/a1/call", body: `{"type":200}`},
	"GET /api/audit":                            {path: "/api/audit?size=1"},
	"GET /api/audit/export":                     {path: "/api/audit/export?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z"},
	"GET /api/tokens":                           {path: "/api/tokens"},
	"POST /api/tokens":                          {path: "/api/tokens", body: `{"name":"made-by-matrix","scopes":["agents:read"],"ttl":"1h"}`},
	"GET /api/tokens/{name}":                    {path: "/api/tokens/nope"},
	"DELETE /api/tokens/{name}":                 {path: "/api/tokens/nope"},
	"POST /api/exec/{id}/run":                   {path: "/api/exec/a1/run", body: `{"cmd":"true"}`},
	"GET /api/exec/{id}/status/{pid}":           {path: "/api/exec/a1/status/1"},
	"GET /api/exec/{id}/pty/{pid}":              {path: "/api/exec/a1/pty/1"},
	"DELETE /api/exec/{id}/kill/{pid}":          {path: "/api/exec/a1/kill/1"},
	"GET /api/exec/{id}/ps":                     {path: "/api/exec/a1/ps"},
	"GET /api/exec/{id}/shell":                  {path: "/api/exec/a1/shell"},
	"GET /api/file/{id}/ls":                     {path: "/api/file/a1/ls?dir=/"},
	"GET /api/file/{id}/download":               {path: "/api/file/a1/download?dir=/etc/hostname"},
	"POST /api/file/{id}/upload":                {path: "/api/file/a1/upload"},
	"POST /api/script/{id}/run":                 {path: "/api/script/a1/run"},
	"GET /api/transfer/{xid}":                   {path: "/api/transfer/nope", ownCredential: true},
	"PUT /api/transfer/{xid}":                   {path: "/api/transfer/nope", ownCredential: true},
	"GET /api/metrics/{id}/static":              {path: "/api/metrics/a1/static"},
	"GET /api/metrics/{id}/dynamic":             {path: "/api/metrics/a1/dynamic"},
	"GET /api/metrics/{id}/dynamic/usage":       {path: "/api/metrics/a1/dynamic/usage"},
	"GET /api/metrics/{id}/dynamic/process":     {path: "/api/metrics/a1/dynamic/process"},
	"GET /api/metrics/{id}/dynamic/connections": {path: "/api/metrics/a1/dynamic/connections"},
	"GET /api/metrics/{id}/dynamic/temps":       {path: "/api/metrics/a1/dynamic/temps"},
	"GET /api/metrics/{id}/status":              {path: "/api/metrics/a1/status"},
	"PUT /api/metrics/{id}/status":              {path: "/api/metrics/a1/status", body: `{"jobs":[]}`},
	"PUT /api/metrics/status":                   {path: "/api/metrics/status", body: `{"start":false}`},
	"POST /api/tasks":                           {path: "/api/tasks", body: `{"selector":{"ids":["a1"]},"cmd":"true"}`},
	"POST /api/install/run":                     {path: "/api/install/run", body: `{"id":"a1","url":"https://example.com/a.deb"}`},
	"GET /api/install/status":                   {path: "/api/install/status?task_id=nope"},
	"GET /api/tasks":                            {path: "/api/tasks"},
	"GET /api/tasks/{id}":                       {path: "/api/tasks/nope"},
	"GET /api/tasks/{id}/agents/{agent}/output": {path: "/api/tasks/nope/agents/a1/output"},
	"GET /api/tasks/{id}/events":                {path: "/api/tasks/nope/events"},
	"DELETE /api/tasks/{id}":                    {path: "/api/tasks/nope"},
	"POST /api/layout/run":                      {path: "/api/layout/run"},
	"GET /api/layout/{id}":                      {path: "/api/layout/nope"},
	"DELETE /api/layout/{id}":                   {path: "/api/layout/nope"},
	"GET /api/layout/{id}/file":                 {path: "/api/layout/nope/file?agent=a1&path=x"},
	"GET /api/packages":                         {path: "/api/packages"},
	"GET /api/packages/{name}":                  {path: "/api/packages/nope.deb"},
	"GET /api/packages/{name}/download":         {path: "/api/packages/nope.deb/download"},
	"PUT /api/packages/{name}":                  {path: "/api/packages/matrix.deb", body: "!<arch>\ndebian-binary   "},
	"DELETE /api/packages/{name}":               {path: "/api/packages/nope.deb"},
}

// matrixImplies is what a scope grants beyond itself, written out here
// independently of authz's table.
var matrixImplies = map[authz.Scope][]authz.Scope{
	authz.ExecReadAny: {authz.ExecRead},
}

// matrixToken names the token holding only scope s.
func matrixToken(s authz.Scope) (name, secret string) {
	n := "only-" + strings.ReplaceAll(string(s), ":", ".")
	return n, n + "-secret-0123456789"
}

// TestAuthzMatrix walks every operation of the OpenAPI document with a
// token for each scope alone and with no token: the rule the document
// states (x-scope, x-audited) is the one the server registered; a token
// holding the scope (or admin, or a scope implying it) is let through (not
// 401/403), any other gets 403, no token 401 (public routes: never 401/403
// from the API, and the same answer for everyone when the route checks a
// credential of its own); and every call of an audited operation that
// passed authentication is in the audit log, no other.
func TestAuthzMatrix(t *testing.T) {
	scopes := authz.All()
	ts := startServer(t, serverSpec{mod: func(c *config.Config) {
		c.API.RateLimit = 0
		for _, in := range scopes {
			name, secret := matrixToken(in.Name)
			c.API.Scoped = append(c.API.Scoped, config.ScopedToken{Name: name, Secret: secret, Scopes: []string{string(in.Name)}})
		}
	}})
	startAgent(t, ts.addr, agentSpec{id: "a1"})
	ts.waitOnline("a1")

	doc := ts.srv.API().Doc()
	rules := ts.srv.API().Rules()
	// Audited request ids, expected in the log or not.
	wantAudited, wantNotAudited := map[string]string{}, map[string]string{}
	n := 0
	for _, op := range doc.Operations() {
		call, ok := matrixCalls[op]
		if !ok {
			t.Errorf("%s: not in matrixCalls: give it a call so that its authorization is tested", op)
			continue
		}
		auth, ok := doc.Auth(op)
		if !ok {
			t.Errorf("%s: no authorization rule in the document", op)
			continue
		}
		rule, registered := rules[op]
		switch {
		case !registered && op != "GET /ws/agent":
			t.Errorf("%s: in the document, not registered with Handle", op)
		case auth.Scope == "public" && registered && !rule.Public,
			auth.Scope == "authenticated" && !rule.Authenticated,
			auth.Scope != "public" && auth.Scope != "authenticated" && string(rule.Scope) != auth.Scope:
			t.Errorf("%s: the document says x-scope %s, the server registered %+v", op, auth.Scope, rule)
		case registered && rule.Audited != auth.Audited:
			t.Errorf("%s: the document says x-audited %v, the server audits %v", op, auth.Audited, rule.Audited)
		}
		method, _, _ := strings.Cut(op, " ")
		var first int
		for i, caller := range append([]authz.Scope{""}, scopeNames(scopes)...) {
			n++
			reqID := fmt.Sprintf("matrix-%d", n)
			token := ""
			if caller != "" {
				_, token = matrixToken(caller)
			}
			status, msg := matrixDo(t, ts, method, call, token, reqID)
			want := ""
			switch {
			case call.ownCredential:
				if i == 0 {
					first = status
				} else if status != first {
					want = fmt.Sprintf("%d (as without a token: the route checks its own credential)", first)
				}
			case auth.Scope == "public":
				if status == 401 || status == 403 {
					want = "not 401/403 (public)"
				}
			case caller == "":
				if status != 401 {
					want = "401"
				}
			case auth.Scope == "authenticated" || matrixGrants(caller, authz.Scope(auth.Scope)):
				if status == 401 || status == 403 {
					want = "not 401/403"
				}
			default:
				if status != 403 {
					want = "403"
				}
			}
			if want != "" {
				t.Errorf("%s as %q: %d %q, want %s", op, caller, status, msg, want)
			}
			if auth.Audited && caller != "" {
				wantAudited[reqID] = fmt.Sprintf("%s as %q (%d)", op, caller, status)
			} else {
				wantNotAudited[reqID] = fmt.Sprintf("%s as %q (%d)", op, caller, status)
			}
		}
	}
	for _, op := range slices.Sorted(maps.Keys(matrixCalls)) {
		if !slices.Contains(doc.Operations(), op) {
			t.Errorf("matrixCalls has %s, which the document does not", op)
		}
	}

	// The audit log, through the export.
	_, admin := matrixToken(authz.Admin)
	req, _ := http.NewRequest("GET", ts.url+"/api/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jsonl; charset=utf-8" {
		t.Fatalf("export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	logged := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			RequestID string `json:"request_id"`
			Actor     string `json:"actor"`
			Remote    string `json:"remote"`
			Status    int    `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Bytes(), err)
		}
		if strings.HasPrefix(e.RequestID, "matrix-") && (e.Actor == "" || e.Remote == "" || e.Status == 0) {
			t.Errorf("audit entry without actor, remote or status: %s", sc.Bytes())
		}
		logged[e.RequestID] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for id, what := range wantAudited {
		if !logged[id] {
			t.Errorf("not audited: %s", what)
		}
	}
	for id, what := range wantNotAudited {
		if logged[id] {
			t.Errorf("audited, but the document says it is not: %s", what)
		}
	}
	t.Logf("%d calls, %d audited", n, len(wantAudited))
}

func scopeNames(in []authz.Info) []authz.Scope {
	out := make([]authz.Scope, len(in))
	for i, s := range in {
		out[i] = s.Name
	}
	return out
}

// matrixGrants reports whether a token holding only caller may call a
// route needing need.
func matrixGrants(caller, need authz.Scope) bool {
	return caller == need || caller == authz.Admin || slices.Contains(matrixImplies[caller], need)
}

func matrixDo(t *testing.T, ts *testServer, method string, call matrixCall, token, reqID string) (int, string) {
	t.Helper()
	var body io.Reader
	if call.body != "" {
		body = strings.NewReader(call.body)
	}
	req, err := http.NewRequest(method, ts.url+call.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", reqID)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if call.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, call.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct{ Msg string }
	if bytes.HasPrefix(b, []byte(`{"code"`)) {
		_ = json.Unmarshal(b, &e)
	}
	return resp.StatusCode, e.Msg
}
