package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// srcTree writes the tree the format tests pack with the real tools.
func srcTree(t *testing.T) string {
	src := t.TempDir()
	for _, f := range []struct {
		name string
		mode fs.FileMode
		body string
	}{
		{"bin/app", 0o755, "#!/bin/sh\necho app\n"},
		{"conf/app.conf", 0o640, "key = value\n"},
		{"share/doc/README", 0o444, "read me\n"},
	} {
		p := filepath.Join(src, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "conf"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/app", filepath.Join(src, "run")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "bin/app"), filepath.Join(src, "bin/app-hard")); err != nil {
		t.Fatal(err)
	}
	return src
}

// TestExtractFormats unpacks archives made by tar, bzip2 and zip from one
// tree and compares the result with the tree: content, modes, links.
func TestExtractFormats(t *testing.T) {
	need(t, "tar")
	src := srcTree(t)
	want := snapshot(t, src)
	work := t.TempDir()
	cases := []struct {
		kind Kind
		name string
		make func(out string)
	}{
		{KindTar, "a.tar", func(out string) { runCmd(t, src, "tar", "-cf", out, ".") }},
		{KindTarGz, "a.tar.gz", func(out string) { runCmd(t, src, "tar", "-czf", out, ".") }},
		{KindTarBz2, "a.tar.bz2", func(out string) { need(t, "bzip2"); runCmd(t, src, "tar", "-cjf", out, ".") }},
		{KindZip, "a.zip", func(out string) { need(t, "zip"); runCmd(t, src, "zip", "-q", "-r", "--symlinks", out, ".") }},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			archive := filepath.Join(work, c.name)
			c.make(archive)
			if k, err := KindOf(c.name); err != nil || k != c.kind {
				t.Fatalf("KindOf(%q) = %q, %v", c.name, k, err)
			}
			if err := CheckMagic(archive, c.kind); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "target")
			out, err := Extract(archive, c.kind, dir, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got := snapshot(t, dir)
			// The target directory itself is made by Extract (0755).
			want := slices.Clone(want)
			got[0], want[0] = ". d", ". d"
			if c.kind == KindZip {
				// zip keeps no hard links: the second name is a copy.
				want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, "bin/app-hard") })
				got = slices.DeleteFunc(got, func(s string) bool { return strings.HasPrefix(s, "bin/app-hard") })
			}
			if !slices.Equal(got, want) {
				t.Fatalf("unpacked tree differs:\ngot  %q\nwant %q", got, want)
			}
			if !slices.Contains(out.Files, "conf/app.conf") || out.Bytes == 0 {
				t.Fatalf("Unpacked = %+v", out)
			}
			if c.kind != KindZip {
				a, _ := os.Stat(filepath.Join(dir, "bin/app"))
				b, _ := os.Stat(filepath.Join(dir, "bin/app-hard"))
				if !os.SameFile(a, b) {
					t.Fatal("hard link not kept")
				}
			}
		})
	}
}

// TestExtractGlobalHeader: a pax global header (git archive writes one) is
// metadata, not an entry.
func TestExtractGlobalHeader(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc123"}})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	dir := t.TempDir()
	out, err := Extract(writeFile(t, t.TempDir(), "a.tar", buf.Bytes()), KindTar, dir, Limits{})
	if err != nil || !slices.Equal(out.Files, []string{"f"}) {
		t.Fatalf("Extract = %+v, %v", out, err)
	}
}

// TestExtractReadOnlyDir: a directory without write permission gets its
// mode after its entries are written.
func TestExtractReadOnlyDir(t *testing.T) {
	data := makeTar(t, []ent{{name: "ro/", typ: tar.TypeDir, mode: 0o555}, file("ro/f", "x")}, false)
	dir := filepath.Join(t.TempDir(), "d")
	if _, err := Extract(writeFile(t, t.TempDir(), "a.tar", data), KindTar, dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ro"))
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("ro: %v %v", fi.Mode(), err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "ro"), 0o755) })
}

// TestExtractDropsSpecialBits: setuid, setgid and sticky bits are not kept.
func TestExtractDropsSpecialBits(t *testing.T) {
	data := makeTar(t, []ent{{name: "suid", typ: tar.TypeReg, body: "x", mode: 0o4755}}, false)
	dir := t.TempDir()
	if _, err := Extract(writeFile(t, t.TempDir(), "a.tar", data), KindTar, dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "suid")); fi.Mode() != 0o755 {
		t.Fatalf("mode %v, want -rwxr-xr-x", fi.Mode())
	}
}

// TestExtractReplacesSymlink: a symlink already in dir where the archive
// has a file is replaced, not followed.
func TestExtractReplacesSymlink(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "d")
	os.Mkdir(dir, 0o755)
	writeFile(t, parent, "target", []byte("precious"))
	if err := os.Symlink("../target", filepath.Join(dir, "cfg")); err != nil {
		t.Fatal(err)
	}
	data := makeTar(t, []ent{file("cfg", "new")}, false)
	if _, err := Extract(writeFile(t, t.TempDir(), "a.tar", data), KindTar, dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "target")); string(b) != "precious" {
		t.Fatalf("written through the symlink: target = %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "cfg")); !fi.Mode().IsRegular() {
		t.Fatalf("cfg is %v", fi.Mode())
	}
}

