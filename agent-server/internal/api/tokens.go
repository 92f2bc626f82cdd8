package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/store"
)

// RuntimeTokenPrefix starts every secret made by POST /api/tokens: it
// tells them from configured ones (only they are looked up in the store)
// and lets secret scanners recognise a leaked one.
const RuntimeTokenPrefix = "aft_"

// runtimeSecretLen is the length of a runtime secret: the prefix and 32
// random bytes in unpadded base64url.
const runtimeSecretLen = len(RuntimeTokenPrefix) + 43

// maxTokenTTL bounds expires_at and ttl.
const maxTokenTTL = 10 * 366 * 24 * time.Hour

func looksRuntime(secret string) bool {
	return len(secret) == runtimeSecretLen && strings.HasPrefix(secret, RuntimeTokenPrefix)
}

// newRuntimeSecret returns a secret of 256 random bits. Its SHA-256 is
// what the store keeps: a secret this long cannot be guessed, so a slow
// password hash would add nothing but a cost on every request (and, salted,
// would need a second identifier to find the row).
func newRuntimeSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported systems
	return RuntimeTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) routesTokens() {
	s.Handle("POST /api/tokens", s.createToken, Scope(authz.Admin))
	s.Handle("GET /api/tokens", s.listTokens, Scope(authz.Admin))
	s.Handle("GET /api/tokens/{name}", s.getToken, Scope(authz.Admin))
	s.Handle("DELETE /api/tokens/{name}", s.revokeToken, Scope(authz.Admin))
}

