package yaml

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	yamlv3 "gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// mapFS builds an in-memory file system from name, contents pairs.
func mapFS(kv ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return m
}

type expandCase struct {
	name  string
	files []string // name, contents, ...; expansion starts at the first
	opts  []Option
	want  string // expected text when err is ""
	err   string // expected error text
	is    error  // expected sentinel, if any
}

var expandCases = []expandCase{
	{name: "no includes", files: []string{"a.yaml", "x: 1\ny: 2\n"}, want: "x: 1\ny: 2\n"},
	{name: "empty file", files: []string{"a.yaml", ""}, want: ""},
	{name: "missing final newline", files: []string{"a.yaml", "x: 1"}, want: "x: 1\n"},
	{name: "plain include", files: []string{"a.yaml", "x: 1\n#include b.yaml\nz: 3\n", "b.yaml", "y: 2\n"}, want: "x: 1\ny: 2\nz: 3\n"},
	{
		name:  "indented include, blank lines stay blank",
		files: []string{"a.yaml", "m:\n  #include b.yaml\n", "b.yaml", "k: 1\n\nl:\n  - 2"},
		want:  "m:\n  k: 1\n\n  l:\n    - 2\n",
	},
	{
		name:  "brackets and quotes",
		files: []string{"a.yaml", "#include <b.yaml>\n#include \"c.yaml\"\n#include   d.yaml   \n", "b.yaml", "b: 1\n", "c.yaml", "c: 1\n", "d.yaml", "d: 1\n"},
		want:  "b: 1\nc: 1\nd: 1\n",
	},
	{
		name:  "relative to the including file",
		files: []string{"a.yaml", "#include sub/b.yaml\n", "sub/b.yaml", "#include c.yaml\n#include ../d.yaml\n", "sub/c.yaml", "c: 1\n", "d.yaml", "d: 1\n"},
		want:  "c: 1\nd: 1\n",
	},
	{
		name:  "nested indentation adds up",
		files: []string{"a.yaml", "a:\n  #include b.yaml\n", "b.yaml", "b:\n  #include c.yaml\n", "c.yaml", "c: 1\n"},
		want:  "a:\n  b:\n    c: 1\n",
	},
	{
		name:  "glob in lexical order",
		files: []string{"a.yaml", "l:\n#include d/*.yaml\n", "d/2.yaml", "- 2\n", "d/1.yaml", "- 1\n", "d/x.txt", "- x\n"},
		want:  "l:\n- 1\n- 2\n",
	},
	{name: "glob matching nothing", files: []string{"a.yaml", "x: 1\n#include none/*.yaml\n"}, want: "x: 1\n"},
	{name: "same file twice is no cycle", files: []string{"a.yaml", "#include b.yaml\n#include b.yaml\n", "b.yaml", "- 1\n"}, want: "- 1\n- 1\n"},
	{name: "not an include", files: []string{"a.yaml", "#included: no\n# include b.yaml\nx: 1 #include b.yaml\n"}, want: "#included: no\n# include b.yaml\nx: 1 #include b.yaml\n"},
	{name: "CRLF", files: []string{"a.yaml", "x: 1\r\n#include b.yaml\r\n", "b.yaml", "y: 2\r\n"}, want: "x: 1\r\ny: 2\r\n"},
	{name: "depth at the limit", files: []string{"a.yaml", "#include b.yaml\n", "b.yaml", "#include c.yaml\n", "c.yaml", "c: 1\n"}, opts: []Option{WithMaxDepth(2)}, want: "c: 1\n"},

	{name: "missing top file", files: []string{"x.yaml", ""}, err: "read a.yaml: open a.yaml: file does not exist", is: fs.ErrNotExist},
	{
		name:  "missing include",
		files: []string{"a.yaml", "x: 1\n  #include nope.yaml\n"},
		err:   `a.yaml:2: include "nope.yaml": open nope.yaml: file does not exist`, is: fs.ErrNotExist,
	},
	{
		name:  "missing nested include",
		files: []string{"a.yaml", "#include sub/b.yaml\n", "sub/b.yaml", "\n\n#include c.yaml\n"},
		err:   `sub/b.yaml:3: include "c.yaml": open sub/c.yaml: file does not exist`, is: fs.ErrNotExist,
	},
	{
		name:  "cycle",
		files: []string{"a.yaml", "x: 1\n\n#include b.yaml\n", "b.yaml", "#include a.yaml\n"},
		err:   "b.yaml:1: include cycle: a.yaml:3 -> b.yaml:1 -> a.yaml", is: ErrCycle,
	},
	{name: "self include", files: []string{"a.yaml", "#include a.yaml\n"}, err: "a.yaml:1: include cycle: a.yaml:1 -> a.yaml", is: ErrCycle},
	{
		name:  "cycle through a glob",
		files: []string{"a.yaml", "#include d/*.yaml\n", "d/1.yaml", "#include ../a.yaml\n"},
		err:   "d/1.yaml:1: include cycle: a.yaml:1 -> d/1.yaml:1 -> a.yaml", is: ErrCycle,
	},
	{
		name:  "depth limit",
		files: []string{"a.yaml", "#include b.yaml\n", "b.yaml", "#include c.yaml\n", "c.yaml", "#include d.yaml\n", "d.yaml", "d: 1\n"},
		opts:  []Option{WithMaxDepth(2)},
		err:   "c.yaml:1: include depth limit exceeded (2): a.yaml:1 -> b.yaml:1 -> c.yaml:1 -> d.yaml", is: ErrDepth,
	},
	{name: "no path", files: []string{"a.yaml", "x: 1\n#include\n"}, err: "a.yaml:2: bad include line: no path", is: ErrSyntax},
	{name: "empty brackets", files: []string{"a.yaml", "#include <>\n"}, err: "a.yaml:1: bad include line: no path", is: ErrSyntax},
	{name: "bad glob", files: []string{"a.yaml", "#include [.yaml\n"}, err: `a.yaml:1: include "[.yaml": syntax error in pattern`, is: path.ErrBadPattern},
	{name: "outside the fs", files: []string{"a.yaml", "#include ../x.yaml\n"}, err: `a.yaml:1: include "../x.yaml": open ../x.yaml: invalid argument`, is: fs.ErrInvalid},
	{name: "absolute in fs", files: []string{"a.yaml", "#include /etc/passwd\n"}, err: `a.yaml:1: include "/etc/passwd": open /etc/passwd: invalid argument`, is: fs.ErrInvalid},
	{
		name:  "too large",
		files: []string{"a.yaml", "#include b.yaml\n#include b.yaml\n", "b.yaml", "0123456789\n"},
		opts:  []Option{WithMaxSize(15)},
		err:   "b.yaml:1: expanded text too large (limit 15 bytes)", is: ErrTooLarge,
	},
	{
		name:  "too many includes",
		files: []string{"a.yaml", "#include b.yaml\n#include b.yaml\n#include b.yaml\n", "b.yaml", ""},
		opts:  []Option{WithMaxIncludes(2)},
		err:   "a.yaml:3: expanded text too large: more than 2 files included", is: ErrTooLarge,
	},
}

