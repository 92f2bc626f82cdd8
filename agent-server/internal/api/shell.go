package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/shell"
)

// ShellProtocol is the WebSocket subprotocol of GET /api/exec/{id}/shell;
// the server selects it whenever the client offers it.
const ShellProtocol = "agentfleet.shell.v1"

// bearerProtocol prefixes the token offered as a subprotocol by clients
// that cannot set headers (browsers).
const bearerProtocol = "bearer."

// shellRoute is the pattern of the shell route (its audit action).
const shellRoute = "GET /api/exec/{id}/shell"

// Limits of the shell route's parameters.
const (
	maxShellCmd  = 16 << 10
	maxShellUser = 256
)

// withProtocolToken returns r with the token of a "bearer.<token>"
// subprotocol as its Authorization header, when it has none. The token
// never appears in the URL, and the server never echoes it (it selects
// ShellProtocol only).
func withProtocolToken(r *http.Request) (*http.Request, error) {
	if r.Header.Get("Authorization") != "" {
		return r, nil
	}
	var tokens []string
	shellOffered := false
	for _, p := range websocket.Subprotocols(r) {
		switch {
		case p == ShellProtocol:
			shellOffered = true
		case strings.HasPrefix(p, bearerProtocol):
			tokens = append(tokens, strings.TrimPrefix(p, bearerProtocol))
		}
	}
	switch {
	case len(tokens) == 0:
		return r, nil
	case len(tokens) > 1:
		return nil, japi.BadParam("Sec-WebSocket-Protocol", "more than one bearer.<token> offered")
	case !shellOffered:
		return nil, japi.BadParam("Sec-WebSocket-Protocol", "bearer.<token> must be offered together with "+ShellProtocol)
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+tokens[0])
	return r2, nil
}

// shellRoutes serves the interactive shell.
type shellRoutes struct {
	s   *Server
	svc *shell.Service
	up  websocket.Upgrader
}

// RoutesShell registers GET /api/exec/{id}/shell, served by svc.
func (s *Server) RoutesShell(svc *shell.Service) {
	x := &shellRoutes{s: s, svc: svc}
	x.up = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4 << 10,
		WriteBufferSize:  4 << 10,
		Subprotocols:     []string{ShellProtocol},
		CheckOrigin:      sameOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			japi.Fail(w, r, &japi.Error{Code: status, Msg: "websocket upgrade failed: " + reason.Error()})
		},
	}
	s.Handle(shellRoute, x.shell, Scope(authz.ExecRun), Expensive(), Interactive())
}