// Whoami is the payload of GET /api/whoami.
type Whoami struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Selector limits the agents the token reaches; "" reaches all.
	Selector string `json:"selector"`
	// ExpiresAt is unix seconds; absent when the token does not expire.
	ExpiresAt *int64 `json:"expires_at,omitempty"`
	// ReadOnly: no scope of the token allows a change.
	ReadOnly bool `json:"read_only"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	id, _ := IdentityFrom(r.Context())
	out := Whoami{Name: id.Name, Scopes: scopeStrings(id.Scopes), Selector: id.Selector, ReadOnly: id.ReadOnly()}
	if !id.ExpiresAt.IsZero() {
		u := id.ExpiresAt.Unix()
		out.ExpiresAt = &u
	}
	japi.OK(w, r, out)
	return nil
}

func scopeStrings(ss []authz.Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// TokenRequest is the body of POST /api/tokens.
type TokenRequest struct {
	Name     string   `json:"name"`
	Scopes   []string `json:"scopes"`
	Selector string   `json:"selector"`
	// ExpiresAt (unix seconds) or TTL (seconds, or a Go duration such as
	// "720h") ends the token's validity; neither: it does not expire.
	ExpiresAt *int64   `json:"expires_at"`
	TTL       ttlValue `json:"ttl"`
}

// TokenInfo describes a runtime token (never its secret).
type TokenInfo struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	Selector  string   `json:"selector"`
	CreatedBy string   `json:"created_by"`
	CreatedAt int64    `json:"created_at"`
	ExpiresAt *int64   `json:"expires_at,omitempty"`
	RevokedAt *int64   `json:"revoked_at,omitempty"`
	RevokedBy string   `json:"revoked_by,omitempty"`
	// State is "active", "expired" or "revoked".
	State string `json:"state"`
}

// TokenCreated is the payload of POST /api/tokens: the only time the
// secret is shown.
type TokenCreated struct {
	TokenInfo
	Secret string `json:"secret"`
}

func (s *Server) tokenInfo(t store.APIToken) TokenInfo {
	unix := func(at time.Time) *int64 {
		if at.IsZero() {
			return nil
		}
		u := at.Unix()
		return &u
	}
	ti := TokenInfo{Name: t.Name, Scopes: t.Scopes, Selector: t.Selector, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt.Unix(),
		ExpiresAt: unix(t.ExpiresAt), RevokedAt: unix(t.RevokedAt), RevokedBy: t.RevokedBy, State: "active"}
	switch {
	case !t.RevokedAt.IsZero():
		ti.State = "revoked"
	case !t.ExpiresAt.IsZero() && !s.o.Now().Before(t.ExpiresAt):
		ti.State = "expired"
	}
	return ti
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req TokenRequest
	if err := japi.DecodeJSON(r, &req, s.maxBody); err != nil {
		return err
	}
	SetAudit(r, req.Name, map[string]any{"scopes": req.Scopes, "selector": req.Selector, "expires_at": req.ExpiresAt, "ttl": req.TTL})
	if req.Name == "" {
		return japi.MissingParam("name")
	}
	if !validTokenName(req.Name) {
		return japi.BadParam("name", fmt.Sprintf("must be 1-%d characters of A-Z a-z 0-9 . _ -", store.MaxTokenName))
	}
	if s.auth.names(req.Name) {
		return &japi.Error{Code: http.StatusConflict, Msg: "conflict: a configured token is named " + req.Name}
	}
	if len(req.Scopes) == 0 {
		return japi.MissingParam("scopes")
	}
	scopes, err := authz.Parse(req.Scopes)
	if err != nil {
		return mapError(err) // names the parameter at fault
	}
	now := s.o.Now()
	var expires time.Time
	switch {
	case req.ExpiresAt != nil && req.TTL != "":
		return japi.BadParam("ttl", "give expires_at or ttl, not both")
	case req.ExpiresAt != nil:
		expires = time.Unix(*req.ExpiresAt, 0)
		if !expires.After(now) || expires.Sub(now) > maxTokenTTL {
			return japi.BadParam("expires_at", "must be unix seconds in the future, at most 10 years ahead")
		}
	case req.TTL != "":
		d, err := parseTTL(req.TTL)
		if err != nil {
			return japi.BadParam("ttl", err.Error())
		}
		expires = now.Add(d)
	}
	if _, err := authz.NewIdentity(req.Name, scopes, req.Selector, expires); err != nil {
		return mapError(err) // names the parameter at fault
	}
	secret := newRuntimeSecret()
	h := sha256.Sum256([]byte(secret))
	t, err := s.o.Store.CreateAPIToken(r.Context(), store.APIToken{Name: req.Name, Hash: h[:], Scopes: scopeStrings(scopes),
		Selector: strings.TrimSpace(req.Selector), CreatedBy: actor(r), CreatedAt: now, ExpiresAt: expires})
	if errors.Is(err, store.ErrConflict) {
		return &japi.Error{Code: http.StatusConflict, Msg: "conflict: a token named " + req.Name + " exists (revoked tokens keep their name)"}
	}
	if err != nil {
		return mapError(err)
	}
	japi.OK(w, r, TokenCreated{TokenInfo: s.tokenInfo(t), Secret: secret})
	return nil
}

// ttlValue is seconds (a JSON number) or a Go duration (a string).
type ttlValue string

func (v *ttlValue) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*v = ttlValue(str)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("ttl: want seconds or a duration string")
	}
	*v = ttlValue(strconv.FormatInt(n, 10))
	return nil
}

func parseTTL(v ttlValue) (time.Duration, error) {
	s := string(v)
	d, err := time.ParseDuration(s)
	if err != nil {
		sec, serr := strconv.ParseInt(s, 10, 64)
		if serr != nil || sec > int64(maxTokenTTL/time.Second) {
			return 0, errors.New("must be seconds or a duration such as 720h, at most 10 years")
		}
		d = time.Duration(sec) * time.Second
	}
	if d <= 0 || d > maxTokenTTL {
		return 0, errors.New("must be more than 0 and at most 10 years")
	}
	return d, nil
}

func validTokenName(s string) bool {
	if s == "" || len(s) > store.MaxTokenName {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	pg := store.Paging{Page: p.Int("page", 1, 1, 1<<30), Size: p.Int("size", store.DefaultPageSize, 1, store.MaxPageSize)}
	if err := p.Err(); err != nil {
		return err
	}
	list, total, err := s.o.Store.ListAPITokens(r.Context(), pg)
	if err != nil {
		return mapError(err)
	}
	out := make([]TokenInfo, 0, len(list))
	for _, t := range list {
		out = append(out, s.tokenInfo(t))
	}
	return okPage(w, r, out, total)
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) error {
	t, err := s.o.Store.GetAPIToken(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return japi.NotFound("token")
	}
	if err != nil {
		return mapError(err)
	}
	japi.OK(w, r, s.tokenInfo(t))
	return nil
}

// revokeToken revokes a runtime token: the next request with it gets 401.
// Revoking a revoked token changes nothing and answers the same.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	SetAudit(r, name, nil)
	if s.auth.names(name) {
		return &japi.Error{Code: http.StatusConflict, Msg: "conflict: " + name + " is a configured token: remove it from the config file"}
	}
	t, err := s.o.Store.RevokeAPIToken(r.Context(), name, s.o.Now(), actor(r))
	if errors.Is(err, store.ErrNotFound) {
		return japi.NotFound("token")
	}
	if err != nil {
		return mapError(err)
	}
	japi.OK(w, r, s.tokenInfo(t))
	return nil
}
