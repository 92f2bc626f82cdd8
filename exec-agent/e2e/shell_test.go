//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/servertest"
)

// term is a client of GET /api/exec/{id}/shell, as the console and
// agentctl are.
type term struct {
	t    *testing.T
	ws   *websocket.Conn
	resp *http.Response

	mu        sync.Mutex
	out       bytes.Buffer
	exit      *shellFrame // {"type":"exit"}
	errFrame  *shellFrame // {"type":"error"}
	closeCode int         // the server's close code; 0: none (yet)
	done      chan struct{}
}

type shellFrame struct {
	Type string `json:"type"`
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

// dialShell opens a shell session; hdr and protocols are the auth under
// test. On a refused upgrade it returns the HTTP status and the envelope's
// msg.
func (e *env) dialShell(t *testing.T, query string, hdr http.Header, protocols []string) (*term, int, string) {
	t.Helper()
	u := strings.Replace(e.url, "http://", "ws://", 1) + "/api/exec/" + e.agentID + "/shell"
	if query != "" {
		u += "?" + query
	}
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second, Subprotocols: protocols}
	ws, resp, err := d.Dial(u, hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		var env struct{ Msg string }
		_ = json.Unmarshal(b, &env)
		return nil, resp.StatusCode, env.Msg
	}
	tm := &term{t: t, ws: ws, resp: resp, done: make(chan struct{})}
	go tm.read()
	t.Cleanup(func() {
		_ = ws.Close()
		<-tm.done
	})
	return tm, resp.StatusCode, ""
}

// dialShellFree is dialShell for a session that must open once the
// agent's one slot (exec.max_tasks = 1) is free again: the previous
// session's end reaches the agent's task count a moment after its
// processes are gone, later still on a busy machine.
func (e *env) dialShellFree(t *testing.T, query string, hdr http.Header, protocols []string) (*term, int, string) {
	t.Helper()
	var (
		tm     *term
		status int
		msg    string
	)
	eventually.Within(t, 30*time.Second, "the agent's slot to be free", func() bool {
		tm, status, msg = e.dialShell(t, query, hdr, protocols)
		return tm != nil || status != 503 || !strings.Contains(msg, "busy: ")
	})
	return tm, status, msg
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func (tm *term) read() {
	defer close(tm.done)
	for {
		typ, b, err := tm.ws.ReadMessage()
		tm.mu.Lock()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				tm.closeCode = ce.Code
			}
			tm.mu.Unlock()
			return
		}
		switch typ {
		case websocket.BinaryMessage:
			tm.out.Write(b)
		case websocket.TextMessage:
			var f shellFrame
			if err := json.Unmarshal(b, &f); err != nil {
				tm.t.Errorf("text frame %q: %v", b, err)
			}
			switch f.Type {
			case "exit":
				tm.exit = &f
			case "error":
				tm.errFrame = &f
			default:
				tm.t.Errorf("unknown frame %q", b)
			}
		}
		tm.mu.Unlock()
	}
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if err := tm.ws.WriteMessage(websocket.BinaryMessage, []byte(s)); err != nil {
		tm.t.Fatalf("send %q: %v", s, err)
	}
}

func (tm *term) resize(cols, rows int) {
	tm.t.Helper()
	if err := tm.ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"resize","cols":%d,"rows":%d}`, cols, rows)); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *term) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

func (tm *term) expect(s string) {
	tm.t.Helper()
	eventually.Within(tm.t, 20*time.Second, fmt.Sprintf("terminal output %q", s), func() bool { return strings.Contains(tm.output(), s) })
}

// wait waits until the server closed the connection.
func (tm *term) wait() {
	tm.t.Helper()
	select {
	case <-tm.done:
	case <-time.After(30 * time.Second):
		tm.t.Fatalf("the server did not end the session; output %q", tm.output())
	}
}

type auditEntry struct {
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Result string          `json:"result"`
	Detail json.RawMessage `json:"detail"`
}

type shellDetail struct {
	Event    string `json:"event"`
	Remote   string `json:"remote"`
	Cmd      string `json:"cmd"`
	TID      string `json:"tid"`
	Outcome  string `json:"outcome"`
	Code     *int   `json:"code"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
}

