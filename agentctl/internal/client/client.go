// Package client talks to agent-server's public HTTP API: the 1.5 envelope,
// bearer tokens, retries on the server's hints (429 with Retry-After),
// fail-over between the servers of a cluster, and typed calls for the
// routes agentctl uses. Everything here is what a script with curl could
// do; nothing reaches into the server's code.
//
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentfleet/jkframe/backoff"
)

// Options configure a Client.
type Options struct {
	// Servers are base URLs (http://host:port); the first that answers is
	// used and a connection failure moves on to the next (the servers of
	// one cluster answer the same API).
	Servers []string
	Token   string
	// CAFile is a PEM bundle trusted for https servers besides the
	// system's roots.
	CAFile string
	// Insecure skips TLS certificate checks (tests, first contact).
	Insecure bool
	// Timeout bounds one plain API call (not streams or transfers);
	// 0 means 30 s.
	Timeout time.Duration
	// Retries is how often a call refused with 429 (or a request that
	// never reached a server) is tried again; 0 means 4, < 0 none.
	Retries int
	// UserAgent names the client in the server's access log.
	UserAgent string
	// Debug, when set, gets one line per request (never the token).
	Debug io.Writer
	// Sleep waits between retries; tests inject their own. Default: a
	// context-aware timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client is an API client.
type Client struct {
	o       Options
	servers []*url.URL
	cur     atomic.Int32 // index of the server that answered last
	hc      *http.Client
	tls     *tls.Config
}

// New checks o and returns a client.
func New(o Options) (*Client, error) {
	if len(o.Servers) == 0 {
		return nil, ErrNoServer
	}
	c := &Client{o: o}
	for _, s := range o.Servers {
		u, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		c.servers = append(c.servers, u)
	}
	if c.o.Timeout <= 0 {
		c.o.Timeout = 30 * time.Second
	}
	if c.o.Retries == 0 {
		c.o.Retries = 4
	}
	if c.o.Sleep == nil {
		c.o.Sleep = func(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, nil, d) }
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Large buffers: file transfers are the bulk of the bytes, and
		// 4 KiB writes cost more in system calls than the copy.
		WriteBufferSize: 256 << 10,
		ReadBufferSize:  256 << 10,
	}
	tc, err := tlsConfig(o.CAFile, o.Insecure)
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig, c.tls = tc, tc
	c.hc = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		return http.ErrUseLastResponse // a redirect would drop the token: show it instead
	}}
	return c, nil
}

// ErrNoServer is returned when no server is configured.
var ErrNoServer = errors.New("no server configured")

