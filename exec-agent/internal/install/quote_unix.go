//go:build unix

package install

import "strings"

// quoteProg quotes a program for the runner's command line (sh -c).
func quoteProg(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// envPrefix sets variables for one command in sh.
func envPrefix(kv string) string { return kv + " " }