// shellAudit returns the shell's audit entries, oldest first.
func (e *env) shellAudit(t *testing.T) []auditEntry {
	t.Helper()
	r := e.api("GET", "/api/audit?size=1000&action="+url.QueryEscape("GET /api/exec/{id}/shell"), nil)
	if r.status != 200 {
		t.Fatalf("audit: %d %s", r.status, r.body)
	}
	var list []auditEntry
	if err := json.Unmarshal(r.Payload, &list); err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list
}

// TestShellRoute drives the WebSocket shell route through the real
// agent-server and the real exec-agent: both auth forms, resize, UTF-8,
// exit codes, a client that closes and one that vanishes (their process
// trees die), the refusals before the upgrade (the agent's too), the
// audit trail, and no token in any log.
func TestShellRoute(t *testing.T) {
	e := newEnv(t, envOptions{agentConf: "exec.max_tasks = 1"})
	proto := []string{"agentfleet.shell.v1"}

	// 1. Authorization header; a command; resize; UTF-8; the exit code.
	tm, status, msg := e.dialShell(t, "cmd=sh&cols=100&rows=30", bearer(apiToken), proto)
	if tm == nil {
		t.Fatalf("dial: %d %s", status, msg)
	}
	if p := tm.resp.Header.Get("Sec-WebSocket-Protocol"); p != "agentfleet.shell.v1" {
		t.Errorf("selected subprotocol %q", p)
	}
	tm.send("stty size\r")
	tm.expect("30 100\r\n")
	tm.resize(120, 40)
	tm.send("stty size; echo h''i\r")
	tm.expect("40 120\r\nhi\r\n")
	tm.send("printf '<%s>\\n' 'h\u00e9 \u2713 \u65e5\u672c'\r")
	tm.expect("<h\u00e9 \u2713 \u65e5\u672c>")
	tm.send("exit 3\r")
	tm.wait()
	if tm.exit == nil || tm.exit.Code != 3 || tm.closeCode != websocket.CloseNormalClosure {
		t.Errorf("end: exit frame %+v, close code %d; want code 3 and 1000", tm.exit, tm.closeCode)
	}

	// 2. The token as a subprotocol (browsers); the login shell; the client
	// closes: the session's processes die.
	tag := fmt.Sprintf("1000.%d", 100000+rand.IntN(800000))
	tm, status, msg = e.dialShellFree(t, "", nil, []string{"agentfleet.shell.v1", "bearer." + apiToken})
	if tm == nil {
		t.Fatalf("dial with the subprotocol token: %d %s", status, msg)
	}
	if p := tm.resp.Header.Get("Sec-WebSocket-Protocol"); p != "agentfleet.shell.v1" {
		t.Errorf("selected subprotocol %q (the token must never be echoed)", p)
	}
	tm.send("echo \"<$0>\"; sleep " + tag + "\r")
	tm.expect("<-")
	eventually.Within(t, 20*time.Second, "the sleep to run", func() bool { return len(procsMatching(t, tag)) > 0 })
	if err := tm.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	tm.wait()
	eventually.Within(t, 20*time.Second, "the session's processes to die", func() bool { return len(procsMatching(t, tag)) == 0 })

	// 3. A client that vanishes without a close frame.
	tag2 := fmt.Sprintf("1000.%d", 100000+rand.IntN(800000))
	tm, status, msg = e.dialShellFree(t, "cmd="+url.QueryEscape("sleep "+tag2), bearer(apiToken), nil)
	if tm == nil {
		t.Fatalf("dial: %d %s", status, msg)
	}
	eventually.Within(t, 20*time.Second, "the sleep to run", func() bool { return len(procsMatching(t, tag2)) > 0 })
	// The agent's one slot (exec.max_tasks = 1) is taken: the agent refuses
	// a second session before the upgrade.
	if tm, status, msg := e.dialShell(t, "", bearer(apiToken), nil); tm != nil || status != 503 || msg != "shell not started: busy: 1 tasks running, limit 1" {
		t.Errorf("second session: %d %q, want 503 busy", status, msg)
	}
	_ = tm.ws.UnderlyingConn().Close()
	eventually.Within(t, 20*time.Second, "the vanished client's processes to die", func() bool { return len(procsMatching(t, tag2)) == 0 })

	// 4. Refusals, all before the upgrade, in the API envelope.
	refusals := []struct {
		name      string
		query     string
		hdr       http.Header
		protocols []string
		status    int
		msg       string
	}{
		{"read-only header", "", bearer(readOnlyToken), proto, 403, "forbidden: the token lacks scope exec:run"},
		{"read-only subprotocol", "", nil, []string{"agentfleet.shell.v1", "bearer." + readOnlyToken}, 403, "forbidden: the token lacks scope exec:run"},
		{"no token", "", nil, proto, 401, "unauthorized: missing bearer token"},
		{"token in the URL is not read", "token=" + apiToken + "&access_token=" + apiToken, nil, proto, 401, "unauthorized: missing bearer token"},
		{"wrong token", "", nil, []string{"agentfleet.shell.v1", "bearer.nope"}, 401, "unauthorized: invalid token"},
		{"bearer without the shell protocol", "", nil, []string{"bearer." + apiToken}, 400, "invalid parameter Sec-WebSocket-Protocol: bearer.<token> must be offered together with agentfleet.shell.v1"},
		{"bad cols", "cols=0", bearer(apiToken), nil, 400, "invalid parameter cols"},
		{"bad rows", "rows=5000", bearer(apiToken), nil, 400, "invalid parameter rows"},
		{"bad user", "user=-root", bearer(apiToken), nil, 400, "invalid parameter user: starts with '-'"},
	}
	for _, tc := range refusals {
		tm, status, msg := e.dialShell(t, tc.query, tc.hdr, tc.protocols)
		if tm != nil || status != tc.status || !strings.HasPrefix(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, msg, tc.status, tc.msg)
		}
	}
	if r := e.api("GET", "/api/exec/"+e.agentID+"/shell", nil); r.status != 426 {
		t.Errorf("plain GET: %d %s, want 426", r.status, r.body)
	}

	// 5. An unknown user: su says so in the terminal and exits 1.
	tm, status, msg = e.dialShellFree(t, "user=no-such-user-e2e", bearer(apiToken), nil)
	if tm == nil {
		t.Fatalf("dial: %d %s", status, msg)
	}
	tm.wait()
	if tm.exit == nil || tm.exit.Code != 1 || !strings.Contains(tm.output(), "no-such-user-e2e") {
		t.Errorf("unknown user: exit %+v, output %q", tm.exit, tm.output())
	}

	// 6. The audit trail: open and end of each session, and the refused
	// opens that reached the agent; the caller's name, never the token or
	// the keystrokes.
	var entries []auditEntry
	eventually.Within(t, 20*time.Second, "the last session's end in the audit", func() bool {
		entries = e.shellAudit(t)
		ends := 0
		for _, a := range entries {
			if bytes.Contains(a.Detail, []byte(`"event":"end"`)) {
				ends++
			}
		}
		return ends == 4
	})
	var opens, ends []shellDetail
	for _, a := range entries {
		if len(a.Detail) == 0 {
			continue // a call refused before the session (scope, parameters): the server's own entry
		}
		if a.Actor != "ops" || a.Target != e.agentID {
			t.Errorf("audit entry %+v: want actor ops, target %s", a, e.agentID)
		}
		for _, secret := range []string{apiToken, "stty", "printf"} {
			if bytes.Contains(a.Detail, []byte(secret)) {
				t.Errorf("audit detail holds %q: %s", secret, a.Detail)
			}
		}
		var d shellDetail
		if err := json.Unmarshal(a.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if d.Remote == "" {
			t.Errorf("audit entry without remote address: %s", a.Detail)
		}
		switch {
		case d.Event == "open" && a.Result == "ok":
			opens = append(opens, d)
		case d.Event == "end":
			ends = append(ends, d)
		case d.Event == "open" && !strings.HasPrefix(a.Result, "shell not started"):
			t.Errorf("refused open: %+v", a)
		}
	}
	if len(opens) != 4 || len(ends) != 4 {
		for _, a := range entries {
			t.Logf("%s %s", a.Result, a.Detail)
		}
		t.Fatalf("%d opens, %d ends audited, want 4 each", len(opens), len(ends))
	}
	// Opens are audited in the order the sessions started; ends in the
	// order the server saw them end, which a busy machine can change (the
	// vanished client's end can come after the next session's): an end
	// is matched to its open by tid.
	endOf := map[string]shellDetail{}
	for _, d := range ends {
		endOf[d.TID] = d
	}
	code := func(c *int) string {
		if c == nil {
			return "none"
		}
		return strconv.Itoa(*c)
	}
	if d, ok := endOf[opens[0].TID]; !ok || d.Outcome != "exited" || d.Code == nil || *d.Code != 3 || d.BytesIn == 0 || d.BytesOut == 0 || d.Cmd != "sh" {
		t.Errorf("first session's end %+v (code %s), want exited with code 3", d, code(d.Code))
	}
	for i, o := range opens[1:3] {
		if d, ok := endOf[o.TID]; !ok || d.Outcome != "client_closed" || d.Code == nil || *d.Code < 128 {
			t.Errorf("session %d's end %+v (code %s), want client_closed with a signal's code", i+2, d, code(d.Code))
		}
	}
	if d, ok := endOf[opens[3].TID]; !ok || d.Outcome != "exited" || d.Code == nil || *d.Code != 1 {
		t.Errorf("unknown user's end %+v (code %s), want exited with code 1", d, code(d.Code))
	}

	// 7. No token in any log line.
	stop(t, e.agent, syscall.SIGTERM)
	if err := e.server.Stop(); err != nil {
		t.Error(err)
	}
	for _, log := range []string{e.server.LogPath, e.agent.Log} {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{apiToken, readOnlyToken} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a token", filepath.Base(log))
			}
		}
		if !bytes.Contains(b, []byte("shell")) {
			t.Errorf("%s says nothing about shells: wrong file?", filepath.Base(log))
		}
	}
}

