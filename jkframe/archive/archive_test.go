package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// testdata/ok.tar.bz2 and testdata/bomb-4x8MiB.tar.bz2 were made with GNU
// tar and bzip2 (Go has no bzip2 writer):
//
//	tar --sort=name --mtime=2026-01-01 --owner=0 --group=0 --numeric-owner -C ok -cf - dir | bzip2 -9
//
// ok holds dir/, dir/a.txt ("hello\n") and dir/link -> a.txt; bomb holds
// ./ and zero1…zero4, 8 MiB of zeros each (171 bytes compressed).

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// te is one entry of a generated tar.
type te struct {
	name string
	typ  byte // 0: regular
	body string
	link string
	mode int64
	size int64 // regular files: zeros of this size instead of body
}

func mkTar(t testing.TB, es ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	writeTar(t, &buf, es...)
	return buf.Bytes()
}

func writeTar(t testing.TB, w io.Writer, es ...te) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size > 0 {
				h.Size = e.size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if e.size > 0 {
				if _, err := io.CopyN(tw, zeros{}, e.size); err != nil {
					t.Fatal(err)
				}
			} else if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func gz(t testing.TB, es ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	writeTar(t, zw, es...)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ze is one entry of a generated zip.
type ze struct {
	name string
	body string
	mode fs.FileMode // 0: 0644 file
}

func mkZip(t testing.TB, es ...ze) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range es {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		m := e.mode
		if m == 0 {
			m = 0o644
		}
		h.SetMode(m)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lyingZip holds one file that declares declared bytes but inflates to
// real bytes of zeros.
func lyingZip(t testing.TB, declared uint64, real int64) []byte {
	t.Helper()
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	if _, err := io.CopyN(fw, zeros{}, real); err != nil {
		t.Fatal(err)
	}
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bomb.bin", Method: zip.Deflate, CompressedSize64: uint64(comp.Len()), UncompressedSize64: declared,
		CRC32: crc32.ChecksumIEEE(nil)}
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(comp.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var small = Limits{Entries: 8, FileBytes: 1 << 20, TotalBytes: 3 << 20, Depth: 4, NameBytes: 100}

// open reads b as NewReaderAt does (any format).
func open(b []byte, lim Limits) (*Reader, error) {
	return NewReaderAt(bytes.NewReader(b), int64(len(b)), lim)
}

// drain reads every entry and its content; it returns the names, the
// bytes of content read and the error that ended it (nil at io.EOF).
func drain(r *Reader) ([]string, int64, error) {
	var names []string
	var n int64
	for {
		e, err := r.Next()
		if err == io.EOF {
			return names, n, nil
		}
		if err != nil {
			return names, n, err
		}
		names = append(names, e.Type.String()+":"+e.Name)
		k, err := io.Copy(io.Discard, r)
		n += k
		if err != nil {
			return names, n, err
		}
	}
}

type hostileCase struct {
	name string
	data func(t testing.TB) []byte
	kind error  // ErrFormat, ErrLimit, ErrUnsafe
	msg  string // part of the error text
}

func hostileCases() []hostileCase {
	mb := int64(1 << 20)
	return []hostileCase{
		{"tar.gz bomb, files under the file limit", func(t testing.TB) []byte {
			return gz(t, te{name: "a", size: mb - 1}, te{name: "b", size: mb - 1}, te{name: "c", size: mb - 1}, te{name: "d", size: mb - 1})
		}, ErrLimit, `"d": the archive unpacks to over 3145728 bytes`},
		{"tar.gz file over the file limit", func(t testing.TB) []byte { return gz(t, te{name: "big", size: mb + 1}) }, ErrLimit, `"big": declares 1048577 bytes, over the 1048576-byte file limit`},
		{"tar.bz2 bomb", func(t testing.TB) []byte { return testdata(t, "bomb-4x8MiB.tar.bz2") }, ErrLimit, `"./zero1": declares 8388608 bytes`},
		// archive/zip itself stops at the first byte over the declared size.
		{"zip lying about its size", func(t testing.TB) []byte { return lyingZip(t, 10, 4<<20) }, ErrFormat, `"bomb.bin": corrupt content`},
		{"zip lying within its limit", func(t testing.TB) []byte { return lyingZip(t, 3<<20, 4<<20) }, ErrLimit, `"bomb.bin": declares 3145728 bytes, over the 1048576-byte file limit`},
		{"zip declaring too much", func(t testing.TB) []byte { return lyingZip(t, 1<<40, 10) }, ErrLimit, "declares 1099511627776 bytes"},
		{"too many entries", func(t testing.TB) []byte {
			var es []te
			for i := range 9 {
				es = append(es, te{name: strings.Repeat("d", i+1) + "/", typ: tar.TypeDir})
			}
			return mkTar(t, es...)
		}, ErrLimit, "more than 8 entries"},
		{"too many zip entries", func(t testing.TB) []byte {
			var es []ze
			for i := range 9 {
				es = append(es, ze{name: strings.Repeat("f", i+1)})
			}
			return mkZip(t, es...)
		}, ErrLimit, "more than 8 entries"},
		{"too deep", func(t testing.TB) []byte { return mkTar(t, te{name: "a/b/c/d/e"}) }, ErrLimit, "more than 4 path elements"},
		{"name too long", func(t testing.TB) []byte { return mkTar(t, te{name: strings.Repeat("n", 101)}) }, ErrLimit, "name over 100 bytes"},
		{"absolute", func(t testing.TB) []byte { return mkTar(t, te{name: "/etc/cron.d/x"}) }, ErrUnsafe, `"/etc/cron.d/x": absolute path`},
		{"absolute drive", func(t testing.TB) []byte { return mkTar(t, te{name: `C:\Windows\x`}) }, ErrUnsafe, "absolute path"},
		{"absolute drive relative", func(t testing.TB) []byte { return mkTar(t, te{name: `c:x`}) }, ErrUnsafe, "absolute path"},
		{"unc", func(t testing.TB) []byte { return mkZip(t, ze{name: `\\host\share\x`}) }, ErrUnsafe, "absolute path"},
		{"dot dot", func(t testing.TB) []byte { return mkTar(t, te{name: "../x"}) }, ErrUnsafe, "climbs out"},
		{"dot dot inside", func(t testing.TB) []byte { return mkTar(t, te{name: "a/../../x"}) }, ErrUnsafe, "climbs out"},
		{"dot dot backslash", func(t testing.TB) []byte { return mkZip(t, ze{name: `a\..\..\x`}) }, ErrUnsafe, "climbs out"},
		{"zip dot dot", func(t testing.TB) []byte { return mkZip(t, ze{name: "../../etc/passwd"}) }, ErrUnsafe, "climbs out"},
		{"control character", func(t testing.TB) []byte { return mkTar(t, te{name: "a\nb"}) }, ErrUnsafe, "control character"},
		{"NUL in a zip name", func(t testing.TB) []byte { return mkZip(t, ze{name: "a\x00b"}) }, ErrUnsafe, "control character"},
		{"symlink absolute", func(t testing.TB) []byte { return mkTar(t, te{name: "l", typ: tar.TypeSymlink, link: "/etc"}) }, ErrUnsafe, "symlink to an absolute path"},
		{"symlink escapes", func(t testing.TB) []byte { return mkTar(t, te{name: "a/l", typ: tar.TypeSymlink, link: "../../etc"}) }, ErrUnsafe, "symlink points out of the archive"},
		{"zip symlink escapes", func(t testing.TB) []byte {
			return mkZip(t, ze{name: "l", body: "../x", mode: fs.ModeSymlink | 0o777})
		}, ErrUnsafe, "symlink points out of the archive"},
		{"hard link escapes", func(t testing.TB) []byte { return mkTar(t, te{name: "h", typ: tar.TypeLink, link: "../../etc/shadow"}) }, ErrUnsafe, "hard link to"},
		{"hard link absolute", func(t testing.TB) []byte { return mkTar(t, te{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}) }, ErrUnsafe, "hard link to"},
		{"char device", func(t testing.TB) []byte { return mkTar(t, te{name: "mem", typ: tar.TypeChar}) }, ErrUnsafe, "device file"},
		{"block device", func(t testing.TB) []byte { return mkTar(t, te{name: "sda", typ: tar.TypeBlock}) }, ErrUnsafe, "device file"},
		{"fifo", func(t testing.TB) []byte { return mkTar(t, te{name: "p", typ: tar.TypeFifo}) }, ErrUnsafe, "named pipe"},
		{"zip device", func(t testing.TB) []byte { return mkZip(t, ze{name: "d", mode: fs.ModeDevice | 0o600}) }, ErrUnsafe, "device file"},
		{"unknown type", func(t testing.TB) []byte { return mkTar(t, te{name: "v", typ: 'V'}) }, ErrUnsafe, "unsupported entry type"},
		{"empty", func(t testing.TB) []byte { return nil }, ErrFormat, "empty archive"},
		{"garbage", func(t testing.TB) []byte { return bytes.Repeat([]byte("junk"), 200) }, ErrFormat, "not a tar, tar.gz, tar.bz2 or zip archive"},
		{"bad gzip", func(t testing.TB) []byte { return []byte{0x1f, 0x8b, 0, 0, 0} }, ErrFormat, "not a gzip stream"},
		{"gzip of garbage", func(t testing.TB) []byte {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(bytes.Repeat([]byte("junk"), 300))
			zw.Close()
			return b.Bytes()
		}, ErrFormat, "not a tar.gz archive"},
		{"truncated tar", func(t testing.TB) []byte { return mkTar(t, te{name: "a", body: strings.Repeat("x", 2000)})[:1024] }, ErrFormat, "corrupt content"},
		{"zip with a broken directory", func(t testing.TB) []byte { b := mkZip(t, ze{name: "a", body: "x"}); return b[:len(b)-10] }, ErrFormat, "not a zip archive"},
	}
}

func TestHostileArchives(t *testing.T) {
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			data := c.data(t)
			r, err := open(data, small)
			var n int64
			if err == nil {
				_, n, err = drain(r)
				if n > small.TotalBytes || r.Unpacked() > small.TotalBytes {
					t.Errorf("read %d bytes (Unpacked %d), over the %d-byte total", n, r.Unpacked(), small.TotalBytes)
				}
				if cerr := r.Close(); cerr != nil {
					t.Error(cerr)
				}
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %v is not %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not contain %q", err, c.msg)
			}
			// Extract stops at the same point and writes nothing outside.
			dir := filepath.Join(t.TempDir(), "x")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if r, err := open(data, small); err == nil {
				if err := Extract(r, dir, ExtractOptions{Links: LinksKeep, Modes: ModesPerm}); err == nil {
					t.Error("Extract accepted it")
				}
				r.Close()
			}
			checkInside(t, dir)
		})
	}
}

// checkInside fails when anything under dir resolves outside it, or when
// dir's parent holds anything but dir.
func checkInside(t *testing.T, dir string) {
	t.Helper()
	parent := filepath.Dir(dir)
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 {
		t.Errorf("the parent of the extraction dir holds %d entries", len(ents))
	}
	real, _ := filepath.EvalSymlinks(dir)
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			abs := filepath.Clean(filepath.Join(filepath.Dir(p), target))
			if rel, err := filepath.Rel(dir, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(target) {
				t.Errorf("symlink %s -> %s leaves %s", p, target, dir)
			}
			return nil
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			if rel, err := filepath.Rel(real, r); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s resolves to %s, outside %s", p, r, real)
			}
		}
		return nil
	})
}

