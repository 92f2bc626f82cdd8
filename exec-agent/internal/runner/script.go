//go:build unix

package runner

import (
	"errors"
	"strings"
)

// shellQuote quotes s for a POSIX shell: the result is one word whose value
// is exactly s.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, needsQuote) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_./=:,+@%", r)
}

// shellScript is the command line given to `sh -c`: Cmd as the caller wrote
// it (a shell command line), then each of Args as one quoted word.
func shellScript(cmd string, args []string) string {
	var b strings.Builder
	b.WriteString(cmd)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

// validUser accepts what can safely follow `su`/`sudo -u` as one argument.
func validUser(u string) error {
	switch {
	case u == "":
		return errors.New("empty")
	case strings.HasPrefix(u, "-"):
		return errors.New("starts with '-'")
	case strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == ':' }):
		return errors.New("contains a space, control character, '/' or ':'")
	}
	return nil
}
