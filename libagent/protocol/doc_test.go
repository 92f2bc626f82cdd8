package protocol

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestDocTable keeps the message table of docs/protocol.md in step with the
// type constants: same numbers, names and payload keys.
func TestDocTable(t *testing.T) {
	f, err := os.Open("../../docs/protocol.md")
	if os.IsNotExist(err) {
		t.Skip("docs/protocol.md not found (module built outside the repository)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| (\\d+) \\| ([a-z_]+) \\| [^|]+ \\| (?:`([a-z_]+)`|–[^|]*) \\|")
	seen := map[Type]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		typ := Type(n)
		seen[typ] = true
		if typ.String() != m[2] {
			t.Errorf("doc row %s: name %q, code says %q", m[1], m[2], typ)
		}
		if typ.PayloadKey() != m[3] {
			t.Errorf("doc row %s: payload key %q, code says %q", m[1], m[3], typ.PayloadKey())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for typ := range registry().types {
		if !seen[typ] {
			t.Errorf("type %d (%s) missing from the doc's message table", int(typ), typ)
		}
	}
}
