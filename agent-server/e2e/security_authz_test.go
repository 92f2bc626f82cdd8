//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/config"

	"github.com/agentfleet/jkframe/eventually"
)

// Tokens of the security tests beside opToken (ops, admin) and roToken
// (grafana, read-only).
const (
	op2Token = "operator2-token-0123456789"
)

// startSecurityServer is a server with two operator tokens ("ops",
// "ops2") and a read-only one ("grafana"), and one real exec-agent (r0)
// running as this process's user.
func startSecurityServer(t *testing.T) *testServer {
	t.Helper()
	ts := startServer(t, serverSpec{mod: func(c *config.Config) {
		c.API.Tokens = append(c.API.Tokens, "ops2:"+op2Token)
	}})
	realAgents(t, ts, 1)
	return ts
}

// auditEntries returns the audit entries of action (a route pattern) as
// raw JSON objects, newest first.
func (ts *testServer) auditEntries(action string) []map[string]any {
	ts.t.Helper()
	e := ts.do("GET", "/api/audit?size=1000&action="+url.QueryEscape(action), opToken, nil)
	if e.status != 200 {
		ts.t.Fatalf("audit: %d %s", e.status, e.body)
	}
	var out []map[string]any
	if err := json.Unmarshal(e.Payload, &out); err != nil {
		ts.t.Fatal(err)
	}
	return out
}

// TestSecurityHole2ReadOnlyReadsFiles: issue #13 hole 2. A read-only token
// read any file of a host as root (download, symlinks included) and listed
// any directory, and neither was audited. Now the read-only token lacks
// files:read (403, audited as refused) and an allowed read is audited with
// token, agent, route, outcome and remote address.
func TestSecurityHole2ReadOnlyReadsFiles(t *testing.T) {
	ts := startSecurityServer(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "shadow")
	if err := os.WriteFile(secret, []byte("root:$6$SECRET-HASH:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "innocent.txt")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/api/file/r0/download?dir=" + url.QueryEscape(secret),
		"/api/file/r0/download?dir=" + url.QueryEscape(link),
		"/api/file/r0/ls?dir=" + url.QueryEscape(dir),
	} {
		e := ts.do("GET", path, roToken, nil)
		if e.status != 403 || strings.Contains(string(e.body), "SECRET-HASH") || strings.Contains(string(e.body), "shadow") {
			t.Errorf("read-only GET %s: %d %.200s, want 403 without the content", path, e.status, e.body)
		}
	}
	// The operator may; the read is audited.
	e := ts.do("GET", "/api/file/r0/download?dir="+url.QueryEscape(secret), opToken, nil)
	if e.status != 200 || !strings.Contains(string(e.body), "SECRET-HASH") {
		t.Fatalf("operator download: %d %.200s", e.status, e.body)
	}
	var okSeen, refusedSeen bool
	for _, a := range ts.auditEntries("GET /api/file/{id}/download") {
		if a["target"] != "r0" || a["agent"] != "r0" || !strings.HasPrefix(fmt.Sprint(a["remote"]), "127.0.0.1:") {
			t.Errorf("download audit entry %v: want target and agent r0 and a remote address", a)
		}
		switch {
		case a["actor"] == "ops" && a["result"] == "ok" && a["status"] == float64(200):
			okSeen = true
		case a["actor"] == "grafana" && a["status"] == float64(403):
			refusedSeen = true
		}
	}
	if !okSeen || !refusedSeen {
		t.Errorf("download audit: operator's read %v, read-only refusal %v; want both", okSeen, refusedSeen)
	}
	if got := ts.auditEntries("GET /api/file/{id}/ls"); len(got) == 0 || got[0]["actor"] != "grafana" || got[0]["status"] != float64(403) {
		t.Errorf("ls audit: %v", got)
	}
}

// TestSecurityHole3SharedPtyCursor: issue #13 hole 3. GET .../pty/{pid}
// handed out "output since the previous call" with one cursor for
// everyone, so another reader consumed the operator's output. Now each
// token has its own cursor (and ?offset= reads from a given position,
// X-Next-Offset names the next), and reading the output of another
// token's command needs exec:read-any, which read-only tokens lack.
func TestSecurityHole3SharedPtyCursor(t *testing.T) {
	ts := startSecurityServer(t)
	rep := ts.run("r0", map[string]any{"cmd": "sh", "args": []string{"-c", "echo SECRET-pty-7"}, "result": false})
	ts.waitDone("r0", rep.PID)
	pty := fmt.Sprintf("/api/exec/r0/pty/%d", rep.PID)

	// The read-only token may not read the operator's output.
	if e := ts.do("GET", pty, roToken, nil); e.status != 403 || strings.Contains(string(e.body), "SECRET") {
		t.Errorf("read-only pty: %d %q, want 403", e.status, e.body)
	}
	// Another admin token reads it with its own cursor...
	if e := ts.do("GET", pty, op2Token, nil); e.status != 200 || !strings.Contains(string(e.body), "SECRET-pty-7") {
		t.Fatalf("ops2 pty: %d %q", e.status, e.body)
	}
	if e := ts.do("GET", pty, op2Token, nil); e.status != 200 || len(e.body) != 0 {
		t.Errorf("ops2 second pty: %d %q, want nothing new", e.status, e.body)
	}
	// ...and the operator still gets all of it.
	e := ts.do("GET", pty, opToken, nil)
	if e.status != 200 || !strings.Contains(string(e.body), "SECRET-pty-7") {
		t.Fatalf("operator pty after another reader: %d %q, want the output", e.status, e.body)
	}
	next := e.header.Get("X-Next-Offset")
	if next != fmt.Sprint(len(e.body)) {
		t.Errorf("X-Next-Offset = %q, want %d", next, len(e.body))
	}
	// An explicit offset reads from there and moves no cursor.
	e = ts.do("GET", pty+"?offset=7", opToken, nil)
	if e.status != 200 || !strings.HasPrefix(string(e.body), "pty-7") || e.header.Get("X-Next-Offset") != next {
		t.Errorf("offset=7: %d %q next %q", e.status, e.body, e.header.Get("X-Next-Offset"))
	}
	if e := ts.do("GET", pty+"?offset=-1", opToken, nil); e.status != 400 || !strings.Contains(e.Msg, "offset") {
		t.Errorf("offset=-1: %d %q", e.status, e.Msg)
	}
	// Every read is audited, the refused one too.
	eventually.Within(t, 30*time.Second, "pty audit entries", func() bool { return len(ts.auditEntries("GET /api/exec/{id}/pty/{pid}")) >= 5 })
	refused := false
	for _, a := range ts.auditEntries("GET /api/exec/{id}/pty/{pid}") {
		refused = refused || a["actor"] == "grafana" && a["status"] == float64(403)
	}
	if !refused {
		t.Error("the refused read-only pty read is not audited")
	}
}
