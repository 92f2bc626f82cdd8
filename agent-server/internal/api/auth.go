package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/config"
)

// tokenInfo is the identity behind a request.
type tokenInfo struct {
	name     string
	readOnly bool
}

type tokenEntry struct {
	hash [sha256.Size]byte
	info tokenInfo
}

// auth checks bearer tokens. Secrets are compared as SHA-256 hashes in
// constant time, against every token, so timing tells nothing about which
// or how much matched.
type auth struct {
	tokens []tokenEntry
}

func newAuth(operator, readOnly []config.Token) *auth {
	a := &auth{}
	for _, t := range operator {
		a.tokens = append(a.tokens, tokenEntry{sha256.Sum256([]byte(t.Secret)), tokenInfo{name: t.Name}})
	}
	for _, t := range readOnly {
		a.tokens = append(a.tokens, tokenEntry{sha256.Sum256([]byte(t.Secret)), tokenInfo{name: t.Name, readOnly: true}})
	}
	return a
}

// Auth errors, exact texts.
var (
	errNoToken  = &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: missing bearer token"}
	errBadToken = &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: invalid token"}
	errReadOnly = &japi.Error{Code: http.StatusForbidden, Msg: "forbidden: read-only token allows GET requests only"}
)

// bearer returns the token of "Authorization: Bearer <token>", or "".
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

func (a *auth) lookup(secret string) (tokenInfo, bool) {
	h := sha256.Sum256([]byte(secret))
	var found tokenInfo
	ok := 0
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			found, ok = a.tokens[i].info, 1
		}
	}
	return found, ok == 1
}

// check authenticates r; mutating routes need an operator token.
func (a *auth) check(r *http.Request, mutating bool) (tokenInfo, error) {
	secret, present := bearer(r)
	if !present {
		return tokenInfo{}, errNoToken
	}
	if secret == "" {
		return tokenInfo{}, errBadToken
	}
	t, ok := a.lookup(secret)
	if !ok {
		return tokenInfo{}, errBadToken
	}
	if mutating && t.readOnly {
		return t, errReadOnly
	}
	return t, nil
}

// checkMetrics authenticates a /metrics scrape: the metrics token when one
// is configured, or any API token.
func (a *auth) checkMetrics(r *http.Request, metricsToken string) error {
	secret, present := bearer(r)
	if !present {
		return errNoToken
	}
	if metricsToken != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(metricsToken)) == 1 {
		return nil
	}
	if _, ok := a.lookup(secret); ok && secret != "" {
		return nil
	}
	return errBadToken
}
