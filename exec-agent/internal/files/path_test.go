package files

import (
	"errors"
	"strings"
	"testing"
)

var nameTests = []struct {
	name string
	err  string // "" = valid
}{
	{"file.txt", ""},
	{"...", ""},
	{".hidden", ""},
	{"with space", ""},
	{"中文.txt", ""},
	{strings.Repeat("a", 255), ""},
	{"", `invalid file name "": empty`},
	{".", `invalid file name ".": is . or ..`},
	{"..", `invalid file name "..": is . or ..`},
	{"../etc/passwd", `invalid file name "../etc/passwd": contains a path separator`},
	{"a/b", `invalid file name "a/b": contains a path separator`},
	{"/abs", `invalid file name "/abs": contains a path separator`},
	{`a\b`, `invalid file name "a\\b": contains a path separator`},
	{`..\..\win.ini`, `invalid file name "..\\..\\win.ini": contains a path separator`},
	{"a\x00b", `invalid file name "a\x00b": contains NUL`},
	{"a\x01b", `invalid file name "a\x01b": contains a control character`},
	{"line\nfeed", `invalid file name "line\nfeed": contains a control character`},
	{"tab\t", `invalid file name "tab\t": contains a control character`},
	{"del\x7f", `invalid file name "del\x7f": contains a control character`},
	{"esc\x1b[31m", `invalid file name "esc\x1b[31m": contains a control character`},
	{"c1\u0085", `invalid file name "c1\u0085": contains a control character`},
	{"bad\xffutf8", `invalid file name "bad\xffutf8": is not valid UTF-8`},
	{strings.Repeat("a", 256), `invalid file name "` + strings.Repeat("a", 256) + `": longer than 255 bytes`},
}

// TestCleanPath holds CleanPath to pathTests, the table of the OS's paths.
func TestCleanPath(t *testing.T) {
	for _, tt := range pathTests {
		got, err := CleanPath(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || err.Error() != tt.err || !errors.Is(err, ErrPath) {
			t.Errorf("CleanPath(%q) = %q, %v; want error %s", tt.in, got, err, tt.err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tt := range nameTests {
		err := ValidName(tt.name)
		if tt.err == "" {
			if err != nil {
				t.Errorf("ValidName(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.err || !errors.Is(err, ErrName) {
			t.Errorf("ValidName(%q) = %v, want %s", tt.name, err, tt.err)
		}
	}
}

func FuzzName(f *testing.F) {
	for _, tt := range nameTests {
		f.Add(tt.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		// A valid name is one element that stays inside its directory.
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || len(name) > 255 {
			t.Fatalf("ValidName accepted %q", name)
		}
		if p, err := CleanPath("/base/" + name); err != nil || p != "/base/"+name {
			t.Fatalf("/base/%q cleans to %q, %v", name, p, err)
		}
	})
}
