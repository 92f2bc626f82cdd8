package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// ShellOptions open an interactive terminal on an exec-agent.
type ShellOptions struct {
	Cols, Rows int
	Cmd        string // default: the user's login shell
	User       string
}

// Shell control messages (text frames); binary frames are terminal bytes.
type ShellControl struct {
	Type string `json:"type"` // resize (sent), exit or error (received)
	Cols int    `json:"cols,omitempty"`
	Rows int    `json:"rows,omitempty"`
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

// DialShell opens GET /api/exec/{id}/shell as a WebSocket. A server
// without the route answers 404 "not found: route" (IsRouteMissing).
func (c *Client) DialShell(ctx context.Context, agent string, o ShellOptions) (*websocket.Conn, error) {
	q := url.Values{"cols": {strconv.Itoa(o.Cols)}, "rows": {strconv.Itoa(o.Rows)}}
	if o.Cmd != "" {
		q.Set("cmd", o.Cmd)
	}
	if o.User != "" {
		q.Set("user", o.User)
	}
	h := http.Header{}
	if c.o.Token != "" {
		h.Set("Authorization", "Bearer "+c.o.Token)
	}
	if c.o.UserAgent != "" {
		h.Set("User-Agent", c.o.UserAgent)
	}
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, TLSClientConfig: c.tls, HandshakeTimeout: c.o.Timeout,
		ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	start := int(c.cur.Load())
	var firstErr error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		u := *c.servers[idx]
		u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
		u.Path += "/api/exec/" + url.PathEscape(agent) + "/shell"
		u.RawQuery = q.Encode()
		conn, resp, err := d.DialContext(ctx, u.String(), h)
		if err == nil {
			c.cur.Store(int32(idx))
			c.debugf("GET %s: websocket open", redact(u))
			return conn, nil
		}
		if resp != nil {
			e := &Error{Status: resp.StatusCode, Method: http.MethodGet, Path: u.Path}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			var env envelope
			if json.Unmarshal(b, &env) == nil && env.Msg != "" {
				e.Msg, e.ReqID = env.Msg, env.ReqID
			} else if resp.StatusCode == http.StatusOK {
				e.Msg = "the server did not upgrade to a WebSocket"
			}
			c.debugf("GET %s: %d", redact(u), resp.StatusCode)
			return nil, e
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if firstErr == nil { // no answer: the next server may give one
			firstErr = &ConnError{Server: c.servers[idx].Redacted(), Err: err}
		}
	}
	return nil, firstErr
}

// ShellWriteTimeout bounds one write to the shell socket.
const ShellWriteTimeout = 30 * time.Second
