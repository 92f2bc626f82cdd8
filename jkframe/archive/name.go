package archive

import (
	"path"
	"strings"
)

// cleanName checks an entry name as written and returns it cleaned:
// slash-separated, relative, inside the archive. "." is returned for the
// archive's root itself ("./", "a/..").
func cleanName(raw string, lim *Limits) (string, error) {
	if raw == "" {
		return "", errorf(ErrUnsafe, raw, "empty name")
	}
	if len(raw) > lim.NameBytes {
		return "", errorf(ErrLimit, short(raw), "name over %d bytes", lim.NameBytes)
	}
	if err := checkChars(raw, "name"); err != nil {
		return "", errorf(ErrUnsafe, raw, "%s", err.Msg)
	}
	if lim.strict {
		return strictName(raw, lim)
	}
	n := strings.ReplaceAll(raw, `\`, "/")
	if isAbs(n) {
		return "", errorf(ErrUnsafe, raw, "absolute path")
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errorf(ErrUnsafe, raw, "path climbs out of the archive")
	}
	if c != "." && strings.Count(c, "/")+1 > lim.Depth {
		return "", errorf(ErrLimit, raw, "more than %d path elements", lim.Depth)
	}
	return c, nil
}

// checkLink checks a symlink target: relative, and inside the archive when
// resolved from the link's directory. It returns the target
// slash-separated.
func checkLink(name, raw string, lim *Limits) (string, error) {
	if raw == "" {
		return "", errorf(ErrUnsafe, name, "symlink with an empty target")
	}
	if len(raw) > lim.NameBytes {
		return "", errorf(ErrLimit, name, "symlink target over %d bytes", lim.NameBytes)
	}
	if err := checkChars(raw, "symlink target"); err != nil {
		return "", errorf(ErrUnsafe, name, "%s", err.Msg)
	}
	if lim.strict {
		// Unpack follows every symlink as the system will once the
		// archive is written, through the archive's other links and those
		// already in the directory: a finer judge than the lexical one.
		if strings.HasPrefix(raw, "/") || strings.ContainsRune(raw, '\\') || len(raw) >= 2 && raw[1] == ':' {
			return "", errorf(ErrUnsafe, name, "symlink to an absolute path (%q)", short(raw))
		}
		return raw, nil
	}
	t := strings.ReplaceAll(raw, `\`, "/")
	if isAbs(t) {
		return "", errorf(ErrUnsafe, name, "symlink to an absolute path (%q)", raw)
	}
	if r := path.Join(path.Dir(name), t); r == ".." || strings.HasPrefix(r, "../") {
		return "", errorf(ErrUnsafe, name, "symlink points out of the archive (%q)", raw)
	}
	return t, nil
}

// maxElement bounds one element of a name in strict mode (NAME_MAX on
// most file systems).
const maxElement = 255

// strictName is cleanName for Unpack: a name must be written clean but for
// "." elements and doubled slashes; a backslash, a drive letter or a ".."
// anywhere is refused rather than read one way or another.
func strictName(raw string, lim *Limits) (string, error) {
	switch {
	case strings.ContainsRune(raw, '\\'):
		return "", errorf(ErrUnsafe, raw, "backslash in name")
	case strings.HasPrefix(raw, "/"):
		return "", errorf(ErrUnsafe, raw, "absolute path")
	case len(raw) >= 2 && raw[1] == ':':
		return "", errorf(ErrUnsafe, raw, "drive letter in name")
	}
	var parts []string
	for p := range strings.SplitSeq(raw, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", errorf(ErrUnsafe, raw, "'..' in name")
		}
		if len(p) > maxElement {
			return "", errorf(ErrLimit, short(raw), "name element longer than %d bytes", maxElement)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return ".", nil
	}
	if len(parts) > lim.Depth {
		return "", errorf(ErrLimit, raw, "more than %d path elements", lim.Depth)
	}
	return strings.Join(parts, "/"), nil
}

// checkChars refuses NUL and other control characters.
func checkChars(s, what string) *Error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return &Error{Msg: what + " has a control character"}
		}
	}
	return nil
}

// isAbs reports whether a slash-separated name is absolute on any OS:
// "/x", "//host/x", "C:x", "C:/x".
func isAbs(n string) bool {
	if strings.HasPrefix(n, "/") {
		return true
	}
	if len(n) >= 2 && n[1] == ':' && (n[0]|0x20 >= 'a' && n[0]|0x20 <= 'z') {
		return true
	}
	return false
}

// short is a long name cut for an error message.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
