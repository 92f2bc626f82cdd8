//go:build unix

package files

import (
	"testing"
)

// pathTests are the cases of TestCleanPath with Unix paths.
var pathTests = []struct {
	in, want, err string
}{
	{"/var/log/syslog", "/var/log/syslog", ""},
	{"/", "/", ""},
	{"/var/log/", "/var/log", ""},
	{"//var///log", "/var/log", ""},
	{"/a/..b/c..", "/a/..b/c..", ""},
	{"", "", `invalid path "": empty`},
	{"var/log", "", `invalid path "var/log": not absolute`},
	{"./x", "", `invalid path "./x": not absolute`},
	{"../etc/passwd", "", `invalid path "../etc/passwd": not absolute`},
	{"/var/../etc/shadow", "", `invalid path "/var/../etc/shadow": has a . or .. element`},
	{"/var/log/..", "", `invalid path "/var/log/..": has a . or .. element`},
	{"/var/./log", "", `invalid path "/var/./log": has a . or .. element`},
	{"/etc/passwd\x00.txt", "", `invalid path "/etc/passwd\x00.txt": contains NUL`},
}

func FuzzCleanPath(f *testing.F) {
	for _, tt := range pathTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := CleanPath(p)
		if err != nil {
			return
		}
		if c == "" || c[0] != '/' {
			t.Fatalf("CleanPath(%q) = %q: not absolute", p, c)
		}
		if again, err := CleanPath(c); err != nil || again != c {
			t.Fatalf("CleanPath(%q) = %q, but that cleans to %q, %v", p, c, again, err)
		}
	})
}
