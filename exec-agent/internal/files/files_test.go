//go:build linux

package files

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pattern is a deterministic stream of n bytes: a random block whose length
// is not a power of two, repeated.
type pattern struct {
	block []byte
	pos   int64
	n     int64
}

var patternBlock = func() []byte {
	b := make([]byte, 1<<20+7)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func newPattern(n int64) *pattern { return &pattern{block: patternBlock, n: n} }

func (p *pattern) Read(b []byte) (int, error) {
	if p.pos >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.pos)]
	off := int(p.pos % int64(len(p.block)))
	n := copy(b, p.block[off:])
	p.pos += int64(n)
	return n, nil
}

func patternMD5(t testing.TB, n int64) [16]byte {
	h := md5.New()
	if _, err := io.Copy(h, newPattern(n)); err != nil {
		t.Fatal(err)
	}
	var s [16]byte
	h.Sum(s[:0])
	return s
}

func fileMD5(t testing.TB, path string) ([16]byte, int64) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	var s [16]byte
	h.Sum(s[:0])
	return s, n
}

// server serves /file/<n> as the pattern of n bytes to requests with the
// right token.
func server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(protocol.TokenHeader) != "tok" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/file/"), 10, 64)
		if err != nil {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyBuffer(w, newPattern(n), make([]byte, 64<<10))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTransferSizes(t *testing.T) {
	srv := server(t)
	fs := New(Options{})
	dir := t.TempDir()
	for _, n := range []int64{0, 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 200_000_000} {
		t.Run(strconv.FormatInt(n, 10), func(t *testing.T) {
			want := patternMD5(t, n)
			name := fmt.Sprintf("f%d.bin", n)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			// Upload: inline up to 1 MiB, by URL beyond, as the server does.
			var body io.Reader
			if n <= protocol.MaxInlineUpload {
				raw, _ := io.ReadAll(newPattern(n))
				data, err := DecodeInline(compress.Encode(raw))
				if err != nil {
					t.Fatal(err)
				}
				body = bytes.NewReader(data)
			} else {
				rc, size, err := Fetch(context.Background(), srv.Client(), srv.URL+"/file/"+strconv.FormatInt(n, 10), "tok")
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				if size != n {
					t.Fatalf("fetch size %d, want %d", size, n)
				}
				body = rc
			}
			path, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: name, Size: uint64(n), MD5: want, MD5Check: true, Mode: 0o600}, body)
			if err != nil {
				t.Fatal(err)
			}
			if path != filepath.Join(dir, name) {
				t.Fatalf("path %q", path)
			}
			if sum, size := fileMD5(t, path); sum != want || size != n {
				t.Fatalf("written: %d bytes md5 %x, want %d bytes %x", size, sum, n, want)
			}

			// Download: the v1 announcement, then the bytes over HTTP (a Section).
			d, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Size() != n {
				t.Fatalf("size %d", d.Size())
			}
			// Sum for v1's announcement; a Section for the HTTP body (each
			// hashes a pass over the file: the big file gets one pass).
			if n > 4<<20 {
				sum, err := d.Sum(context.Background())
				if err != nil || sum != want {
					t.Fatalf("Sum = %x, %v; want %x", sum, err, want)
				}
			} else {
				s, err := d.Section(0, 0)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if k, err := io.CopyBuffer(&got, s, make([]byte, 64<<10)); err != nil || k != n || s.Len() != n {
					t.Fatalf("section copy %d, %v", k, err)
				}
				if sum, err := s.Sum(); err != nil || sum != want || md5.Sum(got.Bytes()) != want {
					t.Fatalf("section sum %x, %v", sum, err)
				}
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if n > 2<<20 {
				alloc := after.TotalAlloc - before.TotalAlloc
				t.Logf("%d bytes up and down: %d bytes allocated", n, alloc)
				if alloc > 16<<20 {
					t.Fatalf("%d bytes allocated to move %d bytes: not streaming", alloc, n)
				}
			}

			// v1 blocks, for the sizes a v1 server asks for block by block.
			if n > 4<<20 {
				return
			}
			var got bytes.Buffer
			blocks := 0
			err = d.Blocks(context.Background(), 0, want, func(b protocol.DownloadData) error {
				if b.Offset != uint64(got.Len()) {
					t.Fatalf("block at %d after %d bytes", b.Offset, got.Len())
				}
				raw, err := compress.Decode(b.Data, protocol.DefaultBlockSize)
				if err != nil {
					return err
				}
				got.Write(raw)
				blocks++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if wantBlocks := (n + protocol.DefaultBlockSize - 1) / protocol.DefaultBlockSize; int64(blocks) != wantBlocks {
				t.Fatalf("%d blocks, want %d", blocks, wantBlocks)
			}
			if md5.Sum(got.Bytes()) != want {
				t.Fatal("blocks do not add up to the file")
			}
		})
	}
}

func TestSectionRanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tt := range []struct {
		off, n int64
		want   string
		err    string
	}{
		{0, 0, "0123456789", ""},
		{3, 4, "3456", ""},
		{7, 0, "789", ""},
		{7, 100, "789", ""},
		{10, 0, "", ""},
		{11, 0, "", "download " + p + ": range offset 11 length 0 outside the file (10 bytes)"},
		{-1, 0, "", "download " + p + ": range offset -1 length 0 outside the file (10 bytes)"},
	} {
		s, err := d.Section(tt.off, tt.n)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Section(%d, %d): %v, want %s", tt.off, tt.n, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(s)
		if err != nil || string(b) != tt.want {
			t.Errorf("Section(%d, %d) = %q, %v; want %q", tt.off, tt.n, b, err, tt.want)
		}
		if sum, err := s.Sum(); err != nil || sum != md5.Sum([]byte(tt.want)) {
			t.Errorf("Section(%d, %d) sum %x, %v", tt.off, tt.n, sum, err)
		}
	}
}

func TestDownloadChangedFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c")
	data := bytes.Repeat([]byte("x"), 100_000)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, change := range []func() error{
		func() error { return os.WriteFile(p, bytes.Repeat([]byte("y"), 100_000), 0o600) }, // same size
		func() error { return os.Truncate(p, 50_000) },
	} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := d.Sum(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := change(); err != nil {
			t.Fatal(err)
		}
		err = d.Blocks(context.Background(), 0, sum, func(protocol.DownloadData) error { return nil })
		if !errors.Is(err, ErrChanged) {
			t.Errorf("Blocks after a change: %v, want ErrChanged", err)
		}
		d.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ path, err string }{
		{dir, "download " + dir + ": a directory, not a regular file"},
		{"/dev/null", "download /dev/null: a device, not a regular file"},
		{"relative/file", `download: invalid path "relative/file": not absolute`},
		{dir + "/../etc/passwd", `download: invalid path "` + dir + `/../etc/passwd": has a . or .. element`},
		{dir + "/missing", "download: open " + dir + "/missing: no such file or directory"},
	} {
		d, err := Open(tt.path)
		if err == nil {
			d.Close()
		}
		if err == nil || err.Error() != tt.err {
			t.Errorf("Open(%q): %v, want %s", tt.path, err, tt.err)
		}
	}
}

