package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/kvconf"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/fault"
)

// Token is a named secret. The name is what the audit log records; it is
// safe to show, the secret is not. API tokens (APITokens) also carry their
// scopes, selector and expiry; agent enrollment tokens leave them empty.
type Token struct {
	Name   string
	Secret string
	// Scopes granted (sorted, see authz.Parse).
	Scopes []authz.Scope
	// Selector limits the agents reached ("" = all).
	Selector string
	// Expires ends the token's validity; zero: never.
	Expires time.Time
}

// MinTokenLen is the shortest secret accepted in the config.
const MinTokenLen = 16

// ParseTokens reads the items of a token list key: "name:secret", or a bare
// secret named <kind>-<position> (1-based). Secrets are at least MinTokenLen
// printable ASCII characters without spaces; names are 1-64 characters of
// [A-Za-z0-9._-] and unique within the list.
func ParseTokens(key, kind string, items []string) ([]Token, error) {
	var out []Token
	seen := map[string]bool{}
	for i, it := range items {
		name, secret, ok := strings.Cut(it, ":")
		if !ok {
			name, secret = kind+"-"+strconv.Itoa(i+1), it
		}
		if !validName(name) {
			return nil, invalid(key, "item %d: token name %q must be 1-64 characters of A-Z a-z 0-9 . _ -", i+1, name)
		}
		if err := checkSecret(secret); err != nil {
			return nil, invalid(key, "item %d (%s): %v", i+1, name, err)
		}
		if seen[name] {
			return nil, invalid(key, "item %d: token name %q used twice", i+1, name)
		}
		seen[name] = true
		out = append(out, Token{Name: name, Secret: secret})
	}
	return out, nil
}

// APITokens returns every configured API token with its scopes:
// api.tokens are admin (the operator role of earlier versions keeps full
// access), api.read_only_tokens hold authz.ReadOnlyScopes, and the
// api.token.<name>.* groups what they list. Names are unique across the
// three.
func (c *Config) APITokens() ([]Token, error) {
	var errs []error
	op, err := ParseTokens("api.tokens", "operator", c.API.Tokens)
	errs = append(errs, err)
	ro, err := ParseTokens("api.read_only_tokens", "read-only", c.API.ReadOnlyTokens)
	errs = append(errs, err)
	var out []Token
	seen := map[string]string{}
	use := func(key string, t Token) {
		if prev, dup := seen[t.Name]; dup {
			errs = append(errs, invalid(key, "token name %q is also used by %s", t.Name, prev))
			return
		}
		seen[t.Name] = key
		out = append(out, t)
	}
	for _, t := range op {
		t.Scopes = []authz.Scope{authz.Admin}
		use("api.tokens", t)
	}
	for _, t := range ro {
		t.Scopes = authz.ReadOnlyScopes
		use("api.read_only_tokens", t)
	}
	for _, st := range c.API.Scoped {
		t, err := st.token()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		use(scopedPrefix+st.Name, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// ScopedToken is one api.token.<name>.* group of the config file:
//
//	api.token.deploy.secret   = $DEPLOY_TOKEN
//	api.token.deploy.scopes   = exec:run, exec:read, agents:read
//	api.token.deploy.selector = env=staging, team=web
//	api.token.deploy.expires  = 2027-06-30
type ScopedToken struct {
	Name     string
	Secret   string
	Scopes   []string
	Selector string
	Expires  time.Time
	// File and Line locate the group's first key, for errors.
	File string
	Line int
}

// scopedPrefix starts the keys of scoped tokens.
const scopedPrefix = "api.token."

// scopedFields are the keys of a scoped token group.
const scopedFields = "secret, scopes, selector, expires"

func (st ScopedToken) errorf(format string, args ...any) error {
	return &kvconf.Error{File: st.File, Line: st.Line, Key: scopedPrefix + st.Name, Err: fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))}
}

// token checks the group and returns its token.
func (st ScopedToken) token() (Token, error) {
	if st.Secret == "" {
		return Token{}, st.errorf("missing %s%s.secret", scopedPrefix, st.Name)
	}
	if err := checkSecret(st.Secret); err != nil {
		return Token{}, st.errorf("secret: %v", err)
	}
	scopes, err := authz.Parse(st.Scopes)
	if err != nil {
		return Token{}, st.errorf("scopes: %s", fault.Message(err))
	}
	if len(scopes) == 0 {
		return Token{}, st.errorf("missing %s%s.scopes", scopedPrefix, st.Name)
	}
	if _, err := authz.NewIdentity(st.Name, scopes, st.Selector, st.Expires); err != nil {
		return Token{}, st.errorf("%s", fault.Message(err))
	}
	return Token{Name: st.Name, Secret: st.Secret, Scopes: scopes, Selector: strings.TrimSpace(st.Selector), Expires: st.Expires}, nil
}

// scopedReader collects the api.token.<name>.* entries into c.API.Scoped.
type scopedReader struct {
	c      *Config
	env    func(string) (string, bool)
	byName map[string]int
	errs   []error
}

func newScopedReader(c *Config, env func(string) (string, bool)) *scopedReader {
	if env == nil {
		env = os.LookupEnv
	}
	return &scopedReader{c: c, env: env, byName: map[string]int{}}
}

// add takes one entry; errors name its file and line.
func (r *scopedReader) add(file string, e kvconf.Entry) {
	fail := func(format string, args ...any) {
		r.errs = append(r.errs, &kvconf.Error{File: file, Line: e.Line, Key: e.Key, Err: fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))})
	}
	rest := strings.TrimPrefix(e.Key, scopedPrefix)
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		fail("want %s<name>.<key> with key one of %s", scopedPrefix, scopedFields)
		return
	}
	name, field := rest[:i], rest[i+1:]
	if !validName(name) {
		fail("token name %q must be 1-64 characters of A-Z a-z 0-9 . _ -", name)
		return
	}
	k, ok := r.byName[name]
	if !ok {
		k = len(r.c.API.Scoped)
		r.byName[name] = k
		r.c.API.Scoped = append(r.c.API.Scoped, ScopedToken{Name: name, File: file, Line: e.Line})
	}
	st := &r.c.API.Scoped[k]
	switch field {
	case "secret":
		v := e.Value
		if env, ok := envRef(v); ok && !e.Quoted {
			if v, ok = r.env(env); !ok {
				fail("environment variable %s is not set", env)
				return
			}
		}
		st.Secret = v
	case "scopes":
		st.Scopes = strings.Split(e.Value, ",")
	case "selector":
		st.Selector = e.Value
	case "expires":
		t, err := parseExpiry(e.Value)
		if err != nil {
			fail("%v", err)
			return
		}
		st.Expires = t
	default:
		fail("unknown key %q (want one of %s)", field, scopedFields)
	}
}