// A stream that unpacks to far more than the limit is read without
// buffering it: allocations stay a small constant while the whole limit
// is inflated.
func TestBombReadWithoutBuffering(t *testing.T) {
	lim := Limits{FileBytes: 4 << 20, TotalBytes: 12 << 20}
	var es []te
	for i := range 5 {
		es = append(es, te{name: string(rune('a' + i)), size: 3 << 20}) // 15 MiB, each under the file limit
	}
	data := gz(t, es...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := NewReader(bytes.NewReader(data), lim)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := drain(r)
	r.Close()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrLimit) || n != 12<<20 {
		t.Fatalf("read %d bytes, err %v; want the 12 MiB limit, then ErrLimit", n, err)
	}
	t.Logf("allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("allocated %d bytes to read %d bytes of content (%d compressed)", alloc, n, len(data))
	}
}

func TestReadGood(t *testing.T) {
	want := []string{"directory:dir", "file:dir/a.txt", "symlink:dir/link"}
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"tar.bz2", testdata(t, "ok.tar.bz2"), want},
		{"tar", mkTar(t, te{name: "./", typ: tar.TypeDir}, te{name: "dir/", typ: tar.TypeDir}, te{name: "dir/a.txt", body: "hello\n"},
			te{name: "dir/link", typ: tar.TypeSymlink, link: "a.txt"}), want},
		{"tar.gz", gz(t, te{name: "dir/", typ: tar.TypeDir}, te{name: "./dir/./a.txt", body: "hello\n"}, te{name: "dir/link", typ: tar.TypeSymlink, link: "a.txt"}), want},
		{"zip", mkZip(t, ze{name: "dir/", mode: fs.ModeDir | 0o755}, ze{name: "dir/a.txt", body: "hello\n"}, ze{name: "dir/link", body: "a.txt", mode: fs.ModeSymlink | 0o777}), want},
	}
	for _, tt := range tests {
		r, err := open(tt.data, small)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, n, err := drain(r)
		r.Close()
		if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") || n != 6 {
			t.Errorf("%s: %v, %d bytes, %v; want %v", tt.name, got, n, err, tt.want)
		}
	}
	// A stream reader refuses a zip with a clear message.
	if _, err := NewReader(bytes.NewReader(mkZip(t, ze{name: "a"})), small); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "random access") {
		t.Errorf("zip on NewReader: %v", err)
	}
}