// ParseServer checks a server URL: http or https with a host and nothing
// but a path prefix. A bare host:port gets https://.
func ParseServer(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ErrNoServer
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server %q: no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server %q: only scheme, host, port and a path prefix are allowed", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

func tlsConfig(caFile string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // only on request
	if caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// Server returns the base URL in use (the last that answered).
func (c *Client) Server() string { return c.servers[c.cur.Load()].String() }

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Request describes one API call.
type Request struct {
	Method string
	Path   string // /api/...
	Query  url.Values
	Header http.Header
	// Body returns a fresh body for each attempt; nil: no body. A body
	// that cannot be replayed (stdin) returns the same reader and sets
	// OneShot.
	Body    func() (io.Reader, error)
	OneShot bool
	// ContentLength is the body's length when known (> 0): sent as
	// Content-Length instead of a chunked body, so that the server can
	// refuse an oversize body before it is sent.
	ContentLength int64
	// Stream: no Timeout for the whole call (transfers, event streams);
	// the caller's context bounds it.
	Stream bool
}

// Do sends r and returns the response of the server when its status is
// 2xx; any other status is an *Error (the body read and closed). 429 (and
// 503 with Retry-After) are retried after the delay the server asks for;
// a connection that cannot be made is tried on the next server, then
// again after a backoff.
func (c *Client) Do(ctx context.Context, r Request) (*http.Response, error) {
	var cancel context.CancelFunc = func() {}
	if !r.Stream {
		ctx, cancel = context.WithTimeout(ctx, c.o.Timeout)
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (c *Client) do(ctx context.Context, r Request) (*http.Response, error) {
	retries := max(c.o.Retries, 0)
	for attempt := 0; ; attempt++ {
		resp, sent, err := c.once(ctx, r)
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctxErr(ctx, err)
			}
			// Only requests that never reached a server are tried again:
			// anything else may have been acted on.
			if sent || attempt >= retries || r.OneShot && attempt > 0 {
				return nil, err
			}
			wait = retryBackoff.Delay(attempt)
		default:
			apiErr := readError(resp)
			ra, hinted := retryAfter(resp.Header)
			retriable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable && hinted
			if !retriable || attempt >= retries || r.OneShot {
				apiErr.Retries = attempt
				return nil, apiErr
			}
			wait = ra
			if !hinted {
				wait = retryBackoff.Delay(attempt)
			}
		}
		c.debugf("retry in %s (attempt %d of %d)", wait.Round(time.Millisecond), attempt+2, retries+1)
		if err := c.o.Sleep(ctx, wait); err != nil {
			return nil, ctxErr(ctx, err)
		}
	}
}

// once tries the servers in turn, starting with the one that answered
// last; sent reports whether the request may have reached one.
func (c *Client) once(ctx context.Context, r Request) (*http.Response, bool, error) {
	start := int(c.cur.Load())
	var firstErr error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		resp, sent, err := c.send(ctx, c.servers[idx], r)
		if err == nil {
			c.cur.Store(int32(idx))
			return resp, true, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if sent || ctx.Err() != nil || r.OneShot {
			return nil, sent, err
		}
	}
	return nil, false, firstErr
}

func (c *Client) send(ctx context.Context, base *url.URL, r Request) (*http.Response, bool, error) {
	u := *base
	u.Path = base.Path + r.Path
	if len(r.Query) > 0 {
		u.RawQuery = r.Query.Encode()
	}
	var body io.Reader
	if r.Body != nil {
		b, err := r.Body()
		if err != nil {
			return nil, false, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, false, err
	}
	if r.ContentLength > 0 && body != nil {
		req.ContentLength = r.ContentLength
	}
	maps(req.Header, r.Header)
	if tb, ok := body.(interface{ ContentType() string }); ok {
		req.Header.Set("Content-Type", tb.ContentType())
	}
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	if c.o.UserAgent != "" {
		req.Header.Set("User-Agent", c.o.UserAgent)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.debugf("%s %s: %v", r.Method, redact(u), err)
		return nil, !isDialError(err), &ConnError{Server: base.Redacted(), Err: err}
	}
	c.debugf("%s %s: %d (%s)", r.Method, redact(u), resp.StatusCode, time.Since(start).Round(time.Millisecond))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		return nil, true, &Error{Status: resp.StatusCode, Msg: "redirected to " + loc + " (log in with that URL)"}
	}
	return resp, true, nil
}

func redact(u url.URL) string {
	u.RawQuery = ""
	return u.String()
}

func maps(dst, src http.Header) {
	for k, vs := range src {
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}

func (c *Client) debugf(format string, a ...any) {
	if c.o.Debug != nil {
		fmt.Fprintf(c.o.Debug, "debug: "+format+"\n", a...)
	}
}

// isDialError reports whether err happened before anything was sent.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func ctxErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &TimeoutError{Err: err}
	}
	return ctx.Err()
}

// retryBackoff is exponential with full jitter: up to 250 ms × 2^attempt,
// capped at 8 s. Only its stateless Delay is used (do counts attempts).
var retryBackoff = &backoff.Backoff{Initial: 250 * time.Millisecond, Max: 8 * time.Second}

// maxRetryAfter caps what a server may ask us to wait.
const maxRetryAfter = 60 * time.Second

// retryAfter reads Retry-After (seconds or an HTTP date).
func retryAfter(h http.Header) (time.Duration, bool) {
	return ParseRetryAfter(h.Get("Retry-After"), time.Now())
}

// ParseRetryAfter reads a Retry-After value: delay seconds or an HTTP
// date, capped at a minute; ok is false when v is missing or malformed.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

// envelope is the API's reply: success {code, payload}, failure {code,
// msg, reqid}.
type envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	ReqID   string          `json:"reqid"`
	Payload json.RawMessage `json:"payload"`
}

// maxEnvelope bounds a JSON reply (the largest are task views).
const maxEnvelope = 256 << 20

// Call sends a JSON request (in may be nil) and decodes the payload of
// the envelope into out (may be nil). The header of the reply is
// returned for X-Total-Count and friends.
func (c *Client) Call(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, error) {
	r := Request{Method: method, Path: path, Query: q}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		r.Body = func() (io.Reader, error) { return bytes.NewReader(b), nil }
		r.Header = http.Header{"Content-Type": {"application/json"}}
	}
	resp, err := c.Do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return resp.Header, decodePayload(resp, out)
}

func decodePayload(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxEnvelope+1))
	if err != nil {
		return &ConnError{Server: resp.Request.URL.Host, Err: err}
	}
	if len(b) > maxEnvelope {
		return fmt.Errorf("%s %s: reply larger than %d bytes", resp.Request.Method, resp.Request.URL.Path, maxEnvelope)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: reply is not an API envelope: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	if out == nil || len(env.Payload) == 0 || string(env.Payload) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Payload, out); err != nil {
		return fmt.Errorf("%s %s: decode payload: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// readError reads a failure reply into an *Error and closes the body.
func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode, Method: resp.Request.Method, Path: resp.Request.URL.Path}
	var env envelope
	if json.Unmarshal(b, &env) == nil && (env.Msg != "" || env.Code != 0) {
		e.Msg, e.ReqID = env.Msg, env.ReqID
	} else {
		// Not our envelope (a proxy in between): its first line.
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		e.Msg = line
	}
	if e.ReqID == "" {
		e.ReqID = resp.Header.Get("X-Request-Id")
	}
	return e
}
