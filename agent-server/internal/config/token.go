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
)

// Token is a named secret. The name is what the audit log records; it is
// safe to show, the secret is not.
type Token struct {
	Name   string
	Secret string
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
		if len(secret) < MinTokenLen {
			return nil, invalid(key, "item %d (%s): token must be at least %d characters", i+1, name, MinTokenLen)
		}
		for _, r := range secret {
			if r <= ' ' || r > '~' {
				return nil, invalid(key, "item %d (%s): token must be printable ASCII without spaces", i+1, name)
			}
		}
		if seen[name] {
			return nil, invalid(key, "item %d: token name %q used twice", i+1, name)
		}
		seen[name] = true
		out = append(out, Token{Name: name, Secret: secret})
	}
	return out, nil
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