// failingReader returns n bytes of data, then an error.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'N'
	}
	f.n -= k
	return k, nil
}

func TestUploadFailureKeepsOldFile(t *testing.T) {
	fs := New(Options{})
	dir := t.TempDir()
	target := filepath.Join(dir, "conf.txt")
	old := []byte("old content\n")
	newData := bytes.Repeat([]byte("N"), 3<<20)
	sum := md5.Sum(newData)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		spec UploadSpec
		body io.Reader
		is   error
		err  string
	}{
		{"reader fails halfway", context.Background(), UploadSpec{Size: 3 << 20, MD5: sum}, &failingReader{n: 1 << 20, err: errors.New("connection reset")},
			nil, "upload " + target + ": after 1048576 bytes: connection reset"},
		{"reader fails halfway, size unknown", context.Background(), UploadSpec{}, &failingReader{n: 1 << 20, err: errors.New("connection reset")},
			nil, "upload " + target + ": after 1048576 bytes: connection reset"},
		{"md5 mismatch", context.Background(), UploadSpec{Size: 3 << 20, MD5: [16]byte{1}, MD5Check: true}, bytes.NewReader(newData),
			ErrChecksum, fmt.Sprintf("upload %s: md5 mismatch: got %x, want 01000000000000000000000000000000", target, sum)},
		{"short body", context.Background(), UploadSpec{Size: 3<<20 + 1, MD5: sum}, bytes.NewReader(newData),
			ErrSize, "upload " + target + ": size mismatch: got 3145728 bytes, want 3145729"},
		{"long body", context.Background(), UploadSpec{Size: 1000}, bytes.NewReader(newData),
			ErrSize, "upload " + target + ": size mismatch: got 1001 bytes, want 1000"},
		{"canceled", canceled, UploadSpec{}, bytes.NewReader(newData),
			context.Canceled, "upload " + target + ": after 0 bytes: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(target, old, 0o640); err != nil {
				t.Fatal(err)
			}
			tt.spec.Dir, tt.spec.Name = dir, "conf.txt"
			path, err := fs.Upload(tt.ctx, tt.spec, tt.body)
			if err == nil || err.Error() != tt.err || path != "" {
				t.Fatalf("Upload = %q, %v; want error %s", path, err, tt.err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("%v is not %v", err, tt.is)
			}
			if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, old) {
				t.Fatalf("old file now %q, %v", got, err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("directory holds %d entries, want only the old file: %v", len(ents), ents)
			}
		})
	}
	// And a good upload replaces it.
	path, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "conf.txt", Size: 3 << 20, MD5: sum, MD5Check: true}, bytes.NewReader(newData))
	if err != nil || path != target {
		t.Fatal(path, err)
	}
	if got, _ := fileMD5(t, target); got != sum {
		t.Fatal("new content not in place")
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode 0 should keep the replaced file's mode 0640, got %v", fi.Mode())
	}
}