func TestExpandFS(t *testing.T) {
	for _, tc := range expandCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandFS(mapFS(tc.files...), "a.yaml", tc.opts...)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("got %q, want error %q", got, tc.err)
				}
				if err.Error() != tc.err {
					t.Fatalf("error\n got %q\nwant %q", err, tc.err)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Fatalf("errors.Is(%v, %v) = false", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestExpandGolden expands testdata/<case>/main.yaml on the OS file system and
// compares with testdata/<case>.golden (go test -update rewrites them).
func TestExpandGolden(t *testing.T) {
	for _, name := range []string{"nested", "glob"} {
		t.Run(name, func(t *testing.T) {
			got, err := Expand(filepath.Join("testdata", name, "main.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
			// The expansion must be valid YAML.
			var v any
			if err := yamlv3.Unmarshal(got, &v); err != nil {
				t.Fatalf("expanded text is not YAML: %v", err)
			}
		})
	}
}

func TestExpandOSErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "x: 1\n#include b.yaml\n")
	write("b.yaml", "#include ./a.yaml\n")
	_, err := Expand(filepath.Join(dir, "a.yaml"))
	want := filepath.Join(dir, "b.yaml") + ":1: include cycle: " + filepath.Join(dir, "a.yaml") + ":2 -> " +
		filepath.Join(dir, "b.yaml") + ":1 -> " + filepath.Join(dir, "a.yaml")
	if err == nil || err.Error() != want || !errors.Is(err, ErrCycle) {
		t.Fatalf("got %v\nwant %s", err, want)
	}

	write("c.yaml", "#include missing.yaml\n")
	_, err = Expand(filepath.Join(dir, "c.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), filepath.Join(dir, "c.yaml")+`:1: include "missing.yaml": `) {
		t.Fatalf("got %v", err)
	}

	// An absolute include path is allowed on the OS file system.
	write("d.yaml", "#include "+filepath.ToSlash(filepath.Join(dir, "e.yaml"))+"\n")
	write("e.yaml", "e: 1\n")
	got, err := Expand(filepath.Join(dir, "d.yaml"))
	if err != nil || string(got) != "e: 1\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

type server struct {
	Addr string `yaml:"addr"`
	Port int    `yaml:"port"`
}

type conf struct {
	Name   string `yaml:"name"`
	Server server `yaml:"server"`
}

func TestDecodeFS(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		opts  []Option
		want  conf
		err   string
	}{
		{
			name:  "ok",
			files: []string{"a.yaml", "name: x\nserver:\n  #include s.yaml\n", "s.yaml", "addr: h\nport: 1\n"},
			want:  conf{Name: "x", Server: server{Addr: "h", Port: 1}},
		},
		{name: "empty document", files: []string{"a.yaml", "# nothing\n"}},
		{
			name:  "unknown field names the included file",
			files: []string{"a.yaml", "name: x\nserver:\n  #include s.yaml\n", "s.yaml", "addr: h\nprot: 1\n"},
			err:   "yaml: unmarshal errors:\n  s.yaml:2: field prot not found in type yaml.server",
		},
		{
			name:  "unknown field allowed",
			files: []string{"a.yaml", "name: x\nserver:\n  #include s.yaml\n", "s.yaml", "addr: h\nprot: 1\n"},
			opts:  []Option{AllowUnknownFields()},
			want:  conf{Name: "x", Server: server{Addr: "h"}},
		},
		{
			name:  "type error",
			files: []string{"a.yaml", "name: x\n#include s.yaml\n", "s.yaml", "server:\n  port: eighty\n"},
			err:   "yaml: unmarshal errors:\n  s.yaml:2: cannot unmarshal !!str `eighty` into int",
		},
		{
			name:  "syntax error",
			files: []string{"a.yaml", "name: x\n#include s.yaml\n", "s.yaml", "server: [\n"},
			err:   "yaml: s.yaml:1: did not find expected node content",
		},
		{
			name:  "error without a line",
			files: []string{"a.yaml", "name: \x01\n"},
			err:   "a.yaml: yaml: control characters are not allowed",
		},
		{
			name:  "include error",
			files: []string{"a.yaml", "name: x\n#include s.yaml\n"},
			err:   `a.yaml:2: include "s.yaml": open s.yaml: file does not exist`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got conf
			err := DecodeFS(mapFS(tc.files...), "a.yaml", &got, tc.opts...)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error\n got %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeKeepsTypeError(t *testing.T) {
	var c conf
	err := DecodeFS(mapFS("a.yaml", "name: [1]\n"), "a.yaml", &c)
	var te *yamlv3.TypeError
	if !errors.As(err, &te) {
		t.Fatalf("errors.As(*yaml.TypeError) failed for %v", err)
	}
}

func TestDecodeOS(t *testing.T) {
	var v struct {
		Name   string         `yaml:"name"`
		Server map[string]any `yaml:"server"`
		Limits map[string]any `yaml:"limits"`
	}
	if err := Decode(filepath.Join("testdata", "nested", "main.yaml"), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "demo" || v.Server["port"] != 8080 || v.Limits["cpu"] != 50 {
		t.Fatalf("decoded %+v", v)
	}
}

// FuzzExpand expands fuzz-built file sets: the data is split on "\x00" into
// a.yaml, b.yaml, ... so includes between them, globs, cycles and deep nests
// all come up. Expansion must neither panic nor run away.
func FuzzExpand(f *testing.F) {
	for _, tc := range expandCases {
		var parts []string
		for i := 1; i < len(tc.files); i += 2 {
			parts = append(parts, tc.files[i])
		}
		f.Add(strings.Join(parts, "\x00"))
	}
	f.Add("#include *\x00#include *.yaml\x00#include [a-c].yaml")
	f.Add("#include b.yaml\n#include b.yaml\x00#include c.yaml\n#include c.yaml\x00#include d.yaml\n#include d.yaml\x00x")
	f.Fuzz(func(t *testing.T, data string) {
		parts := strings.Split(data, "\x00")
		if len(parts) > 8 {
			parts = parts[:8]
		}
		fsys := fstest.MapFS{}
		for i, p := range parts {
			fsys[string(rune('a'+i))+".yaml"] = &fstest.MapFile{Data: []byte(p)}
		}
		out, err := ExpandFS(fsys, "a.yaml", WithMaxSize(1<<20), WithMaxIncludes(1000))
		if err == nil && len(out) > 1<<20 {
			t.Fatalf("output of %d bytes passed the limit", len(out))
		}
		var v any
		_ = DecodeFS(fsys, "a.yaml", &v, WithMaxSize(1<<20), WithMaxIncludes(1000))
	})
}
