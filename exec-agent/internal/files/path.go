package files

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors, for errors.Is.
var (
	// ErrName: an upload's file name is not a plain file name.
	ErrName = errors.New("invalid file name")
	// ErrPath: a path breaks the path rule (see the package doc).
	ErrPath = errors.New("invalid path")
)

// maxName is the longest file name most file systems accept (bytes).
const maxName = 255

// ValidName checks that name is a plain file name: not empty, not "." or
// "..", no '/' or '\' (on any OS), no NUL or other control character
// (C0, DEL, C1), valid UTF-8, at most 255 bytes.
func ValidName(name string) error {
	var why string
	switch {
	case name == "":
		why = "empty"
	case name == "." || name == "..":
		why = "is . or .."
	case strings.ContainsAny(name, `/\`):
		why = "contains a path separator"
	case strings.ContainsRune(name, 0):
		why = "contains NUL"
	case strings.ContainsFunc(name, unicode.IsControl):
		why = "contains a control character"
	case !utf8.ValidString(name):
		why = "is not valid UTF-8"
	case len(name) > maxName:
		why = fmt.Sprintf("longer than %d bytes", maxName)
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrName, name, why)
}

// CleanPath applies the path rule (see the package doc) and returns the
// cleaned path.
func CleanPath(p string) (string, error) {
	var why string
	switch {
	case p == "":
		why = "empty"
	case strings.ContainsRune(p, 0):
		why = "contains NUL"
	case !filepath.IsAbs(p):
		why = "not absolute"
	default:
		for _, el := range strings.FieldsFunc(filepath.ToSlash(p), func(r rune) bool { return r == '/' }) {
			if el == "." || el == ".." {
				why = "has a . or .. element"
				break
			}
		}
		if why == "" {
			return filepath.Clean(p), nil
		}
	}
	return "", fmt.Errorf("%w %q: %s", ErrPath, p, why)
}