func (r *scopedReader) finish() error { return errors.Join(r.errs...) }

// envRef returns NAME for "$NAME" or "${NAME}".
func envRef(v string) (string, bool) {
	n, ok := strings.CutPrefix(v, "$")
	if !ok {
		return "", false
	}
	if b, ok := strings.CutPrefix(n, "{"); ok {
		n, ok = strings.CutSuffix(b, "}")
		if !ok {
			return "", false
		}
	}
	return n, n != ""
}

// parseExpiry reads an RFC 3339 time or a date (midnight UTC).
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date (2027-06-30)", s)
}

// checkSecret applies the rules of configured secrets.
func checkSecret(secret string) error {
	if len(secret) < MinTokenLen {
		return fmt.Errorf("token must be at least %d characters", MinTokenLen)
	}
	for _, r := range secret {
		if r <= ' ' || r > '~' {
			return errors.New("token must be printable ASCII without spaces")
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Files in the data dir holding generated tokens.
const (
	TokenFile      = "api-token"   // the operator API token
	AgentTokenFile = "agent-token" // the agent enrollment token
)

// GeneratedTokenName names a generated token (in the audit log).
const GeneratedTokenName = "generated"

// NewSecret returns 32 random bytes from crypto/rand as unpadded base64url
// (43 characters).
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b)
}

// GeneratedToken returns the token kept in dataDir/file, named name,
// creating the file (mode 0600, the directory 0700 when it is created) with a
// new secret when it does not exist. created reports that it did.
func GeneratedToken(dataDir, file, name string) (tok Token, path string, created bool, err error) {
	path = filepath.Join(dataDir, file)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < MinTokenLen {
			return Token{}, path, false, fmt.Errorf("token file %s: %w: shorter than %d characters", path, ErrInvalid, MinTokenLen)
		}
		return Token{Name: name, Secret: s}, path, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Token{}, path, false, fmt.Errorf("read token file: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Token{}, path, false, fmt.Errorf("create data dir: %w", err)
	}
	s := NewSecret()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Token{}, path, false, fmt.Errorf("create token file: %w", err)
	}
	_, werr := f.WriteString(s + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return Token{}, path, false, fmt.Errorf("write token file: %w", werr)
	}
	return Token{Name: name, Secret: s}, path, true, nil
}