func TestUploadBadRequests(t *testing.T) {
	fs := New(Options{})
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		spec UploadSpec
		is   error
		err  string
	}{
		{UploadSpec{Dir: dir, Name: "../x"}, ErrName, `upload: invalid file name "../x": contains a path separator`},
		{UploadSpec{Dir: dir, Name: ""}, ErrName, `upload: invalid file name "": empty`},
		{UploadSpec{Dir: dir, Name: ".."}, ErrName, `upload: invalid file name "..": is . or ..`},
		{UploadSpec{Dir: "tmp", Name: "x"}, ErrPath, `upload: dir: invalid path "tmp": not absolute`},
		{UploadSpec{Dir: dir + "/sub/..", Name: "x"}, ErrPath, `upload: dir: invalid path "` + dir + `/sub/..": has a . or .. element`},
		{UploadSpec{Dir: dir + "/file/x", Name: "x"}, syscall.ENOTDIR, "upload " + dir + "/file/x/x: mkdir " + dir + "/file: not a directory"},
		{UploadSpec{Dir: dir, Name: "sub"}, syscall.EISDIR, "upload " + dir + "/sub: is a directory"},
	} {
		_, err := fs.Upload(context.Background(), tt.spec, strings.NewReader("data"))
		if err == nil || !strings.HasPrefix(err.Error(), tt.err) || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("%+v: %v, want %s", tt.spec, err, tt.err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestUploadModeAndOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to other users needs root")
	}
	tmp := t.TempDir()
	fs := New(Options{TempDir: tmp})
	stat := func(p string) (os.FileMode, uint32, uint32) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fi.Mode(), st.Uid, st.Gid
	}
	for _, tt := range []struct {
		name        string
		spec        UploadSpec
		mode        os.FileMode
		uid, gid    uint32
		errContains string
	}{
		{"new default", UploadSpec{}, 0o644, 0, 0, ""},
		{"mode", UploadSpec{Mode: 0o640}, 0o640, 0, 0, ""},
		{"setuid", UploadSpec{Mode: os.ModeSetuid | 0o755}, os.ModeSetuid | 0o755, 0, 0, ""},
		{"owner names", UploadSpec{Mode: 0o600, OwnUser: "nobody", OwnGroup: "nogroup"}, 0o600, 65534, 65534, ""},
		{"numeric ids", UploadSpec{OwnUser: "4321", OwnGroup: "8765"}, 0o644, 4321, 8765, ""},
		{"group only", UploadSpec{OwnGroup: "nogroup"}, 0o644, 0, 65534, ""},
		// chown comes before chmod, which would otherwise lose these bits.
		{"setuid and owner", UploadSpec{Mode: os.ModeSetuid | os.ModeSetgid | 0o750, OwnUser: "nobody", OwnGroup: "nogroup"}, os.ModeSetuid | os.ModeSetgid | 0o750, 65534, 65534, ""},
		{"sticky", UploadSpec{Mode: os.ModeSticky | 0o777}, os.ModeSticky | 0o777, 0, 0, ""},
		{"unknown user", UploadSpec{Mode: 0o600, OwnUser: "no-such-user-q"}, 0, 0, 0, `upload: own_user "no-such-user-q": user: unknown user no-such-user-q`},
		{"unknown group", UploadSpec{OwnGroup: "no-such-group-q"}, 0, 0, 0, `upload: own_group "no-such-group-q": group: unknown group no-such-group-q`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Dir, tt.spec.Name = protocol.UploadTmpDir, strings.ReplaceAll(tt.name, " ", "_")
			path, err := fs.Upload(context.Background(), tt.spec, strings.NewReader("hello"))
			if tt.errContains != "" {
				var oe *OwnerError
				if !errors.As(err, &oe) || path != "" || err.Error() != tt.errContains {
					t.Fatalf("path %q, err %v, want an OwnerError %s", path, err, tt.errContains)
				}
				// Found before anything was written: no file, no temporary.
				if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
					t.Fatalf("left behind: %v", ents)
				}
				return
			}
			if err != nil || path != filepath.Join(tmp, tt.spec.Name) {
				t.Fatalf("path %q, err %v", path, err)
			}
			defer os.Remove(path)
			if b, _ := os.ReadFile(path); string(b) != "hello" {
				t.Fatalf("content %q", b)
			}
			mode, uid, gid := stat(path)
			if mode != tt.mode || uid != tt.uid || gid != tt.gid {
				t.Fatalf("mode %v uid %d gid %d, want %v %d %d", mode, uid, gid, tt.mode, tt.uid, tt.gid)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	for _, tt := range []struct{ path, token, err string }{
		{"/file/x", "tok", "fetch " + srv.URL + "/file/x: 404 Not Found: gone"},
		{"/file/10", "bad", "fetch " + srv.URL + "/file/10: 401 Unauthorized: bad token"},
	} {
		rc, _, err := Fetch(ctx, srv.Client(), srv.URL+tt.path, tt.token)
		if err == nil {
			rc.Close()
		}
		if err == nil || err.Error() != tt.err {
			t.Errorf("Fetch %s: %v, want %s", tt.path, err, tt.err)
		}
	}
	if _, _, err := Fetch(ctx, srv.Client(), "http://127.0.0.1:1/x", "tok"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Fetch from a closed port: %v", err)
	}
}

func TestList(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to other users needs root")
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o640))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o750))
	must(os.Chmod(filepath.Join(dir, "sub"), 0o750))
	must(os.Symlink("a.txt", filepath.Join(dir, "lfile")))
	must(os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "ldir")))
	must(os.Symlink("nowhere", filepath.Join(dir, "dangling")))
	must(os.WriteFile(filepath.Join(dir, "owned"), nil, 0o600))
	must(os.Chown(filepath.Join(dir, "owned"), 65534, 65534))
	must(os.WriteFile(filepath.Join(dir, "ghost"), []byte("12"), 0o600))
	must(os.Chown(filepath.Join(dir, "ghost"), 54321, 54322))
	must(os.Lchown(filepath.Join(dir, "dangling"), 65534, 65534))

	fs := New(Options{})
	for range 2 { // the second time from the name cache
		list, err := fs.List(dir + "/")
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			name        string
			typ         os.FileMode
			perm        os.FileMode // checked unless 0
			user, group string
			size        uint64
			link        string
		}
		want := []row{
			{"a.txt", 0, 0o640, "root", "root", 5, ""},
			{"dangling", os.ModeSymlink, 0, "nobody", "nogroup", 7, "nowhere"},
			{"ghost", 0, 0o600, "54321", "54322", 2, ""},
			{"ldir", os.ModeSymlink, 0, "root", "root", uint64(len(filepath.Join(dir, "sub"))), filepath.Join(dir, "sub")},
			{"lfile", os.ModeSymlink, 0, "root", "root", 5, "a.txt"},
			{"owned", 0, 0o600, "nobody", "nogroup", 0, ""},
			{"sub", os.ModeDir, 0o750, "root", "root", 0, ""},
		}
		if len(list) != len(want) {
			t.Fatalf("%d entries, want %d: %+v", len(list), len(want), list)
		}
		for i, w := range want {
			g := list[i]
			if g.Name != w.name || g.Mod.Type() != w.typ || (w.perm != 0 && g.Mod.Perm() != w.perm) ||
				g.User != w.user || g.Group != w.group || (w.typ != os.ModeDir && g.Size != w.size) ||
				g.IsLink != (w.typ == os.ModeSymlink) || g.LinkDir != w.link || g.ModTime.IsZero() {
				t.Errorf("entry %d = %+v, want %+v", i, g, w)
			}
		}
	}
	for _, tt := range []struct{ dir, err string }{
		{"relative", `ls: invalid path "relative": not absolute`},
		{dir + "/missing", "ls: open " + dir + "/missing: no such file or directory"},
		{dir + "/a.txt", "ls: open " + dir + "/a.txt: not a directory"},
	} {
		if _, err := fs.List(tt.dir); err == nil || err.Error() != tt.err {
			t.Errorf("List(%q): %v, want %s", tt.dir, err, tt.err)
		}
	}
}

