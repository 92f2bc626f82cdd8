package libagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"
)

// AgentPath is the WebSocket path of agent-server.
const AgentPath = "/ws/agent"

// Sentinel errors of a connection attempt, for errors.Is.
var (
	// ErrTokenRejected: the server answered the upgrade with 401/403.
	ErrTokenRejected = errors.New("server rejected the enrollment token")
	// ErrHandshakeRefused: the server answered come with ok:false.
	ErrHandshakeRefused = errors.New("handshake refused")
	// errRedirected: the server sent other servers to use.
	errRedirected = errors.New("redirected")
)

// ServerURL turns basic.server into the WebSocket URL to dial: "host:port"
// means ws://host:port/ws/agent; a ws:// or wss:// URL without a path gets
// /ws/agent.
func ServerURL(server string) (*url.URL, error) {
	s := strings.TrimSpace(server)
	if s == "" {
		return nil, fmt.Errorf("basic.server: empty")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("basic.server %q: want host:port, ws://host:port or wss://host:port", server)
		}
		return &url.URL{Scheme: "ws", Host: s, Path: AgentPath}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("basic.server %q: %w", server, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("basic.server %q: scheme %q, want ws or wss", server, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("basic.server %q: no host", server)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = AgentPath
	}
	return u, nil
}

// httpBase is the http(s) origin matching a ws(s) server URL, for the
// one-shot transfer URLs.
func httpBase(u *url.URL) *url.URL {
	b := &url.URL{Scheme: "http", Host: u.Host}
	if u.Scheme == "wss" {
		b.Scheme = "https"
	}
	return b
}

// tlsConfig builds the client TLS config from basic.tls.
func tlsConfig(c TLS, log *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("basic.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("basic.tls.ca %s: no PEM certificate found", c.CA)
		}
		cfg.RootCAs = pool
	}
	if c.InsecureSkipVerify {
		log.Warn("basic.tls.insecure_skip_verify is set: the server certificate is NOT verified; use it only in a lab")
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// dial opens the WebSocket to one server. The returned error wraps
// ErrTokenRejected when the server refused the token.
func (rt *Runtime) dial(ctx context.Context, u *url.URL) (*websocket.Conn, error) {
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: rt.opts.DialTimeout,
		TLSClientConfig:  rt.tls,
		NetDialContext:   (&net.Dialer{Timeout: rt.opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	h := http.Header{}
	if rt.basic.Token != "" {
		h.Set("Authorization", "Bearer "+rt.basic.Token)
	}
	h.Set("User-Agent", rt.agent.Name+"/"+rt.agent.Version)
	dctx, cancel := context.WithTimeout(ctx, rt.opts.DialTimeout)
	defer cancel()
	ws, resp, err := d.DialContext(dctx, u.String(), h)
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", u.Redacted(), ErrTokenRejected, resp.StatusCode)
		}
		if resp != nil {
			return nil, fmt.Errorf("dial %s: HTTP %d: %w", u.Redacted(), resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", u.Redacted(), err)
	}
	return ws, nil
}

// handshake sends come and waits for the server's handshake. On success it
// returns the handshake; an ok:false answer wraps ErrHandshakeRefused.
func (rt *Runtime) handshake(ws *websocket.Conn) (*protocol.Handshake, error) {
	local, _ := ws.LocalAddr().(*net.TCPAddr)
	come := rt.come(local)
	b, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	if err != nil {
		return nil, fmt.Errorf("encode come: %w", err)
	}
	deadline := time.Now().Add(rt.opts.HandshakeTimeout)
	_ = ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return nil, fmt.Errorf("send come: %w", err)
	}
	rt.st.outPackets.Add(1)
	rt.st.outBytes.Add(uint64(len(b)))
	_ = ws.SetReadDeadline(deadline)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("wait for handshake: %w", err)
		}
		rt.st.inPackets.Add(1)
		rt.st.inBytes.Add(uint64(len(data)))
		m, err := protocol.Decode(data)
		if err != nil {
			rt.st.malformed.Add(1)
			rt.log.Warn("malformed frame before handshake, dropped", "err", err)
			continue
		}
		if m.Type != protocol.TypeHandshake {
			rt.log.Debug("message before handshake, dropped", "type", m.Type)
			continue
		}
		hs := m.Handshake()
		if !hs.OK {
			if len(hs.Redirect) > 0 {
				return hs, errRedirected
			}
			return hs, fmt.Errorf("%w: %s", ErrHandshakeRefused, hs.Msg)
		}
		if len(hs.Redirect) > 0 {
			return hs, errRedirected
		}
		return hs, nil
	}
}
