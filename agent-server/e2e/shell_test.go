package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialShell tries GET /api/exec/{id}/shell and returns the refusal's HTTP
// status and msg (the tests here are all refused before the upgrade).
func (ts *testServer) dialShell(t *testing.T, id, query, token string) (int, string) {
	t.Helper()
	u := "ws://" + ts.addr + "/api/exec/" + id + "/shell"
	if query != "" {
		u += "?" + query
	}
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(u, hdr)
	if err == nil {
		ws.Close()
		t.Fatalf("%s: upgraded, want a refusal", u)
	}
	if resp == nil {
		t.Fatalf("%s: %v", u, err)
	}
	b, _ := io.ReadAll(resp.Body)
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil || e.Code != resp.StatusCode {
		t.Errorf("%s: %d, body %q is not the envelope", u, resp.StatusCode, b)
	}
	return resp.StatusCode, e.Msg
}

// TestShellRefusals: the shell route's answers before the upgrade that
// need no real exec-agent (the rest is in exec-agent/e2e): unknown agent,
// wrong type, an exec-agent without pty.v1 (as a jkstack 1.5 one), bad
// parameters, read-only and missing tokens, audit of the refused open.
func TestShellRefusals(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "legacy", name: "exec-agent"}) // libagent without the pty handlers
	startAgent(t, ts.addr, agentSpec{id: "ex1"})
	ts.waitOnline("legacy")
	ts.waitOnline("ex1")
	tests := []struct {
		id, query, token string
		status           int
		msg              string
	}{
		{"nope", "", opToken, 404, "not found: agent"},
		{"ex1", "", opToken, 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"legacy", "", opToken, 409, "conflict: agent legacy does not support interactive shells: it does not announce pty.v1 (jkstack 1.5 exec-agents and exec-agents on Windows do not)"},
		{"legacy", "cols=abc", opToken, 400, "invalid parameter cols"},
		{"legacy", "cols=4097", opToken, 400, "invalid parameter cols"},
		{"legacy", "rows=0", opToken, 400, "invalid parameter rows"},
		{"legacy", "user=a%20b", opToken, 400, "invalid parameter user: contains a space, control character, '/' or ':'"},
		{"legacy", "cmd=a%00b", opToken, 400, "invalid parameter cmd: longer than 16384 bytes or contains a NUL byte"},
		{"legacy", "", roToken, 403, "forbidden: the token lacks scope exec:run"},
		{"legacy", "", "", 401, "unauthorized: missing bearer token"},
		{"legacy", "", "wrong", 401, "unauthorized: invalid token"},
	}
	for _, tc := range tests {
		status, msg := ts.dialShell(t, tc.id, tc.query, tc.token)
		if status != tc.status || !strings.HasPrefix(msg, tc.msg) {
			t.Errorf("%s?%s: %d %q, want %d %q", tc.id, tc.query, status, msg, tc.status, tc.msg)
		}
	}
	// The open that reached the agent's checks is audited with its refusal
	// (the calls refused earlier have entries of their own).
	e := ts.get("/api/audit?action=GET%20/api/exec/%7Bid%7D/shell&target=legacy&size=100")
	var list []struct {
		Actor  string `json:"actor"`
		Status int    `json:"status"`
		Result string `json:"result"`
	}
	if err := json.Unmarshal(e.Payload, &list); err != nil || len(list) != 7 {
		t.Errorf("audit %s: %+v %v (want an entry per authenticated call: 6 by ops, 1 by grafana)", e.Payload, list, err)
	}
	conflicts := 0
	for _, a := range list {
		if a.Status == 409 && a.Actor == "ops" && strings.HasPrefix(a.Result, "conflict: agent legacy") {
			conflicts++
		}
	}
	if conflicts != 1 {
		t.Errorf("audit %s: %d entries of the refused open, want 1", e.Payload, conflicts)
	}
}
