package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/store"
)

type tokenEntry struct {
	hash [sha256.Size]byte
	id   authz.Identity
}

// tokenStore finds runtime tokens by the hash of their secret.
type tokenStore interface {
	APITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error)
}

// auth checks bearer tokens: the configured ones in memory, the ones made
// at runtime (/api/tokens) in the store.
//
// Configured secrets are compared as SHA-256 hashes in constant time,
// against every token, so timing tells nothing about which or how much
// matched. Runtime secrets carry RuntimeTokenPrefix and are looked up by
// their SHA-256 (an index lookup: its timing can only tell about the hash,
// not the secret); a secret without the prefix never reaches the store.
type auth struct {
	tokens []tokenEntry
	store  tokenStore // nil: no runtime tokens
	now    func() time.Time
}

// newAuth builds the checker of tokens. Tokens that fail authz's checks
// are an error (config.Load has already refused them in a server).
func newAuth(tokens []config.Token, st tokenStore, now func() time.Time) (*auth, error) {
	a := &auth{store: st, now: now}
	for _, t := range tokens {
		id, err := authz.NewIdentity(t.Name, t.Scopes, t.Selector, t.Expires)
		if err != nil {
			return nil, err
		}
		a.tokens = append(a.tokens, tokenEntry{sha256.Sum256([]byte(t.Secret)), id})
	}
	return a, nil
}

// Auth errors, exact texts.
var (
	errNoToken      = &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: missing bearer token"}
	errBadToken     = &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: invalid token"}
	errTokenExpired = &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: token expired"}
	errTokenRevoked = &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: token revoked"}
)

// forbidden is the 403 of a token without scope s.
func forbidden(s authz.Scope) error {
	return &japi.Error{Code: http.StatusForbidden, Msg: "forbidden: the token lacks scope " + string(s)}
}

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

func (a *auth) lookupConfig(h [sha256.Size]byte) (authz.Identity, bool) {
	var found authz.Identity
	ok := 0
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:]) == 1 {
			found, ok = a.tokens[i].id, 1
		}
	}
	return found, ok == 1
}

// authenticate returns the identity of r's bearer token.
func (a *auth) authenticate(r *http.Request) (authz.Identity, error) {
	secret, present := bearer(r)
	if !present {
		return authz.Identity{}, errNoToken
	}
	return a.identify(r.Context(), secret)
}

// identify returns the identity of a secret: 401 when it is unknown,
// expired or revoked.
func (a *auth) identify(ctx context.Context, secret string) (authz.Identity, error) {
	if secret == "" {
		return authz.Identity{}, errBadToken
	}
	h := sha256.Sum256([]byte(secret))
	id, ok := a.lookupConfig(h)
	if !ok {
		var err error
		if id, err = a.lookupRuntime(ctx, secret, h); err != nil {
			return authz.Identity{}, err
		}
	}
	if id.Expired(a.now()) {
		return authz.Identity{}, errTokenExpired
	}
	return id, nil
}

// lookupRuntime finds a token made through /api/tokens.
func (a *auth) lookupRuntime(ctx context.Context, secret string, h [sha256.Size]byte) (authz.Identity, error) {
	if a.store == nil || !looksRuntime(secret) {
		return authz.Identity{}, errBadToken
	}
	t, err := a.store.APITokenByHash(ctx, h[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return authz.Identity{}, errBadToken
	case err != nil:
		return authz.Identity{}, &japi.Error{Code: http.StatusServiceUnavailable, Msg: "cannot check the token now: the store does not answer", Err: err}
	case !t.RevokedAt.IsZero():
		return authz.Identity{}, errTokenRevoked
	}
	return runtimeIdentity(t)
}

// runtimeIdentity is the identity of a stored token. Scopes this server
// does not know (stored by a newer version) are left out.
func runtimeIdentity(t store.APIToken) (authz.Identity, error) {
	var scopes []authz.Scope
	for _, s := range t.Scopes {
		if _, ok := authz.Lookup(authz.Scope(s)); ok {
			scopes = append(scopes, authz.Scope(s))
		}
	}
	id, err := authz.NewIdentity(t.Name, scopes, t.Selector, t.ExpiresAt)
	if err != nil {
		return authz.Identity{}, &japi.Error{Code: http.StatusUnauthorized, Msg: "unauthorized: the stored token is not valid here: " + err.Error(), Err: err}
	}
	return id, nil
}

// names reports whether a configured token is called name.
func (a *auth) names(name string) bool {
	for _, t := range a.tokens {
		if t.id.Name == name {
			return true
		}
	}
	return false
}

// checkMetrics authenticates a /metrics scrape: the metrics token, or an
// API token holding metrics:read.
func (a *auth) checkMetrics(r *http.Request, metricsToken string) error {
	secret, present := bearer(r)
	if !present {
		return errNoToken
	}
	if metricsToken != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(metricsToken)) == 1 {
		return nil
	}
	id, err := a.identify(r.Context(), secret)
	if err != nil {
		return err
	}
	if !id.Has(authz.MetricsRead) {
		return forbidden(authz.MetricsRead)
	}
	return nil
}
