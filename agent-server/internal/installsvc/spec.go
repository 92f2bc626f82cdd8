package installsvc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/agentfleet/agent-server/internal/fault"
)

// Limits of an install request.
const (
	DefaultTimeout = 300 * time.Second // the seed's default
	MaxTimeout     = 24 * time.Hour    // the agent's own limit
	maxField       = 4096
	maxUser        = 256
)

// Kinds are the package types the exec-agent installs.
var Kinds = []string{"deb", "rpm", "tar", "tar.gz", "tar.bz2", "zip", "msi", "exe"}

// ErrInvalid: a bad request (400); a *fault.Error naming the field.
var ErrInvalid = errors.New("invalid install request")

// Spec is one install as the server sends it: the seed's /install/run
// parameters without the agent id. Pass is never stored (the task's spec
// is JSON without it) nor logged.
type Spec struct {
	URI     string `json:"uri,omitempty"` // a package of the server's repository, by name
	URL     string `json:"url,omitempty"` // downloaded by the agent
	SHA256  string `json:"sha256,omitempty"`
	Name    string `json:"name,omitempty"` // the file name the type is read from
	Kind    string `json:"kind,omitempty"`
	Dir     string `json:"dir,omitempty"`
	Timeout int    `json:"timeout,omitempty"` // seconds; 0: 300
	Auth    string `json:"auth,omitempty"`
	User    string `json:"user,omitempty"`
	Pass    string `json:"-"`
	Deps    bool   `json:"deps,omitempty"`
}

// Duration is the install's timeout.
func (s Spec) Duration() time.Duration {
	if s.Timeout <= 0 {
		return DefaultTimeout
	}
	return time.Duration(s.Timeout) * time.Second
}

func bad(param, format string, args ...any) error {
	return fault.Invalidf(ErrInvalid, format, args...).InParam(param)
}

// Check validates the spec; the error names the parameter. The agent
// checks again (and more: its own paths, users, installers).
func (s Spec) Check() error {
	switch {
	case s.URI == "" && s.URL == "":
		return bad("uri", "give uri (a package of the server's repository) or url")
	case s.URI != "" && s.URL != "":
		return bad("uri", "give uri or url, not both")
	case len(s.URI) > maxField:
		return bad("uri", "longer than %d bytes", maxField)
	case s.URI != "" && (strings.ContainsAny(s.URI, "/\\\x00") || s.URI == "." || s.URI == ".."):
		return bad("uri", "%q is not a package name of the repository", clip(s.URI))
	}
	if s.URL != "" {
		if len(s.URL) > maxField {
			return bad("url", "longer than %d bytes", maxField)
		}
		u, err := url.Parse(s.URL)
		switch {
		case err != nil:
			return bad("url", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			return bad("url", "scheme %q: want http or https", u.Scheme)
		case u.Host == "":
			return bad("url", "no host")
		}
	}
	if s.SHA256 != "" {
		if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != 32 {
			return bad("sha256", "%q: want 64 hexadecimal digits", clip(s.SHA256))
		}
	}
	kind, err := s.kind()
	if err != nil {
		return err
	}
	archive := strings.HasPrefix(kind, "tar") || kind == "zip"
	switch {
	case len(s.Name) > maxField || strings.ContainsAny(s.Name, "/\\\x00"):
		return bad("name", "%q is not a file name", clip(s.Name))
	case len(s.Dir) > maxField || strings.ContainsRune(s.Dir, 0):
		return bad("dir", "not a path")
	case s.Dir != "" && !absolute(s.Dir):
		return bad("dir", "%q is not an absolute path", clip(s.Dir))
	case archive && s.Dir == "":
		return bad("dir", "required to unpack a %s archive", kind)
	case s.Timeout < 0 || time.Duration(s.Timeout)*time.Second > MaxTimeout:
		return bad("timeout", "%d: must be 1…%d seconds (0: %d)", s.Timeout, int(MaxTimeout/time.Second), int(DefaultTimeout/time.Second))
	case s.Deps && kind != "" && kind != "deb" && kind != "rpm":
		return bad("deps", "only for deb and rpm packages")
	}
	switch s.Auth {
	case "":
		if s.User != "" || s.Pass != "" {
			return bad("auth", "user and pass need auth su or sudo")
		}
	case "su", "sudo": // for archives: the agent unpacks them as the user
	default:
		return bad("auth", "%q: want su, sudo or nothing", clip(s.Auth))
	}
	if len(s.User) > maxUser || strings.HasPrefix(s.User, "-") || strings.ContainsAny(s.User, " \t\r\n\x00/:") {
		return bad("user", "%q is not a user name", clip(s.User))
	}
	if len(s.Pass) > maxField {
		return bad("pass", "longer than %d bytes", maxField)
	}
	return nil
}

// kind is the package type: Kind, or read from the name, URL or URI; ""
// when none ends in a known extension (the agent then refuses with its
// own message).
func (s Spec) kind() (string, error) {
	if s.Kind != "" {
		for _, k := range Kinds {
			if strings.EqualFold(s.Kind, k) {
				return k, nil
			}
		}
		return "", bad("kind", "%q: want one of %s", clip(s.Kind), strings.Join(Kinds, ", "))
	}
	name := s.Name
	if name == "" {
		name = s.URI
	}
	if name == "" {
		if u, err := url.Parse(s.URL); err == nil {
			name = path.Base(u.Path)
		}
	}
	name = strings.ToLower(name)
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "tar.gz", nil
	case strings.HasSuffix(name, ".tar.bz2"), strings.HasSuffix(name, ".tbz2"), strings.HasSuffix(name, ".tbz"):
		return "tar.bz2", nil
	}
	for _, k := range Kinds {
		if strings.HasSuffix(name, "."+k) {
			return k, nil
		}
	}
	return "", nil
}

// absolute accepts a Unix path or a Windows drive path (the agent may run
// on either).
func absolute(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') &&
		(p[0] >= 'a' && p[0] <= 'z' || p[0] >= 'A' && p[0] <= 'Z')
}

func clip(s string) string {
	if len(s) <= 128 {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:128], len(s))
}
