//go:build linux

package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/filetest"
)

type lsEntry struct {
	Name    string `json:"name"`
	Size    uint64 `json:"size"`
	User    string `json:"user"`
	IsDir   bool   `json:"is_dir"`
	IsLink  bool   `json:"is_link"`
	LinkDir string `json:"link_dir"`
}

func TestLsTree(t *testing.T) {
	e := newEnv(t, envOptions{})
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "file"), []byte("12345"), 0o640))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "inner"), []byte("x"), 0o644))
	must(os.Symlink("file", filepath.Join(dir, "to-file")))
	must(os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "to-dir")))
	must(os.Symlink("/nonexistent/e2e", filepath.Join(dir, "dangling")))

	r := e.api("GET", "/api/file/"+e.agentID+"/ls?dir="+url.QueryEscape(dir), nil)
	if r.status != 200 {
		t.Fatalf("ls: %d %s", r.status, r.body)
	}
	var list []lsEntry
	if err := json.Unmarshal(r.Payload, &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]lsEntry{}
	for _, f := range list {
		got[f.Name] = f
	}
	want := map[string]lsEntry{
		"file":     {Name: "file", Size: 5, User: "root"},
		"sub":      {Name: "sub", IsDir: true, User: "root"},
		"to-file":  {Name: "to-file", IsLink: true, LinkDir: "file", User: "root"},
		"to-dir":   {Name: "to-dir", IsLink: true, LinkDir: filepath.Join(dir, "sub"), User: "root"},
		"dangling": {Name: "dangling", IsLink: true, LinkDir: "/nonexistent/e2e", User: "root"},
	}
	if len(got) != len(want) {
		t.Errorf("ls: %d entries %+v, want %d", len(got), list, len(want))
	}
	for name, w := range want {
		g := got[name]
		if os.Geteuid() != 0 {
			w.User = g.User
		}
		if w.IsDir || w.IsLink {
			g.Size = 0 // the size of a directory or link is the file system's
		}
		if g != w {
			t.Errorf("%s: %+v, want %+v", name, g, w)
		}
	}
	r = e.api("GET", "/api/file/"+e.agentID+"/ls?dir="+url.QueryEscape(filepath.Join(dir, "sub")), nil)
	if r.status != 200 || !strings.Contains(string(r.Payload), `"name":"inner"`) {
		t.Errorf("ls sub: %d %s", r.status, r.body)
	}
}

// Files of every interesting size go up and come back with their checksums.
func TestTransferSizes(t *testing.T) {
	e := newEnv(t, envOptions{})
	src, dst := t.TempDir(), t.TempDir()
	sizes := []int64{0, 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 200e6}
	if testing.Short() {
		sizes = sizes[:5]
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			name := fmt.Sprintf("f%d", n)
			sum := filetest.Make(t, filepath.Join(src, name), n, filetest.Compressible)
			r := e.upload(filepath.Join(src, name), dst, name, sum)
			var up struct {
				Dir string `json:"dir"`
			}
			_ = json.Unmarshal(r.Payload, &up)
			if r.status != 200 || up.Dir != filepath.Join(dst, name) {
				t.Fatalf("upload: %d %s", r.status, r.body)
			}
			if got, size := filetest.MD5(t, up.Dir); got != sum || size != n {
				t.Fatalf("uploaded file: md5 %s size %d, want %s %d", got, size, sum, n)
			}
			h := md5.New()
			status, hdr, body := e.download(up.Dir, h)
			if status != 200 {
				t.Fatalf("download: %d %s", status, body)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != sum {
				t.Errorf("downloaded md5 %s, want %s", got, sum)
			}
			if cl := hdr.Get("Content-Length"); cl != fmt.Sprint(n) {
				t.Errorf("Content-Length %q, want %d", cl, n)
			}
			if cd := hdr.Get("Content-Disposition"); !strings.Contains(cd, name) {
				t.Errorf("Content-Disposition %q", cd)
			}
			_ = os.Remove(up.Dir)
		})
	}
	// A wrong md5 is refused before the agent is asked.
	filetest.Make(t, filepath.Join(src, "m"), 10, filetest.Compressible)
	if r := e.upload(filepath.Join(src, "m"), dst, "m", strings.Repeat("0", 32)); r.status != 400 || !strings.Contains(r.Msg, "md5 mismatch") {
		t.Errorf("wrong md5: %d %s", r.status, r.body)
	}
}

// An upload that breaks halfway leaves the existing file as it was and no
// temporary file behind.
func TestUploadFailsHalfway(t *testing.T) {
	e := newEnv(t, envOptions{})
	src, dst := t.TempDir(), t.TempDir()
	target := filepath.Join(dst, "keep")
	if err := os.WriteFile(target, []byte("the old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := filetest.Make(t, filepath.Join(src, "keep"), 8<<20, filetest.Compressible)
	e.proxy.CutResponses("GET /api/transfer/", 4<<20) // the agent's GET of the bytes breaks after 4 MiB
	r := e.upload(filepath.Join(src, "keep"), dst, "keep", sum)
	e.proxy.CutResponses("", 0)
	if r.status == 200 {
		t.Fatalf("upload succeeded: %s", r.body)
	}
	t.Logf("upload failed as it should: %d %s", r.status, r.Msg)
	if b, err := os.ReadFile(target); err != nil || string(b) != "the old content" {
		t.Errorf("existing file now %q (%v)", b, err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("existing file's mode changed: %v", fi.Mode())
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 1 {
		t.Errorf("files in the target dir: %v, want only keep", entries)
	}
	// The same upload without the cut replaces the file.
	if r := e.upload(filepath.Join(src, "keep"), dst, "keep", sum); r.status != 200 {
		t.Fatalf("second upload: %d %s", r.status, r.body)
	}
	if got, _ := filetest.MD5(t, target); got != sum {
		t.Errorf("replaced file md5 %s, want %s", got, sum)
	}
}

// Names and paths that try to leave their directory are refused.
func TestPathTricks(t *testing.T) {
	e := newEnv(t, envOptions{})
	src, dst := t.TempDir(), t.TempDir()
	sum := filetest.Make(t, filepath.Join(src, "f"), 3, filetest.Compressible)
	for _, name := range []string{"../escape", "..", "a/b", `a\b`, "/etc/x"} {
		r := e.upload(filepath.Join(src, "f"), dst, name, sum)
		if r.status != 400 || !strings.Contains(r.Msg, "not a plain file name") {
			t.Errorf("upload name %q: %d %s, want 400", name, r.status, r.body)
		}
	}
	for _, dir := range []string{dst + "/../" + filepath.Base(dst), "relative/dir", dst + "/./x"} {
		r := e.upload(filepath.Join(src, "f"), dir, "f", sum)
		if r.status == 200 || !strings.Contains(r.Msg, "invalid path") {
			t.Errorf("upload to dir %q: %d %s, want refused (invalid path)", dir, r.status, r.body)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "escape")); err == nil {
		t.Error("a file escaped the target directory")
	}
	for _, p := range []string{"/tmp/../etc/passwd", "etc/passwd", "/etc/./passwd"} {
		r := e.api("GET", "/api/file/"+e.agentID+"/ls?dir="+url.QueryEscape(p), nil)
		if r.status == 200 || !strings.Contains(r.Msg, "invalid path") {
			t.Errorf("ls %q: %d %s, want refused", p, r.status, r.body)
		}
		status, _, body := e.download(p, nil)
		if status == 200 || !strings.Contains(string(body), "invalid path") {
			t.Errorf("download %q: %d %s, want refused", p, status, body)
		}
	}
}
