package agent

import (
	"bytes"
	"crypto/md5"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

// xfer is the server side of one-shot transfers: GET /x/<name> serves a
// body (or half of it, then breaks the connection), PUT /x/<name> stores
// one. The token is "tok".
type xfer struct {
	mu   sync.Mutex
	get  map[string][]byte
	half map[string]bool
	put  map[string][]byte
}

func newXfer() *xfer {
	return &xfer{get: map[string][]byte{}, half: map[string]bool{}, put: map[string][]byte{}}
}

func (x *xfer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(protocol.TokenHeader) != "tok" {
		// Read the body first: a server that answers before reading it
		// makes the client's outcome a race (a 401 or a broken pipe).
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/x/")
	x.mu.Lock()
	defer x.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		b, ok := x.get[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if x.half[name] {
			w.Header().Set("Content-Length", strings.Repeat("9", 1)+"000000")
			_, _ = w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write(b)
	case http.MethodPut:
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		x.put[name] = b
		w.WriteHeader(http.StatusNoContent)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestLs(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "hello")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	rep := e.call(&protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: dir}})
	if rep.Type != protocol.TypeLsRep || !rep.LsRep().OK || rep.LsRep().Dir != dir {
		t.Fatalf("ls: %v %+v", rep.Type, rep.LsRep())
	}
	got := map[string]protocol.FileInfo{}
	for _, f := range rep.LsRep().Files {
		got[f.Name] = f
	}
	if len(got) != 4 || got["a.txt"].Size != 5 || !got["sub"].Mod.IsDir() ||
		!got["link"].IsLink || got["link"].LinkDir != "a.txt" || got["dangling"].LinkDir != "/nonexistent" || got["a.txt"].User == "" {
		t.Errorf("ls = %+v", rep.LsRep().Files)
	}

	bad := []struct{ dir, msg string }{
		{"relative/dir", "invalid path"},
		{dir + "/../" + filepath.Base(dir), "invalid path"},
		{dir + "/nope", "no such file or directory"},
	}
	for _, b := range bad {
		rep := e.call(&protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: b.dir}})
		if rep.LsRep().OK || !strings.Contains(rep.LsRep().Msg, b.msg) {
			t.Errorf("ls %q: %+v, want error %q", b.dir, rep.LsRep(), b.msg)
		}
	}
}

