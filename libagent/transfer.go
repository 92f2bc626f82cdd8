package libagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ErrTransfer: the server answered a transfer with a non-2xx status.
var ErrTransfer = errors.New("transfer failed")

// transferClient is a one-shot HTTP client with the agent's TLS settings.
// Keep-alives are off: each transfer is one request, and no idle
// connection (or its goroutines) outlives it.
func (rt *Runtime) transferClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		TLSClientConfig:   rt.tls,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}}
}

// transferURL resolves uri (absolute, or a path on the server) against the
// server the agent is connected to: ws becomes http, wss becomes https.
func (rt *Runtime) transferURL(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("transfer uri %q: %w", uri, err)
	}
	if u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("transfer uri %q: scheme %q, want http or https", uri, u.Scheme)
		}
		return u.String(), nil
	}
	base, err := rt.serverBase()
	if err != nil {
		return "", err
	}
	return base.ResolveReference(u).String(), nil
}

// Fetch GETs uri (a path on the server, or an absolute http(s) URL) with
// header "X-Token: token" and copies the body to w. It returns the bytes
// copied. This is the agent side of one-shot bulk transfers (upload with
// uri + token).
func (rt *Runtime) Fetch(ctx context.Context, uri, token string, w io.Writer) (int64, error) {
	target, err := rt.transferURL(uri)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", uri, err)
	}
	req.Header.Set("X-Token", token)
	resp, err := rt.transferClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("fetch %s: %w: HTTP %d", uri, ErrTransfer, resp.StatusCode)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("fetch %s: %w", uri, err)
	}
	return n, nil
}

// Put PUTs the body read from r to uri with header "X-Token: token". size
// is the body length, -1 when unknown (chunked). This is the agent side of
// one-shot bulk downloads (download_req with uri + token).
func (rt *Runtime) Put(ctx context.Context, uri, token string, r io.Reader, size int64) error {
	target, err := rt.transferURL(uri)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, io.NopCloser(r))
	if err != nil {
		return fmt.Errorf("put %s: %w", uri, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("X-Token", token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := rt.transferClient().Do(req)
	if err != nil {
		return fmt.Errorf("put %s: %w", uri, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("put %s: %w: HTTP %d", uri, ErrTransfer, resp.StatusCode)
	}
	return nil
}
