package packages

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/agentfleet/jkframe/pkgkind"

	"github.com/agentfleet/agent-server/internal/fault"
)

// MaxNameBytes bounds a package name.
const MaxNameBytes = 200

// reserved are the device names Windows will not create a file of, with
// or without an extension ("nul.deb" included).
var reserved = map[string]bool{"con": true, "prn": true, "aux": true, "nul": true}

func init() {
	for _, p := range []string{"com", "lpt"} {
		for d := '0'; d <= '9'; d++ {
			reserved[p+string(d)] = true
		}
	}
}

// ValidName checks a package name: a plain file name of 1 to
// MaxNameBytes bytes made of ASCII letters, digits and "._-+~", not
// starting with "." or "-", not ending with ".", and not a Windows device
// name. The rules keep a name a single safe path element on every OS
// (no separators, no "..", no hidden or option-like names) while allowing
// the names Debian and RPM packages carry (app_1.2.3+dfsg-1~bpo_amd64.deb).
// The error is a fault.Invalid in parameter "name".
func ValidName(name string) error {
	bad := func(format string, args ...any) error {
		return fault.Invalidf(ErrInvalid, "%q: %s", pkgkind.Clip(name, 64), fmt.Sprintf(format, args...)).InParam("name")
	}
	switch {
	case name == "":
		return fault.Invalidf(ErrInvalid, "empty").InParam("name")
	case len(name) > MaxNameBytes:
		return bad("longer than %d bytes", MaxNameBytes)
	case name[0] == '.' || name[0] == '-':
		return bad("must not start with %q", name[0])
	case name[len(name)-1] == '.':
		return bad("must not end with \".\"")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-+~", c) >= 0) {
			if c == '/' || c == '\\' {
				return bad("a path separator is not allowed: a package name is a plain file name")
			}
			r, _ := utf8.DecodeRuneInString(name[i:])
			return bad("character %q at byte %d not allowed: use letters, digits and ._-+~", r, i)
		}
	}
	stem, _, _ := strings.Cut(strings.ToLower(name), ".")
	if reserved[stem] {
		return bad("%q is a reserved device name on Windows", stem)
	}
	return nil
}