func TestUpload(t *testing.T) {
	x := newXfer()
	tmp := t.TempDir()
	e := start(t, agenttest.Options{HTTP: x}, func(c *Config) { c.File.TempDir = tmp })
	dir := t.TempDir()
	big := pattern(3<<20 + 5)
	x.get["big"] = big
	x.get["half"] = big
	x.half["half"] = true
	x.get["one"] = []byte{42}

	tests := []struct {
		name string
		up   protocol.Upload
		want []byte // file content; nil: failure
		path string // the full path in the reply
		msg  string // failure message contains
	}{
		{name: "empty inline", up: protocol.Upload{Dir: dir, Name: "empty"}, want: []byte{}},
		{name: "one byte inline", up: protocol.Upload{Dir: dir, Name: "one", Data: compress.Encode([]byte{1}), Size: 1, MD5: md5.Sum([]byte{1}), MD5Check: true}, want: []byte{1}},
		{name: "1 MiB inline", up: protocol.Upload{Dir: dir, Name: "mib", Data: compress.Encode(pattern(1 << 20)), Size: 1 << 20, MD5: md5.Sum(pattern(1 << 20)), MD5Check: true}, want: pattern(1 << 20)},
		{name: "tmp dir", up: protocol.Upload{Dir: protocol.UploadTmpDir, Name: "t", Data: compress.Encode([]byte("x"))}, want: []byte("x"), path: filepath.Join(tmp, "t")},
		{name: "by uri", up: protocol.Upload{Dir: dir, Name: "big", URI: "/x/big", Token: "tok", Size: uint64(len(big)), MD5: md5.Sum(big), MD5Check: true}, want: big},
		{name: "by uri, one byte", up: protocol.Upload{Dir: dir, Name: "uone", URI: "/x/one", Token: "tok", Size: 1, MD5: md5.Sum([]byte{42}), MD5Check: true}, want: []byte{42}},
		{name: "bad token", up: protocol.Upload{Dir: dir, Name: "bt", URI: "/x/big", Token: "wrong"}, msg: "HTTP 401"},
		{name: "md5 mismatch", up: protocol.Upload{Dir: dir, Name: "bad", Data: compress.Encode([]byte("abc")), Size: 3, MD5Check: true}, msg: "md5 mismatch"},
		{name: "size mismatch", up: protocol.Upload{Dir: dir, Name: "bad", Data: compress.Encode([]byte("abc")), Size: 4, MD5: md5.Sum([]byte("abc")), MD5Check: true}, msg: "size mismatch"},
		{name: "inline too large", up: protocol.Upload{Dir: dir, Name: "bad", Data: compress.Encode(pattern(1<<20 + 1))}, msg: "upload bad"},
		{name: "name with slash", up: protocol.Upload{Dir: dir, Name: "../escape", Data: compress.Encode([]byte("x"))}, msg: "invalid file name"},
		{name: "name dotdot", up: protocol.Upload{Dir: dir, Name: "..", Data: compress.Encode([]byte("x"))}, msg: "invalid file name"},
		{name: "name backslash", up: protocol.Upload{Dir: dir, Name: `a\b`, Data: compress.Encode([]byte("x"))}, msg: "invalid file name"},
		{name: "empty name", up: protocol.Upload{Dir: dir, Name: ""}, msg: "invalid file name"},
		{name: "dir with dotdot", up: protocol.Upload{Dir: dir + "/../x", Name: "f"}, msg: "invalid path"},
		{name: "relative dir", up: protocol.Upload{Dir: "etc", Name: "f"}, msg: "invalid path"},
		{name: "bad blob", up: protocol.Upload{Dir: dir, Name: "f", Data: "$9$xx"}, msg: "upload f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := tc.up
			rep := e.call(&protocol.Msg{Type: protocol.TypeUpload, Payload: &up})
			if rep.Type != protocol.TypeUploadRep {
				t.Fatalf("reply %v %s", rep.Type, rep.ErrMsg)
			}
			r := rep.UploadRep()
			if tc.want == nil {
				if r.OK || !strings.Contains(r.Msg, tc.msg) {
					t.Fatalf("reply %+v, want failure %q", r, tc.msg)
				}
				return
			}
			want := tc.path
			if want == "" {
				want = filepath.Join(dir, up.Name)
			}
			if !r.OK || r.Dir != want {
				t.Fatalf("reply %+v, want ok at %s", r, want)
			}
			b, err := os.ReadFile(want)
			if err != nil || !bytes.Equal(b, tc.want) {
				t.Fatalf("file: %d bytes (err %v), want %d", len(b), err, len(tc.want))
			}
		})
	}

	// A failed upload over an existing file leaves it alone, and no
	// temporary file behind.
	target := filepath.Join(dir, "keep")
	writeFile(t, target, "old content")
	rep := e.call(&protocol.Msg{Type: protocol.TypeUpload, Payload: &protocol.Upload{
		Dir: dir, Name: "keep", URI: "/x/half", Token: "tok", Size: uint64(len(big)), MD5: md5.Sum(big), MD5Check: true}})
	if rep.UploadRep().OK {
		t.Fatalf("half upload: %+v, want a failure", rep.UploadRep())
	}
	if b, _ := os.ReadFile(target); string(b) != "old content" {
		t.Errorf("existing file now %d bytes, want it untouched", len(b))
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if strings.Contains(en.Name(), "keep") && en.Name() != "keep" {
			t.Errorf("temporary file left: %s", en.Name())
		}
	}
}

