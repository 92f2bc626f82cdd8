//go:build linux

package e2e

// Hostile clients against the real server (issue #13, items 1, 4, 5 and 6):
// each test reproduces one hole found by a black-box review and checks
// that it stays closed.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
)

// impostorCome connects to /ws/agent as id with the given caps, secret
// and token ("" = no Authorization header) and returns the handshake the
// server answered, with the connection (closed at the end of the test).
func impostorCome(t *testing.T, ts *testServer, token string, come *protocol.Come) (*protocol.Handshake, *websocket.Conn) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+"/ws/agent", h)
	if err != nil {
		t.Fatalf("dial: %v %v", resp, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	b, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Come: come})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read handshake: %v", err)
	}
	m, err := protocol.Decode(data)
	if err != nil || m.Handshake == nil {
		t.Fatalf("first frame is not a handshake: %s (%v)", data, err)
	}
	return m.Handshake, c
}

// TestHostileAgentImpersonation: with the enrollment token (or, under
// allow_legacy_agents, without one), a client that leaves auth.v1 out of
// its caps must not take over the id of an agent that has a secret while
// that agent is offline: no session, no commands, no rewritten labels or
// version.
func TestHostileAgentImpersonation(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "legacy off"
		if legacy {
			name = "legacy on"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, serverSpec{mod: func(c *config.Config) { c.AllowLegacyAgents = legacy }})
			real := startAgent(t, ts.addr, agentSpec{name: "exec-agent", id: "web-1", labels: []string{"env=prod"}})
			ts.waitOnline("web-1")
			real.stop(t)
			eventually(t, 10*time.Second, "web-1 offline", func() bool {
				for _, a := range ts.agents("online=false") {
					if a.ID == "web-1" {
						return true
					}
				}
				return false
			})

			attempts := []struct {
				name  string
				token string
				caps  []string
			}{
				{"token, no caps", agentToken, nil},
				{"token, empty caps", agentToken, []string{}},
				{"token, ack and stream", agentToken, []string{protocol.CapAck, protocol.CapStream}},
				{"token, auth.v1 without secret", agentToken, []string{protocol.CapAuth, protocol.CapAck}},
			}
			if legacy {
				attempts = append(attempts, struct {
					name  string
					token string
					caps  []string
				}{"no token, no caps", "", nil})
			}
			for _, a := range attempts {
				come := &protocol.Come{ID: "web-1", Name: "exec-agent", Version: "6.6.6", OS: "linux", Caps: a.caps,
					Labels: map[string]string{"env": "pwned"}}
				hs, c := impostorCome(t, ts, a.token, come)
				if hs.OK {
					t.Errorf("%s: impostor accepted", a.name)
				} else if hs.Msg == "" {
					t.Errorf("%s: refusal without a message", a.name)
				}
				// The command an operator sends now must not reach it.
				e := ts.json("POST", "/api/exec/web-1/run", map[string]any{"cmd": "id", "auth": "sudo", "user": "root", "pass": "hunter2", "timeout": 1})
				if e.status != http.StatusNotFound {
					t.Errorf("%s: exec on web-1 while only the impostor tried: %d %s", a.name, e.status, e.Msg)
				}
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				for {
					_, data, err := c.ReadMessage()
					if err != nil {
						break
					}
					if strings.Contains(string(data), "hunter2") || strings.Contains(string(data), `"type":10`) {
						t.Errorf("%s: the impostor received a command: %s", a.name, data)
					}
				}
				c.Close()
			}
			got := ts.get("/api/agents/web-1")
			ag := decode[apiAgent](t, got)
			if ag.Version != "1.2.3" || ag.Labels["env"] != "prod" || ag.IsOnline {
				t.Errorf("web-1 after the impostors: version %q, labels %v, online %v", ag.Version, ag.Labels, ag.IsOnline)
			}
		})
	}
}

// TestHostileLayoutPullDst: a pull step whose dst leaves the task's result
// area is refused when the archive is checked (400 naming the step),
// before anything runs, instead of being accepted and failing at run time.
func TestHostileLayoutPullDst(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{name: "exec-agent", id: "ex-1"})
	ts.waitOnline("ex-1")
	for _, dst := range []string{"/etc/cron.d/evil", "../../../evil", "a/../../evil", `C:\evil`, `..\\evil`, "$ID/../../evil", "."} {
		steps := fmt.Sprintf("  - name: grab\n    plugin: file\n    action: pull\n    src: /etc/hostname\n    dst: '%s'\n", dst)
		e := ts.runLayout(t, layoutTar(t, true, mainYAML(steps)), "ids", "ex-1")
		if e.status != http.StatusBadRequest || !strings.Contains(e.Msg, `step 1 "grab"`) || !strings.Contains(e.Msg, "dst") {
			t.Errorf("dst %q: %d %q, want 400 naming step 1 and dst", dst, e.status, e.Msg)
		}
	}
}
