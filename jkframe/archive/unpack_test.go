package archive

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnpack: an archive unpacked over an earlier version replaces its
// files whole (a symlink in a file's place is replaced, not followed),
// keeps links and permission bits, and reports what it wrote. The
// exhaustive cases are exec-agent's install tests (TestExtract*), which
// go through Unpack.
func TestUnpack(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "dir")
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", filepath.Join(dir, "etc", "app.conf")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "a.tar")
	data := mkTar(t,
		te{name: "./", typ: tar.TypeDir, mode: 0o755},
		te{name: "./bin/", typ: tar.TypeDir, mode: 0o750},
		te{name: "./bin/app", body: "#!/bin/sh\n", mode: 0o4755},
		te{name: "./bin/app2", typ: tar.TypeLink, link: "./bin/app"},
		te{name: "./etc/app.conf", body: "new\n", mode: 0o640},
		te{name: "./run", typ: tar.TypeSymlink, link: "bin/app"})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := Unpack(file, Tar, dir, UnpackLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(out.Files, " ") != "bin/app bin/app2 etc/app.conf" || out.Entries != 5 || out.Bytes != 14 {
		t.Fatalf("Unpacked %+v", out)
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "outside")); string(b) != "precious" {
		t.Fatalf("written through the old symlink: %q", b)
	}
	for name, want := range map[string]fs.FileMode{"bin": fs.ModeDir | 0o750, "bin/app": 0o755, "etc/app.conf": 0o640, "run": fs.ModeSymlink} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got&(fs.ModeType|fs.ModePerm|fs.ModeSetuid) != want && !(want == fs.ModeSymlink && got&fs.ModeSymlink != 0) {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
	a, _ := os.Stat(filepath.Join(dir, "bin/app"))
	b, _ := os.Stat(filepath.Join(dir, "bin/app2"))
	if !os.SameFile(a, b) {
		t.Error("hard link not kept")
	}
}

// TestUnpackRefuses: names read one way by Extract are refused outright,
// symlinks are followed through what is already in the directory, and a
// refused archive writes nothing.
func TestUnpackRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"dot dot inside", mkTar(t, te{name: "a/../b", body: "x"}), "'..' in name"},
		{"backslash", mkTar(t, te{name: `a\b`, body: "x"}), "backslash in name"},
		{"through a symlink of the directory", mkTar(t, te{name: "c", typ: tar.TypeSymlink, link: "link/.."}), "leads out of the directory"},
		{"symlink then file beneath", mkTar(t, te{name: "l", typ: tar.TypeSymlink, link: "sub"}, te{name: "l/x", body: "x"}), `written through the symlink "l"`},
		{"wrong format", gz(t, te{name: "f", body: "x"}), "not a valid tar archive"},
		{"empty", nil, "not a valid tar archive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "dir")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("..", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "a.tar")
			if err := os.WriteFile(file, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Unpack(file, Tar, dir, UnpackLimits{})
			var ae *Error
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want an *Error with %q", err, c.msg)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("refused but wrote %d entries", len(ents)-1)
			}
		})
	}
}