func TestUploadModeOwner(t *testing.T) {
	e := start(t, agenttest.Options{}, nil)
	dir := t.TempDir()
	rep := e.call(&protocol.Msg{Type: protocol.TypeUpload, Payload: &protocol.Upload{Dir: dir, Name: "m", Mod: 0o751 | os.ModeDir, Data: compress.Encode([]byte("x"))}})
	if !rep.UploadRep().OK {
		t.Fatalf("upload: %+v", rep.UploadRep())
	}
	if fi, err := os.Stat(filepath.Join(dir, "m")); err != nil || fi.Mode() != 0o751 {
		t.Errorf("mode %v (err %v), want -rwxr-x--x (type bits ignored)", fi.Mode(), err)
	}
	// Setuid, setgid and sticky, as os.FileMode bits or as the Unix octal
	// bits a server may send.
	for _, mod := range []os.FileMode{os.ModeSetuid | os.ModeSetgid | os.ModeSticky | 0o755, 0o7755} {
		rep = e.call(&protocol.Msg{Type: protocol.TypeUpload, Payload: &protocol.Upload{Dir: dir, Name: "s", Mod: mod, Data: compress.Encode([]byte("x"))}})
		fi, err := os.Stat(filepath.Join(dir, "s"))
		if !rep.UploadRep().OK || err != nil || fi.Mode() != os.ModeSetuid|os.ModeSetgid|os.ModeSticky|0o755 {
			t.Errorf("mod %o: %+v, mode %v (err %v)", uint32(mod), rep.UploadRep(), fi.Mode(), err)
		}
	}
	// An unknown owner fails before anything is written; with su/sudo
	// and no own_user the owner is the auth user, and the reply says so.
	for _, tc := range []struct {
		up  protocol.Upload
		msg string
	}{
		{protocol.Upload{OwnUser: "no-such-user-xyz"}, `upload: own_user "no-such-user-xyz": user: unknown user no-such-user-xyz`},
		{protocol.Upload{OwnGroup: "no-such-group-xyz"}, `upload: own_group "no-such-group-xyz": group: unknown group no-such-group-xyz`},
		{protocol.Upload{Auth: protocol.AuthSudo, User: "no-such-user-xyz"}, `upload: user "no-such-user-xyz": user: unknown user no-such-user-xyz`},
	} {
		up := tc.up
		up.Dir, up.Name, up.Mod, up.Data = dir, "o", 0o4755, compress.Encode([]byte("x"))
		rep = e.call(&protocol.Msg{Type: protocol.TypeUpload, Payload: &up})
		if r := rep.UploadRep(); r.OK || r.Dir != "" || r.Msg != tc.msg {
			t.Errorf("bad owner: %+v, want the failure %q", r, tc.msg)
		}
		if _, err := os.Lstat(filepath.Join(dir, "o")); err == nil {
			t.Errorf("%q: the file was written", tc.msg)
		}
	}
}

func TestDownload(t *testing.T) {
	x := newXfer()
	for _, v1 := range []bool{false, true} {
		name := map[bool]string{false: "bulk", true: "v1"}[v1]
		t.Run(name, func(t *testing.T) {
			e := start(t, agenttest.Options{HTTP: x, V1: v1}, nil)
			dir := t.TempDir()
			for _, n := range []int{0, 1, 1<<20 - 1, 1 << 20, 1<<20 + 1} {
				content := pattern(n)
				path := filepath.Join(dir, "f")
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				got := e.download(&protocol.DownloadReq{Dir: path, URI: "/x/d", Token: "tok"}, x, v1)
				if !bytes.Equal(got, content) {
					t.Fatalf("%d bytes: got %d bytes back", n, len(got))
				}
			}
			for _, bad := range []struct{ path, msg string }{
				{dir + "/nope", "no such file"},
				{dir, "not a regular file"},
				{dir + "/../etc/passwd", "invalid path"},
				{"etc/passwd", "invalid path"},
			} {
				rep := e.call(&protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{Dir: bad.path, URI: "/x/d", Token: "tok"}})
				if rep.Type != protocol.TypeDownloadRep || rep.DownloadRep().OK || !strings.Contains(rep.DownloadRep().Msg, bad.msg) {
					t.Errorf("download %q: %v %+v, want %q", bad.path, rep.Type, rep.DownloadRep(), bad.msg)
				}
			}
		})
	}
}

