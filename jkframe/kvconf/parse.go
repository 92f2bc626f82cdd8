package kvconf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Entry is one "key = value" line of a configuration file.
type Entry struct {
	Key   string
	Value string // without quotes and escapes
	Line  int    // 1-based
	// Quoted reports that the value was written in double quotes; quoted
	// values are never read from the environment.
	Quoted bool
}

// Error is a configuration error at a place in a file.
type Error struct {
	File string // empty when not known
	Line int    // 0 when not tied to a line
	Key  string // empty when not known
	Err  error
}

// Error returns "file:line: key: message", leaving out the parts not known.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	}
	if e.Line > 0 {
		if e.File != "" {
			b.WriteByte(':')
		} else {
			b.WriteString("line ")
		}
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Key)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ErrUnknownKey is wrapped in the *Error for a key that matches no field.
var ErrUnknownKey = errors.New("unknown key")

const bom = "\uFEFF"

// Parse reads the entries of a configuration file, in file order. file names
// the input in errors. It checks the syntax and that no key is set twice,
// but not what the keys mean.
func Parse(r io.Reader, file string) ([]Entry, error) {
	br := bufio.NewReader(r)
	var entries []Entry
	seen := make(map[string]int)
	for lineNo := 1; ; lineNo++ {
		line, readErr := br.ReadString('\n')
		if readErr != nil && readErr != io.EOF {
			return nil, fmt.Errorf("kvconf: read %s: %w", file, readErr)
		}
		if readErr == io.EOF && line == "" {
			return entries, nil
		}
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		if lineNo == 1 {
			line = strings.TrimPrefix(line, bom)
		}
		e, ok, err := parseLine(line)
		if err != nil {
			err.File, err.Line = file, lineNo
			return nil, err
		}
		if ok {
			if first, dup := seen[e.Key]; dup {
				return nil, &Error{File: file, Line: lineNo, Key: e.Key,
					Err: fmt.Errorf("duplicate key (first set on line %d)", first)}
			}
			seen[e.Key] = lineNo
			e.Line = lineNo
			entries = append(entries, e)
		}
		if readErr == io.EOF {
			return entries, nil
		}
	}
}

// parseLine parses one line without its line end; ok is false for blank and
// comment lines.
func parseLine(line string) (e Entry, ok bool, err *Error) {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' {
		return Entry{}, false, nil
	}
	eq := strings.IndexByte(t, '=')
	if eq < 0 {
		return Entry{}, false, &Error{Err: fmt.Errorf("missing \"=\" in %q", shorten(t))}
	}
	key := strings.TrimSpace(t[:eq])
	if key == "" {
		return Entry{}, false, &Error{Err: errors.New(`missing key before "="`)}
	}
	if !validKey(key) {
		return Entry{}, false, &Error{Err: invalidKeyError(key)}
	}
	rest := strings.TrimLeftFunc(t[eq+1:], unicode.IsSpace)
	if rest != "" && rest[0] == '"' {
		v, msg := unquote(rest)
		if msg != "" {
			return Entry{}, false, &Error{Key: key, Err: errors.New(msg)}
		}
		return Entry{Key: key, Value: v, Quoted: true}, true, nil
	}
	return Entry{Key: key, Value: bareValue(rest)}, true, nil
}

func invalidKeyError(k string) error {
	return fmt.Errorf(`invalid key %q (allowed: letters, digits, "_", "-", ".")`, shorten(k))
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// bareValue cuts a comment off an unquoted value (already trimmed on the
// left) and trims it on the right.
func bareValue(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '#' {
			continue
		}
		if i == 0 {
			return ""
		}
		if r, _ := utf8.DecodeLastRuneInString(s[:i]); unicode.IsSpace(r) {
			s = s[:i]
			break
		}
	}
	return strings.TrimRightFunc(s, unicode.IsSpace)
}

// unquote decodes a quoted value starting at s[0] == '"'. It returns a
// message instead of the value when the quoting is wrong.
func unquote(s string) (string, string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", "unterminated quoted value"
			}
			i++
			if s[i] != '"' && s[i] != '\\' {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return "", fmt.Sprintf(`invalid escape "\%c" in quoted value (only \" and \\ are allowed)`, r)
			}
			b.WriteByte(s[i])
		case '"':
			after := strings.TrimLeftFunc(s[i+1:], unicode.IsSpace)
			if after != "" && after[0] != '#' {
				return "", fmt.Sprintf("unexpected text after quoted value: %q", shorten(after))
			}
			return b.String(), ""
		default:
			b.WriteByte(c)
		}
	}
	return "", "unterminated quoted value"
}

// shorten keeps error messages about long lines readable.
func shorten(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// quote returns s as it must be written for Parse to read s back: bare when
// that is exact, else in double quotes. literal forces quotes on values that
// would otherwise be read from the environment.
func quote(s string, literal bool) (string, error) {
	if strings.ContainsAny(s, "\n") {
		return "", errors.New("value contains a line break")
	}
	if s != "" && s[0] != '"' && !literal && bareValue(strings.TrimLeftFunc(s, unicode.IsSpace)) == s {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String(), nil
}
