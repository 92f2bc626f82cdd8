package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/agentfleet/agentctl/internal/client"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitRemote      = 1 // the server or an agent reported a failure
	ExitUsage       = 2 // bad flags or arguments, bad config
	ExitAuth        = 3 // no connection, TLS, or the token was refused
	ExitInterrupted = 130
)

// ExitError carries an exit code; a nil Err exits silently.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// exitCode ends a command with code and no further message.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

// describe turns an error into the line shown and the exit code: the
// problem, then after a dash what to do about it.
func describe(err error) (string, int) {
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err == nil {
			return "", ee.Code
		}
		msg, _ := describe(ee.Err)
		return msg, ee.Code
	}
	var ae *client.Error
	var ce *client.ConnError
	var te *client.TimeoutError
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted", ExitInterrupted
	case errors.As(err, &ae):
		return apiHint(ae), apiExit(ae)
	case errors.As(err, &te):
		return err.Error() + " — raise --request-timeout, or check the server's load", ExitRemote
	case errors.As(err, &ce):
		return connHint(ce), ExitAuth
	case errors.Is(err, client.ErrNoServer):
		return "no server configured — run agentctl login SERVER, or set AGENTCTL_SERVER", ExitAuth
	case isCobraUsage(err):
		return err.Error() + "\nRun 'agentctl --help' for usage.", ExitUsage
	}
	return err.Error(), ExitRemote
}

func apiExit(e *client.Error) int {
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		return ExitAuth
	}
	return ExitRemote
}

// apiHint names the problem of an API error and the fix.
func apiHint(e *client.Error) string {
	base := e.Error()
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = "token rejected — run agentctl login (or check AGENTCTL_TOKEN)"
		base = "401: " + strings.TrimPrefix(e.Msg, "unauthorized: ")
	case http.StatusForbidden:
		hint = "this token may not do that — agentctl whoami shows what it may; log in with a token that has the scope"
	case http.StatusNotFound:
		switch {
		case strings.HasPrefix(e.Msg, "not found: agent"):
			hint = "agentctl agents ls lists the agents the server knows (and whether they are online)"
		case strings.HasPrefix(e.Msg, "not found: task"):
			hint = "agentctl tasks ls lists the tasks"
		case client.IsRouteMissing(e):
			hint = "the server does not have this route: it is older than this agentctl (agentctl version)"
		}
	case http.StatusFailedDependency:
		hint = "that agent is of another type: agentctl agents get ID shows it"
	case http.StatusTooManyRequests:
		hint = fmt.Sprintf("the server's rate limit (retried %d times) — try again later, or raise api.rate_limit on the server", e.Retries)
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		hint = "the agent did not answer in time — raise --timeout, or check the agent (agentctl agents get ID)"
	case http.StatusGone:
		hint = "the agent disconnected during the request — it may be restarting; try again"
	case http.StatusServiceUnavailable:
		hint = "the agent reported this failure"
	case http.StatusInsufficientStorage:
		hint = "the server's cache_dir is full — free space there (is_blocking in agentctl version -o json)"
		if !strings.Contains(e.Msg, "cache_dir") {
			hint = "the agent's disk is full — free space on its host and try again"
		}
	case http.StatusRequestEntityTooLarge:
		hint = "over the server's size limit (api.upload_max_body for uploads)"
	case http.StatusConflict:
		if strings.Contains(e.Msg, "checksum") {
			hint = "the file changed or was damaged in transit — try again"
		}
	}
	if e.Status >= 500 && e.ReqID != "" && e.Status != http.StatusServiceUnavailable {
		hint = strings.TrimSpace(hint + " (request id " + e.ReqID + " in the server's log)")
	}
	if hint == "" {
		return base
	}
	if e.Status == http.StatusUnauthorized {
		return base + ": " + hint
	}
	return base + " — " + hint
}

// connHint explains a failed connection.
func connHint(e *client.ConnError) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(e, &ua):
		return e.Error() + " — the server's certificate is not trusted: agentctl login SERVER --ca-file ca.pem"
	case errors.As(e, &hn), errors.As(e, &ci):
		return e.Error() + " — the certificate does not fit this server: check the URL (agentctl context ls)"
	case errors.Is(e, syscall.ECONNREFUSED):
		return e.Error() + " — is agent-server running there? check the URL (agentctl context ls, AGENTCTL_SERVER)"
	case strings.Contains(e.Err.Error(), "server gave HTTP response to HTTPS client"):
		return e.Error() + " — the server speaks plain HTTP: use an http:// URL"
	}
	var dns *net.DNSError
	if errors.As(e, &dns) {
		return e.Error() + " — check the server name (agentctl context ls, AGENTCTL_SERVER)"
	}
	return e.Error() + " — check the network and the URL (agentctl context ls)"
}

// isCobraUsage recognises cobra's own parse errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "required flag", "accepts ", "requires at least"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