// download fetches path either way and checks size and md5.
func (e *env) download(req *protocol.DownloadReq, x *xfer, v1 bool) []byte {
	e.t.Helper()
	tid := e.send(&protocol.Msg{Type: protocol.TypeDownloadReq, Payload: req})
	rep := e.await(tid, 20*time.Second)
	if rep.Type != protocol.TypeDownloadRep || !rep.DownloadRep().OK {
		e.t.Fatalf("download: %v %+v", rep.Type, rep.DownloadRep())
	}
	var got []byte
	if v1 {
		if rep.DownloadRep().BlockSize != protocol.DefaultBlockSize {
			e.t.Fatalf("v1 block size %d", rep.DownloadRep().BlockSize)
		}
		for uint64(len(got)) < rep.DownloadRep().Size {
			m := e.await(tid, 20*time.Second)
			if m.Type != protocol.TypeDownloadData || m.DownloadData().Offset != uint64(len(got)) {
				e.t.Fatalf("block at %d: %v %+v", len(got), m.Type, m.DownloadData())
			}
			b, err := compress.Decode(m.DownloadData().Data, protocol.DefaultBlockSize)
			if err != nil {
				e.t.Fatal(err)
			}
			got = append(got, b...)
		}
	} else {
		x.mu.Lock()
		got = x.put["d"]
		delete(x.put, "d")
		x.mu.Unlock()
		if rep.DownloadRep().BlockSize != 0 {
			e.t.Fatalf("bulk block size %d", rep.DownloadRep().BlockSize)
		}
	}
	if uint64(len(got)) != rep.DownloadRep().Size || md5.Sum(got) != rep.DownloadRep().MD5 {
		e.t.Fatalf("size/md5 mismatch: got %d bytes, rep %+v", len(got), rep.DownloadRep())
	}
	return got
}

func TestDownloadRange(t *testing.T) {
	x := newXfer()
	e := start(t, agenttest.Options{HTTP: x}, nil)
	path := filepath.Join(t.TempDir(), "f")
	content := pattern(100000)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		off, n uint64
		want   []byte
		msg    string
	}{
		{off: 10, n: 20, want: content[10:30]},
		{off: 99990, want: content[99990:]},
		{off: 99990, n: 100, want: content[99990:]},
		{off: 100000, want: []byte{}},
		{off: 100001, msg: "outside the file"},
	}
	for _, tc := range tests {
		tid := e.send(&protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{Dir: path, URI: "/x/r", Token: "tok", Offset: tc.off, Length: tc.n}})
		rep := e.await(tid, 10*time.Second).DownloadRep()
		if tc.msg != "" {
			if rep.OK || !strings.Contains(rep.Msg, tc.msg) {
				t.Errorf("range %d+%d: %+v, want %q", tc.off, tc.n, rep, tc.msg)
			}
			continue
		}
		x.mu.Lock()
		got := x.put["r"]
		x.mu.Unlock()
		if !rep.OK || !bytes.Equal(got, tc.want) || rep.Size != uint64(len(tc.want)) || rep.Total != 100000 || rep.MD5 != md5.Sum(tc.want) {
			t.Errorf("range %d+%d: rep %+v, %d bytes", tc.off, tc.n, rep, len(got))
		}
	}
	// A PUT the server refuses.
	rep := e.call(&protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{Dir: path, URI: "/x/r", Token: "bad"}}).DownloadRep()
	if rep.OK || !strings.HasPrefix(rep.Msg, "upload to server: ") || !strings.Contains(rep.Msg, "401") {
		t.Errorf("refused PUT: %+v", rep)
	}
}