func TestExtract(t *testing.T) {
	data := mkTar(t,
		te{name: "ro/", typ: tar.TypeDir, mode: 0o555}, // read-only, listed before its content
		te{name: "ro/f", body: "f"},
		te{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755},
		te{name: "bin/shared", body: "s", mode: 0o2775},
		te{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		te{name: "bin/tool2", typ: tar.TypeLink, link: "bin/tool"},
		te{name: "lib/cur", typ: tar.TypeSymlink, link: "../bin/tool"},
	)
	for _, tt := range []struct {
		modes ModePolicy
		tool  fs.FileMode
		ro    fs.FileMode
		tmp   fs.FileMode
	}{
		{ModesPrivate, 0o600, 0o700, 0o700},
		{ModesPerm, 0o755, 0o555, 0o777},
		{ModesAll, 0o755 | fs.ModeSetuid, 0o555, 0o777 | fs.ModeSticky},
	} {
		dir := filepath.Join(t.TempDir(), "x")
		_ = os.Mkdir(dir, 0o700)
		r, err := open(data, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		err = Extract(r, dir, ExtractOptions{Links: LinksKeep, Modes: tt.modes, OnEntry: func(e *Entry, skipped bool) error {
			seen = append(seen, e.Name)
			return nil
		}})
		r.Close()
		if err != nil {
			t.Fatalf("modes %d: %v", tt.modes, err)
		}
		if len(seen) != 7 {
			t.Errorf("OnEntry saw %v", seen)
		}
		if runtime.GOOS == "windows" {
			continue
		}
		for _, c := range []struct {
			name string
			want fs.FileMode
		}{{"bin/tool", tt.tool}, {"ro", tt.ro | fs.ModeDir}, {"tmp", tt.tmp | fs.ModeDir}} {
			fi, err := os.Lstat(filepath.Join(dir, c.name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != c.want {
				t.Errorf("modes %d: %s has mode %v, want %v", tt.modes, c.name, fi.Mode(), c.want)
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, "lib/cur")); err != nil || string(b) != "#!/bin/sh\n" {
			t.Errorf("symlink content %q, %v", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "bin/tool2")); err != nil || string(b) != "#!/bin/sh\n" {
			t.Errorf("hard link content %q, %v", b, err)
		}
		_ = os.Chmod(filepath.Join(dir, "ro"), 0o755) // let TempDir clean up
	}
}

// Archives every entry of which the Reader accepts, but whose extraction
// would write through a symlink or clobber a file.
func TestExtractRefuses(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		o    ExtractOptions
		msg  string
	}{
		{"file beneath a symlink", mkTar(t, te{name: "d", typ: tar.TypeSymlink, link: "sub"}, te{name: "d/x", body: "x"}), ExtractOptions{Links: LinksKeep}, `beneath the symlink "d"`},
		{"symlink chain", mkTar(t, te{name: "a", typ: tar.TypeSymlink, link: "."}, te{name: "a/b", typ: tar.TypeSymlink, link: ".."}), ExtractOptions{Links: LinksKeep}, `beneath the symlink "a"`},
		{"links refused", mkTar(t, te{name: "l", typ: tar.TypeSymlink, link: "x"}), ExtractOptions{}, "symlink (links are refused)"},
		{"hard link to nothing", mkTar(t, te{name: "h", typ: tar.TypeLink, link: "later"}, te{name: "later", body: "x"}), ExtractOptions{Links: LinksKeep}, "not a file extracted before it"},
		{"hard link to a symlink", mkTar(t, te{name: "l", typ: tar.TypeSymlink, link: "x"}, te{name: "h", typ: tar.TypeLink, link: "l"}), ExtractOptions{Links: LinksKeep}, "not a file extracted before it"},
		{"duplicate", mkTar(t, te{name: "a", body: "1"}, te{name: "./a", body: "2"}), ExtractOptions{}, `"a": appears twice`},
		{"file over a dir", mkTar(t, te{name: "a/", typ: tar.TypeDir}, te{name: "a", body: "2"}), ExtractOptions{}, `"a": appears twice`},
		{"zip symlink then file", mkZip(t, ze{name: "l", body: "d", mode: fs.ModeSymlink | 0o777}, ze{name: "l/x", body: "x"}), ExtractOptions{Links: LinksKeep}, "beneath the symlink"},
	}
	for _, tt := range tests {
		dir := filepath.Join(t.TempDir(), "x")
		_ = os.Mkdir(dir, 0o700)
		r, err := open(tt.data, small)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		err = Extract(r, dir, tt.o)
		r.Close()
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.msg)
		}
		checkInside(t, dir)
	}
	// Skipped links are reported and not created.
	dir := t.TempDir()
	r, _ := open(mkTar(t, te{name: "l", typ: tar.TypeSymlink, link: "x"}, te{name: "f", body: "x"}), small)
	var skipped []string
	err := Extract(r, dir, ExtractOptions{Links: LinksSkip, OnEntry: func(e *Entry, s bool) error {
		if s {
			skipped = append(skipped, e.Name)
		}
		return nil
	}})
	r.Close()
	if _, lerr := os.Lstat(filepath.Join(dir, "l")); err != nil || len(skipped) != 1 || lerr == nil {
		t.Errorf("LinksSkip: %v, skipped %v, link created: %v", err, skipped, lerr == nil)
	}
}

func TestWindowsNames(t *testing.T) {
	for _, n := range []string{"a:b", "dir/CON", "con.txt", "x/aux", "a.", "b ", "lpt1.log", `q?`} {
		if windowsName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
	for _, n := range []string{"a/b.txt", "console", "com10", ".profile"} {
		if err := windowsName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}

func TestDetect(t *testing.T) {
	v7 := mkTar(t, te{name: "a", body: "x"})
	copy(v7[257:265], make([]byte, 8)) // drop the ustar magic: a v7 header
	// The checksum covered the magic; recompute it.
	var sum int64
	for i, c := range v7[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	copy(v7[148:156], []byte(strings.Repeat("0", 6-len(strconvOctal(sum)))+strconvOctal(sum)+"\x00 "))
	tests := []struct {
		b    []byte
		want Format
	}{
		{gz(t, te{name: "a"}), TarGzip},
		{testdata(t, "ok.tar.bz2"), TarBzip2},
		{mkZip(t, ze{name: "a"}), Zip},
		{mkTar(t, te{name: "a"}), Tar},
		{v7, Tar},
		{[]byte("hello"), ""},
		{make([]byte, 600), ""},
	}
	for i, tt := range tests {
		if got := Detect(tt.b); got != tt.want {
			t.Errorf("%d: %q, want %q", i, got, tt.want)
		}
	}
}

func strconvOctal(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 8 {
		b = append([]byte{byte('0' + n%8)}, b...)
	}
	return string(b)
}

// FuzzReader: whatever the bytes, no panic, every entry returned is clean
// and inside, and the limits hold for what is read.
func FuzzReader(f *testing.F) {
	for _, c := range hostileCases() {
		if strings.Contains(c.name, "bomb") || strings.Contains(c.name, "lying") {
			continue // seeds are kept small
		}
		f.Add(c.data(f))
	}
	f.Add(testdata(f, "ok.tar.bz2"))
	f.Add(mkTar(f, te{name: "dir/", typ: tar.TypeDir}, te{name: "dir/a", body: "x"}, te{name: "dir/l", typ: tar.TypeSymlink, link: "a"}))
	f.Add(mkZip(f, ze{name: "a/b", body: "x"}, ze{name: "a/l", body: "b", mode: fs.ModeSymlink | 0o777}))
	lim := Limits{Entries: 16, FileBytes: 4096, TotalBytes: 8192, Depth: 4, NameBytes: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := open(data, lim)
		if err != nil {
			checkErr(t, err)
			return
		}
		defer r.Close()
		entries := 0
		var total int64
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				checkErr(t, err)
				break
			}
			entries++
			if entries > lim.Entries {
				t.Fatalf("%d entries", entries)
			}
			if e.Name == "." || e.Name == "" || isAbs(e.Name) || e.Name == ".." || strings.HasPrefix(e.Name, "../") ||
				strings.Contains(e.Name, "/../") || strings.ContainsAny(e.Name, "\\\x00\n") || strings.Count(e.Name, "/")+1 > lim.Depth {
				t.Fatalf("entry name %q", e.Name)
			}
			switch e.Type {
			case TypeSymlink:
				if j := filepathJoin(e.Name, e.Link); isAbs(e.Link) || j == ".." || strings.HasPrefix(j, "../") {
					t.Fatalf("symlink %q -> %q", e.Name, e.Link)
				}
			case TypeHardlink:
				if isAbs(e.Link) || strings.HasPrefix(e.Link, "../") || e.Link == ".." {
					t.Fatalf("hard link %q -> %q", e.Name, e.Link)
				}
			case TypeFile, TypeDir:
			default:
				t.Fatalf("type %v", e.Type)
			}
			n, err := io.Copy(io.Discard, r)
			total += n
			if n > lim.FileBytes || total > lim.TotalBytes {
				t.Fatalf("read %d bytes (%d in all)", n, total)
			}
			if err != nil {
				checkErr(t, err)
				break
			}
		}
	})
}

func filepathJoin(name, link string) string {
	return strings.TrimPrefix(filepath.ToSlash(filepath.Join(filepath.Dir(filepath.FromSlash(name)), filepath.FromSlash(link))), "./")
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) || !(errors.Is(err, ErrFormat) || errors.Is(err, ErrLimit) || errors.Is(err, ErrUnsafe)) {
		t.Fatalf("error %v (%T) is not an *Error of a known kind", err, err)
	}
}

