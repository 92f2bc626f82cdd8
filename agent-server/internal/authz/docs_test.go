package authz

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestScopesDocumented checks that docs/configuration.md's scope table
// lists every scope of the table above, and no other.
func TestScopesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := bytes.Cut(b, []byte("| scope | allows |\n"))
	if !ok {
		t.Fatal(`docs/configuration.md has no "| scope | allows |" table`)
	}
	table, _, _ = bytes.Cut(table, []byte("\n\n"))
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z]+(?::[a-z-]+)?)` \\|").FindAllSubmatch(table, -1) {
		documented = append(documented, string(m[1]))
	}
	var want []string
	for _, s := range All() {
		want = append(want, string(s.Name))
	}
	for _, w := range want {
		if !slices.Contains(documented, w) {
			t.Errorf("scope %s is not in docs/configuration.md's scope table", w)
		}
	}
	for _, d := range documented {
		if !slices.Contains(want, d) {
			t.Errorf("docs/configuration.md's scope table lists %s, which is no scope", d)
		}
	}
}