func BenchmarkUpload(b *testing.B) {
	fs := New(Options{})
	dir := b.TempDir()
	const n = 64 << 20
	b.SetBytes(n)
	for b.Loop() {
		if _, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "bench"}, newPattern(n)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDownloadSection(b *testing.B) {
	fs := New(Options{})
	const n = 64 << 20
	path, err := fs.Upload(context.Background(), UploadSpec{Dir: b.TempDir(), Name: "bench"}, newPattern(n))
	if err != nil {
		b.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, copyBuf)
	b.SetBytes(n)
	for b.Loop() {
		s, _ := d.Section(0, 0)
		if _, err := io.CopyBuffer(io.Discard, s, buf); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Sum(); err != nil {
			b.Fatal(err)
		}
	}
}

// An upload into a directory that does not exist creates it and its
// parents with mode 0755 (less the umask), as v1 agents did.
func TestUploadCreatesDir(t *testing.T) {
	fs := New(Options{})
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	path, err := fs.Upload(context.Background(), UploadSpec{Dir: dir, Name: "f.txt", Size: 4, MD5: md5.Sum([]byte("data")), MD5Check: true}, strings.NewReader("data"))
	if err != nil || path != filepath.Join(dir, "f.txt") {
		t.Fatalf("Upload = %q, %v", path, err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "data" {
		t.Fatalf("file holds %q, %v", got, err)
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), dir} {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != os.FileMode(UploadDirMode&^umask) {
			t.Errorf("%s: %v, %v; want a directory with mode %o", d, fi.Mode(), err, UploadDirMode&^umask)
		}
	}
}