// FuzzExtract: whatever the bytes, extraction with links kept writes
// nothing outside its directory.
func FuzzExtract(f *testing.F) {
	f.Add(mkTar(f, te{name: "a", typ: tar.TypeSymlink, link: "."}, te{name: "a/b", typ: tar.TypeSymlink, link: ".."}, te{name: "a/b/x", body: "x"}))
	f.Add(mkTar(f, te{name: "d", typ: tar.TypeSymlink, link: "sub"}, te{name: "d/x", body: "x"}))
	f.Add(mkTar(f, te{name: "x", body: "x"}, te{name: "h", typ: tar.TypeLink, link: "x"}))
	f.Add(mkZip(f, ze{name: "l", body: "d", mode: fs.ModeSymlink | 0o777}, ze{name: "l/x", body: "x"}))
	lim := Limits{Entries: 16, FileBytes: 4096, TotalBytes: 8192, Depth: 4, NameBytes: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := open(data, lim)
		if err != nil {
			return
		}
		defer r.Close()
		dir := filepath.Join(t.TempDir(), "x")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		_ = Extract(r, dir, ExtractOptions{Links: LinksKeep, Modes: ModesPerm})
		checkInside(t, dir)
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700) // let TempDir clean up
			}
			return nil
		})
	})
}