// TestExtractUndo: an error while writing (a zip entry whose data fails its
// CRC, found only when read) removes what the extraction had created and
// leaves what was there before.
func TestExtractUndo(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"a/one.txt", "first"}, {"b.txt", "CORRUPTME"}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.body))
	}
	zw.Close()
	data := bytes.Replace(buf.Bytes(), []byte("CORRUPTME"), []byte("corrupted"), 1)
	dir := t.TempDir()
	writeFile(t, dir, "kept", []byte("before"))
	before := snapshot(t, dir)
	_, err := Extract(writeFile(t, t.TempDir(), "a.zip", data), KindZip, dir, Limits{})
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("err = %v, want a checksum error", err)
	}
	if after := snapshot(t, dir); !slices.Equal(after, before) {
		t.Fatalf("not undone:\nbefore %q\nafter  %q", before, after)
	}
}

type hostile struct {
	name    string
	zip     bool
	gz      bool
	ents    []ent
	raw     []byte // the archive as is, instead of ents
	lim     Limits
	prepare func(t *testing.T, parent, dir string) // things already there
	want    string
}

func hostileCases() []hostile {
	zeros := strings.Repeat("\x00", 1<<20)
	return []hostile{
		{name: "dotdot", ents: []ent{file("../evil", "x")}, want: "'..' in name"},
		{name: "dotdot inside", ents: []ent{file("a/../../evil", "x")}, want: "'..' in name"},
		{name: "dotdot after good entries", ents: []ent{file("good", "x"), dirEnt("sub/"), file("sub/../../evil", "x")}, want: "'..' in name"},
		{name: "absolute", ents: []ent{file("/tmp/evil", "x")}, want: "absolute path"},
		{name: "drive letter", ents: []ent{file("C:/evil", "x")}, want: "drive letter"},
		{name: "backslash", ents: []ent{file(`..\evil`, "x")}, want: "backslash"},
		{name: "names the directory", ents: []ent{file(".", "x")}, want: "names the target directory itself"},
		{name: "reserved name", ents: []ent{file(".~install-0001", "x")}, want: "reserved"},
		{name: "symlink out", ents: []ent{symlink("l", "../outside")}, want: "leads out of the directory"},
		{name: "symlink deep out", ents: []ent{dirEnt("a/"), symlink("a/l", "../../x")}, want: "leads out"},
		{name: "symlink absolute", ents: []ent{symlink("l", "/etc")}, want: "absolute path"},
		{name: "symlink then write through", ents: []ent{symlink("l", "sub"), file("l/x", "x")}, want: "written through the symlink \"l\""},
		{name: "symlink out then write through", ents: []ent{symlink("l", ".."), file("l/evil", "x")}, want: "written through"},
		{name: "symlink chain out", ents: []ent{symlink("a", "."), dirEnt("x/"), symlink("x/c", "../a/..")}, want: "leads out"},
		{name: "symlink chain out, link later", ents: []ent{dirEnt("x/"), symlink("x/c", "../a/.."), symlink("a", ".")}, want: "leads out"},
		{name: "symlink loop", ents: []ent{symlink("a", "b"), symlink("b", "a")}, want: "too many levels"},
		{name: "symlink empty", ents: []ent{symlink("l", "")}, want: "empty target"},
		{name: "duplicate over symlink", ents: []ent{symlink("a", "b"), file("a", "x")}, want: "duplicate entry"},
		{name: "symlink over file", ents: []ent{file("a", "x"), symlink("a", "../evil")}, want: "duplicate entry"},
		{name: "duplicate file", ents: []ent{file("a", "x"), file("a", "y")}, want: "duplicate entry"},
		{name: "symlink over parent", ents: []ent{file("a/b", "x"), symlink("a", "..")}, want: "parent directory of an earlier entry"},
		{name: "file as parent", ents: []ent{file("f", "x"), file("f/g", "y")}, want: "not a directory"},
		{name: "hardlink dotdot", ents: []ent{hardlink("h", "../../etc/passwd")}, want: "'..' in name"},
		{name: "hardlink absolute", ents: []ent{hardlink("h", "/etc/passwd")}, want: "absolute path"},
		{name: "hardlink to later", ents: []ent{hardlink("h", "f"), file("f", "x")}, want: "not an earlier regular file"},
		{name: "hardlink to symlink", ents: []ent{symlink("s", "x"), hardlink("h", "s")}, want: "not an earlier regular file"},
		{name: "hardlink to existing", ents: []ent{hardlink("h", "there")}, want: "not an earlier regular file",
			prepare: func(t *testing.T, _, dir string) { writeFile(t, dir, "there", []byte("x")) }},
		{name: "char device", ents: []ent{{name: "null", typ: tar.TypeChar, mode: 0o666}}, want: "device file"},
		{name: "block device", ents: []ent{{name: "sda", typ: tar.TypeBlock, mode: 0o660}}, want: "device file"},
		{name: "fifo", ents: []ent{{name: "p", typ: tar.TypeFifo, mode: 0o644}}, want: "named pipe"},
		{name: "too many bytes", ents: []ent{file("big", strings.Repeat("x", 2000))}, lim: Limits{MaxBytes: 1000}, want: "more than 1000 bytes"},
		{name: "too many entries", ents: []ent{file("a", ""), file("b", ""), file("c", ""), file("d", "")}, lim: Limits{MaxEntries: 3}, want: "more than 3 entries"},
		{name: "ratio", gz: true, ents: []ent{file("zeros", zeros)}, lim: Limits{MaxRatio: 10, RatioFloor: 1024}, want: "times its size"},
		{name: "through existing symlink", ents: []ent{file("link/x", "x")}, want: "a symlink already in the directory",
			prepare: func(t *testing.T, _, dir string) { os.Symlink("../outside", filepath.Join(dir, "link")) }},
		{name: "symlink via existing symlink", ents: []ent{symlink("c", "link/..")}, want: "leads out",
			prepare: func(t *testing.T, _, dir string) { os.Symlink(".", filepath.Join(dir, "link")) }},
		{name: "dir over existing file", ents: []ent{dirEnt("f/")}, want: "not a directory",
			prepare: func(t *testing.T, _, dir string) { writeFile(t, dir, "f", []byte("x")) }},
		{name: "corrupt gzip", gz: true, raw: []byte("\x1f\x8bnot really"), want: "gzip"},
		{name: "corrupt tar", raw: bytes.Repeat([]byte("garbage!"), 200), want: "not a valid tar archive"},

		{name: "zip dotdot", zip: true, ents: []ent{file("../evil", "x")}, want: "'..' in name"},
		{name: "zip absolute", zip: true, ents: []ent{file("/evil", "x")}, want: "absolute path"},
		{name: "zip backslash", zip: true, ents: []ent{file(`a\..\..\evil`, "x")}, want: "backslash"},
		{name: "zip symlink out", zip: true, ents: []ent{symlink("l", "../../x")}, want: "leads out"},
		{name: "zip symlink then write through", zip: true, ents: []ent{symlink("l", ".."), file("l/evil", "x")}, want: "written through"},
		{name: "zip duplicate over symlink", zip: true, ents: []ent{symlink("a", "b"), file("a", "x")}, want: "duplicate entry"},
		{name: "zip device", zip: true, ents: []ent{{name: "null", typ: tar.TypeChar, mode: 0o666}}, want: "device file"},
		{name: "zip fifo", zip: true, ents: []ent{{name: "p", typ: tar.TypeFifo, mode: 0o644}}, want: "named pipe"},
		{name: "zip bomb size", zip: true, ents: []ent{file("a", zeros), file("b", zeros)}, lim: Limits{MaxBytes: 1 << 20}, want: "more than 1048576 bytes"},
		{name: "zip bomb ratio", zip: true, ents: []ent{file("a", zeros)}, lim: Limits{MaxRatio: 100, RatioFloor: 1024}, want: "times its size"},
		{name: "zip too many entries", zip: true, ents: []ent{file("a", ""), file("b", ""), file("c", "")}, lim: Limits{MaxEntries: 2}, want: "more than 2 entries"},
		{name: "zip corrupt", zip: true, raw: []byte("PK\x03\x04 and then nothing"), want: "not a valid zip archive"},
	}
}

