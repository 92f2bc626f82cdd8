package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"
)

// An agent-defined message type reaches the agent through
// POST /api/agents/{id}/call and its reply comes back with its payload keys.
func TestCallAgentDefinedType(t *testing.T) {
	ts := startServer(t, serverSpec{})
	const typeEcho = 200
	startAgent(t, ts.addr, agentSpec{id: "dev-1", name: "hello-agent", setup: func(rt *libagent.Runtime) {
		rt.Handle(typeEcho, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			var in struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(req.Extra["echo"], &in); err != nil {
				return errors.New("echo: bad payload")
			}
			if in.Text == "fail" {
				return errors.New("echo: asked to fail")
			}
			rep := protocol.Reply(req, typeEcho)
			rep.Extra = map[string]json.RawMessage{"echo": json.RawMessage(`{"text":"hello, ` + in.Text + `"}`)}
			return w.Reply(ctx, rep)
		})
	}})
	ts.waitOnline("dev-1")

	e := ts.do("POST", "/api/agents/dev-1/call", opToken, strings.NewReader(`{"type":200,"payload":{"echo":{"text":"world"}}}`))
	if e.status != 200 || string(e.Payload) != `{"type":200,"payload":{"echo":{"text":"hello, world"}}}` {
		t.Fatalf("call: %d %q %s", e.status, e.Msg, e.Payload)
	}

	// curl -d labels the body as a form; it is JSON all the same.
	req, err := http.NewRequest("POST", ts.url+"/api/agents/dev-1/call?timeout=5", strings.NewReader(`{"type":200,"payload":{"echo":{"text":"form"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+opToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"text":"hello, form"`) {
		t.Fatalf("call with a form content type: %d %s", resp.StatusCode, b)
	}

	for _, tc := range []struct {
		name, path, token, body string
		code                    int
		msg                     string
	}{
		{"agent error", "/api/agents/dev-1/call", opToken, `{"type":200,"payload":{"echo":{"text":"fail"}}}`, 503, "echo: asked to fail"},
		{"unhandled type", "/api/agents/dev-1/call", opToken, `{"type":201}`, 503, "unsupported message type 201"},
		{"built-in type", "/api/agents/dev-1/call", opToken, `{"type":10,"payload":{"exec":{"cmd":"id"}}}`, 400, "invalid parameter type: must be an agent-defined type between 200 and 999"},
		{"type too big", "/api/agents/dev-1/call", opToken, `{"type":1000}`, 400, "invalid parameter type: must be an agent-defined type between 200 and 999"},
		{"missing type", "/api/agents/dev-1/call", opToken, `{}`, 400, "invalid parameter type: must be an agent-defined type between 200 and 999"},
		{"envelope key", "/api/agents/dev-1/call", opToken, `{"type":200,"payload":{"tid":"x"}}`, 400, `invalid parameter payload: extra key "tid" is a key of the envelope`},
		{"payload key of a built-in", "/api/agents/dev-1/call", opToken, `{"type":200,"payload":{"exec":{}}}`, 400, `invalid parameter payload: extra key "exec" is a key of the envelope`},
		{"not JSON", "/api/agents/dev-1/call", opToken, `{`, 400, "invalid JSON body"},
		{"unknown field", "/api/agents/dev-1/call", opToken, `{"type":200,"x":1}`, 400, "unknown parameter x"},
		{"unknown agent", "/api/agents/nobody/call", opToken, `{"type":200}`, 404, "not found: agent"},
		{"bad timeout", "/api/agents/dev-1/call?timeout=x", opToken, `{"type":200}`, 400, "invalid parameter timeout"},
		{"read-only token", "/api/agents/dev-1/call", roToken, `{"type":200}`, 403, "forbidden: the token lacks scope exec:run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ts.do("POST", tc.path, tc.token, strings.NewReader(tc.body))
			if e.status != tc.code || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("%d %q, want %d %q", e.status, e.Msg, tc.code, tc.msg)
			}
		})
	}
}