// sameOrigin accepts requests without Origin (non-browser clients) and
// browser requests from a page of this server (the console): another site
// must not drive a terminal with a token it got hold of in a browser.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// shellAudit is the detail of the shell's audit entries: never the
// keystrokes, never the output, never the token.
type shellAudit struct {
	Event  string `json:"event"` // "open" or "end"
	Remote string `json:"remote"`
	Cmd    string `json:"cmd"` // "" = login shell
	User   string `json:"user,omitempty"`
	Cols   int    `json:"cols,omitempty"`
	Rows   int    `json:"rows,omitempty"`
	TID    string `json:"tid,omitempty"`
	Pid    int    `json:"pid,omitempty"`

	Outcome    string `json:"outcome,omitempty"`
	Code       *int   `json:"code,omitempty"`
	Msg        string `json:"msg,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
	BytesIn    int64  `json:"bytes_in,omitempty"`
	BytesOut   int64  `json:"bytes_out,omitempty"`
}

func (x *shellRoutes) shell(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	cols := p.Int("cols", 80, 1, 4096)
	rows := p.Int("rows", 24, 1, 4096)
	cmd := p.String("cmd", "")
	user := p.String("user", "")
	if err := p.Err(); err != nil {
		return err
	}
	if len(cmd) > maxShellCmd || strings.ContainsRune(cmd, 0) {
		return japi.BadParam("cmd", fmt.Sprintf("longer than %d bytes or contains a NUL byte", maxShellCmd))
	}
	if err := checkShellUser(user); err != nil {
		return japi.BadParam("user", err.Error())
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return &japi.Error{Code: http.StatusUpgradeRequired, Msg: "upgrade required: this route is a WebSocket (Connection: Upgrade, Upgrade: websocket)"}
	}
	if !sameOrigin(r) {
		return &japi.Error{Code: http.StatusForbidden, Msg: "forbidden: Origin " + r.Header.Get("Origin") + " is not this server"}
	}
	if err := x.s.agentType(id, ExecAgent); err != nil {
		return err
	}
	d := shellAudit{Event: "open", Remote: r.RemoteAddr, Cmd: cmd, User: user, Cols: cols, Rows: rows}
	timeout := time.Duration(x.s.o.Config.API.Timeout)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	sess, err := x.svc.Open(ctx, shell.Spec{
		Agent: id, Cmd: cmd, User: user, Env: []string{"TERM=xterm-256color", "COLORTERM=truecolor"},
		Cols: uint16(cols), Rows: uint16(rows),
	})
	if err != nil {
		err = x.openError(ctx, id, timeout, err)
		x.s.audit(r, shellRoute, &auditInfo{target: id, agent: id, detail: d}, 0, err)
		return err
	}
	d.TID, d.Pid = sess.TID(), sess.Pid()
	ws, err := x.up.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade answered the client itself.
		sess.Abort()
		x.s.audit(r, shellRoute, &auditInfo{target: id, agent: id, detail: d}, 0, &japi.Error{Code: http.StatusBadRequest, Msg: "websocket upgrade failed: " + err.Error()})
		return nil
	}
	x.s.audit(r, shellRoute, &auditInfo{target: id, agent: id, detail: d}, http.StatusSwitchingProtocols, nil)
	x.s.log.Info("shell session opened", "agent", id, "tid", d.TID, "pid", d.Pid, "actor", actor(r), "remote", d.Remote, "user", user, "cmd", cmd)

	res := sess.Serve(ws)

	code := res.Code
	end := shellAudit{
		Event: "end", Remote: d.Remote, Cmd: cmd, User: user, TID: d.TID, Pid: d.Pid,
		Outcome: res.Outcome, Msg: res.Msg, DurationMS: res.Duration.Milliseconds(), BytesIn: res.BytesIn, BytesOut: res.BytesOut,
	}
	if code >= 0 {
		end.Code = &code
	}
	var endErr error
	switch res.Outcome {
	case shell.OutcomeExited, shell.OutcomeClientClosed:
	default:
		endErr = &japi.Error{Code: http.StatusServiceUnavailable, Msg: res.Outcome + ": " + res.Msg}
	}
	x.s.audit(r, shellRoute, &auditInfo{target: id, agent: id, detail: end}, http.StatusSwitchingProtocols, endErr)
	x.s.log.Info("shell session ended", "agent", id, "tid", d.TID, "actor", actor(r), "result", res)
	return nil
}

// openError maps an error of shell.Open.
func (x *shellRoutes) openError(ctx context.Context, id string, timeout time.Duration, err error) error {
	var refused *shell.RefusedError
	switch {
	case errors.Is(err, shell.ErrUnsupported):
		return &japi.Error{Code: http.StatusConflict, Err: err, Msg: "conflict: agent " + id +
			" does not support interactive shells: it does not announce pty.v1 (jkstack 1.5 exec-agents and exec-agents on Windows do not)"}
	case errors.As(err, &refused):
		code, ok := kindStatus[refused.Kind]
		if !ok {
			code = http.StatusServiceUnavailable
		}
		return &japi.Error{Code: code, Msg: refused.Error(), Err: err}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return timeoutErr(timeout, err)
	}
	return mapError(err)
}

// checkShellUser accepts what the agent can pass to su as one argument.
func checkShellUser(u string) error {
	switch {
	case u == "":
		return nil
	case len(u) > maxShellUser:
		return fmt.Errorf("longer than %d bytes", maxShellUser)
	case strings.HasPrefix(u, "-"):
		return errors.New("starts with '-'")
	case strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == ':' }):
		return errors.New("contains a space, control character, '/' or ':'")
	}
	return nil
}