func (h hostile) archive(t testing.TB) (Kind, []byte) {
	switch {
	case h.zip:
		if h.raw != nil {
			return KindZip, h.raw
		}
		return KindZip, makeZip(t, h.ents)
	case h.gz:
		if h.raw != nil {
			return KindTarGz, h.raw
		}
		return KindTarGz, makeTar(t, h.ents, true)
	}
	if h.raw != nil {
		return KindTar, h.raw
	}
	return KindTar, makeTar(t, h.ents, false)
}

// TestExtractHostile: every hostile archive is refused, with a message
// that says why, and nothing is written, inside dir or out of it.
func TestExtractHostile(t *testing.T) {
	for _, h := range hostileCases() {
		t.Run(h.name, func(t *testing.T) {
			kind, data := h.archive(t)
			file := writeFile(t, t.TempDir(), "archive", data)
			parent := t.TempDir()
			dir := filepath.Join(parent, "dir")
			os.Mkdir(dir, 0o755)
			writeFile(t, parent, "outside", []byte("precious"))
			if h.prepare != nil {
				h.prepare(t, parent, dir)
			}
			before := snapshot(t, parent)
			_, err := Extract(file, kind, dir, h.lim)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), h.want) {
				t.Fatalf("err = %v, want ErrRefused with %q", err, h.want)
			}
			if after := snapshot(t, parent); !slices.Equal(after, before) {
				t.Fatalf("refused archive wrote:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}