// shellBytesOut reads agentserver_shell_bytes_total{direction="out"}.
func (e *env) shellBytesOut(t *testing.T) float64 {
	t.Helper()
	r := e.api("GET", "/metrics", nil)
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, `agentserver_shell_bytes_total{direction="out"} `); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestShellSlowClient: a client that reads nothing while the remote
// command floods its terminal. The flood stalls within a bound (the
// credit window plus socket buffers) instead of piling up in the server or
// the agent, the command waits, and once the client reads every byte
// arrives.
func TestShellSlowClient(t *testing.T) {
	const total = 32 << 20
	e := newEnv(t, envOptions{})
	marker := filepath.Join(t.TempDir(), "done")
	cmd := fmt.Sprintf("stty raw -echo; head -c %d /dev/zero | tr '\\000' x; touch %s", total, marker)
	u := strings.Replace(e.url, "http://", "ws://", 1) + "/api/exec/" + e.agentID + "/shell?cmd=" + url.QueryEscape(cmd)
	ws, _, err := (&websocket.Dialer{HandshakeTimeout: 20 * time.Second}).Dial(u, bearer(apiToken))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	// Nothing is read: wait until the output counter stops moving (half a
	// second without change), then check where it stopped.
	last, still := -1.0, 0
	eventually.Within(t, 60*time.Second, "the flood to stall", func() bool {
		v := e.shellBytesOut(t)
		if v == last {
			still++
		} else {
			last, still = v, 0
		}
		return still >= 50 && v > 0
	})
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command finished although the client read nothing")
	}
	if last > 16<<20 {
		t.Errorf("%.1f MiB relayed to a client that reads nothing", last/(1<<20))
	}
	t.Logf("stalled after %.1f MiB relayed (socket buffers included)", last/(1<<20))

	var got int64
	var exit shellFrame
	for exit.Type == "" {
		typ, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		switch typ {
		case websocket.BinaryMessage:
			got += int64(len(b))
		case websocket.TextMessage:
			if err := json.Unmarshal(b, &exit); err != nil {
				t.Fatal(err)
			}
		}
	}
	if exit.Type != "exit" || exit.Code != 0 || got != total {
		t.Fatalf("end %+v after %d bytes, want exit 0 after %d", exit, got, total)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the command did not finish: %v", err)
	}
	hwm := servertest.MustProcKB(t, e.agent.PID(), "VmHWM") << 10
	if hwm > 64<<20 {
		t.Errorf("agent peak RSS %d MiB while relaying %d MiB", hwm>>20, total>>20)
	}
	t.Logf("agent peak RSS %.1f MiB", float64(hwm)/(1<<20))
}
