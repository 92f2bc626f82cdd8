package e2e

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
)

func TestFileLs(t *testing.T) {
	ts, _ := startExecServer(t, nil)
	fa := newFakeExec(t, ts.addr, "x1")
	mt := time.Date(2026, 11, 24, 13, 41, 28, 0, time.UTC)
	fa.dirs["/srv"] = []protocol.FileInfo{
		{Name: "a.txt", Mod: 0o644, User: "root", Group: "adm", Size: 12, ModTime: mt},
		{Name: "sub", Mod: os.ModeDir | 0o755, User: "root", Group: "root", Size: 4096, ModTime: mt},
		{Name: "l", Mod: os.ModeSymlink | 0o777, User: "u", Group: "g", ModTime: mt, IsLink: true, LinkDir: "/srv/sub"},
	}
	ts.waitOnline("x1")
	type entry struct {
		Name       string    `json:"name"`
		Auth       uint32    `json:"auth"`
		Mode       string    `json:"mode"`
		Perm       string    `json:"perm"`
		User       string    `json:"user"`
		Group      string    `json:"group"`
		Size       uint64    `json:"size"`
		ModTime    int64     `json:"mod_time"`
		ModifiedAt time.Time `json:"modified_at"`
		IsDir      bool      `json:"is_dir"`
		IsLink     bool      `json:"is_link"`
		LinkDir    string    `json:"link_dir"`
	}
	got := decode[[]entry](t, ts.get("/api/file/x1/ls?dir=/srv"))
	u := mt.Unix()
	want := []entry{
		{"a.txt", 0o644, "-rw-r--r--", "0644", "root", "adm", 12, u, mt, false, false, ""},
		{"sub", 2147484141, "drwxr-xr-x", "0755", "root", "root", 4096, u, mt, true, false, ""},
		{"l", 134218239, "Lrwxrwxrwx", "0777", "u", "g", 0, u, mt, false, true, "/srv/sub"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ls = %+v\nwant %+v", got, want)
	}
}

func randBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestFileUpload(t *testing.T) {
	for _, cs := range capSets {
		t.Run(cs.name, func(t *testing.T) {
			// The url= source below is on loopback, which the default
			// api.url_deny refuses (TestHostileUpload).
			ts, cache := startExecServer(t, func(c *config.Config) { c.API.URLDeny = []string{"link-local", "metadata"} })
			fa := newFakeExec(t, ts.addr, "x1", cs.caps...)
			ts.waitOnline("x1")
			for _, n := range []int{0, 1, 1 << 20, 1<<20 + 1, 3 << 20} {
				data := randBytes(n)
				sum := md5.Sum(data)
				crc := fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
				e := ts.multipartBytes("/api/file/x1/upload", map[string]string{"dir": "/d", "md5": hex.EncodeToString(sum[:]), "crc32c": crc, "mod": "0600"}, "f.bin", data)
				if want := fmt.Sprintf(`{"dir":"/d/f.bin","size":%d,"md5":"%x","crc32c":"%s"}`, n, sum, crc); e.status != 200 || string(e.Payload) != want {
					t.Fatalf("upload %d: %d %s", n, e.status, e.body)
				}
				fa.mu.Lock()
				got, up := fa.files["/d/f.bin"], fa.uploads[len(fa.uploads)-1]
				fa.mu.Unlock()
				if !bytes.Equal(got, data) || up.Mod != 0o600 || up.Size != uint64(n) || up.MD5 != sum || up.MD5Check != (n > 0) {
					t.Errorf("upload %d: agent got %d bytes, %+v", n, len(got), up)
				}
				inline := up.URI == ""
				if wantInline := cs.caps == nil && n <= protocol.MaxInlineUpload; inline != wantInline {
					t.Errorf("upload %d: inline %v, want %v", n, inline, wantInline)
				}
			}
			// url: the server fetches it.
			src := randBytes(100000)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/files/pkg.tar" {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write(src)
			}))
			defer hs.Close()
			e := ts.multipartBytes("/api/file/x1/upload", map[string]string{"dir": "/opt", "url": hs.URL + "/files/pkg.tar"}, "", nil)
			fa.mu.Lock()
			got := fa.files["/opt/pkg.tar"]
			fa.mu.Unlock()
			want := fmt.Sprintf(`{"dir":"/opt/pkg.tar","size":100000,"md5":"%x","crc32c":"%08x"}`, md5.Sum(src), crc32.Checksum(src, crc32.MakeTable(crc32.Castagnoli)))
			if e.status != 200 || string(e.Payload) != want || !bytes.Equal(got, src) {
				t.Errorf("url upload: %d %s, %d bytes", e.status, e.body, len(got))
			}
			e = ts.multipartBytes("/api/file/x1/upload", map[string]string{"dir": "/opt", "url": hs.URL + "/missing"}, "", nil)
			if e.status != 502 || e.Msg != "fetch url: HTTP 404 Not Found" {
				t.Errorf("url 404: %d %s", e.status, e.body)
			}
			if ts.srv.Store() == nil || len(fa.uploads) == 0 {
				t.Fatal("no uploads")
			}
			cacheEmpty(t, cache)
		})
	}
}

func TestFileUploadTooLarge(t *testing.T) {
	ts, cache := startExecServer(t, func(c *config.Config) { c.API.UploadMaxBody = 1000 })
	newFakeExec(t, ts.addr, "x1")
	ts.waitOnline("x1")
	e := ts.multipartBytes("/api/file/x1/upload", map[string]string{"dir": "/d"}, "big", randBytes(5000))
	if e.status != 413 || e.Msg != "file too large (limit 1000 bytes)" {
		t.Errorf("too large: %d %s", e.status, e.body)
	}
	cacheEmpty(t, cache)
}

func TestTransferToken(t *testing.T) {
	ts, cache := startExecServer(t, nil)
	fa := newFakeExec(t, ts.addr, "x1", protocol.CapBulk)
	ts.waitOnline("x1")
	get := func(uri, tok string) int {
		req, _ := http.NewRequest("GET", ts.url+uri, nil)
		if tok != "" {
			req.Header.Set(protocol.TokenHeader, tok)
		}
		resp, err := fa.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var seen *protocol.Upload
	fa.onUp = func(up *protocol.Upload) {
		seen = up
		if s := get(up.URI, ""); s != 401 {
			t.Errorf("no token: %d", s)
		}
		if s := get(up.URI, up.Token+"x"); s != 401 {
			t.Errorf("wrong token: %d", s)
		}
		if s := get(up.URI+"x", up.Token); s != 404 {
			t.Errorf("wrong id: %d", s)
		}
	}
	e := ts.multipartBytes("/api/file/x1/upload", map[string]string{"dir": "/d"}, "f", []byte("hello"))
	if e.status != 200 || seen == nil {
		t.Fatalf("upload: %d %s", e.status, e.body)
	}
	if s := get(seen.URI, seen.Token); s != 404 {
		t.Errorf("second use: %d, want 404", s)
	}
	cacheEmpty(t, cache)
}

func TestFileDownload(t *testing.T) {
	for _, cs := range capSets {
		t.Run(cs.name, func(t *testing.T) {
			ts, cache := startExecServer(t, nil)
			fa := newFakeExec(t, ts.addr, "x1", cs.caps...)
			data := randBytes(300000)
			fa.files["/var/log/big file.log"] = data
			fa.files["/e"] = nil
			fa.dirs["/var/log"] = []protocol.FileInfo{{Name: "big file.log", Size: uint64(len(data))}}
			ts.waitOnline("x1")
			path := "/api/file/x1/download?dir=" + "%2Fvar%2Flog%2Fbig%20file.log"
			tests := []struct {
				rng    string
				status int
				body   []byte
				cr     string
			}{
				{"", 200, data, ""},
				{"bytes=0-99", 206, data[:100], "bytes 0-99/300000"},
				{"bytes=299990-", 206, data[299990:], "bytes 299990-299999/300000"},
				{"bytes=-10", 206, data[299990:], "bytes 299990-299999/300000"},
				{"bytes=100-9999999", 206, data[100:], "bytes 100-299999/300000"},
				{"bytes=300000-", 416, nil, "bytes */300000"},
				{"bytes=5-1", 416, nil, ""},
				{"bytes=0-1,5-6", 416, nil, ""},
			}
			for _, tt := range tests {
				req, _ := http.NewRequest("GET", ts.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+opToken)
				if tt.rng != "" {
					req.Header.Set("Range", tt.rng)
				}
				resp, err := ts.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tt.status || resp.Header.Get("Content-Range") != tt.cr {
					t.Errorf("%q: %d %q %v", tt.rng, resp.StatusCode, resp.Header.Get("Content-Range"), err)
					continue
				}
				if tt.status >= 300 {
					continue
				}
				if !bytes.Equal(b, tt.body) || resp.Header.Get("Content-Length") != fmt.Sprint(len(tt.body)) ||
					resp.Header.Get("Content-Disposition") != `attachment; filename="big file.log"` {
					t.Errorf("%q: %d bytes, headers %v", tt.rng, len(b), resp.Header)
				}
			}
			e := ts.get("/api/file/x1/download?dir=/e")
			if e.status != 200 || len(e.body) != 0 || e.header.Get("Content-Length") != "0" {
				t.Errorf("empty file: %d %q %v", e.status, e.body, e.header)
			}
			fa.mu.Lock()
			fa.badMD5 = true
			fa.mu.Unlock()
			if cs.caps == nil {
				e := ts.get(path)
				if e.status != 409 || e.Msg != "invalid checksum" {
					t.Errorf("bad md5: %d %s", e.status, e.Msg)
				}
			} else {
				// The bytes were streamed already: the connection is aborted.
				req, _ := http.NewRequest("GET", ts.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+opToken)
				resp, err := ts.client.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Errorf("bad md5 on bulk: the response ended normally")
				}
			}
			cacheEmpty(t, cache)
		})
	}
}

func TestScriptRun(t *testing.T) {
	for _, cs := range capSets {
		t.Run(cs.name, func(t *testing.T) {
			ts, cache := startExecServer(t, nil)
			fa := newFakeExec(t, ts.addr, "x1", cs.caps...)
			ts.waitOnline("x1")
			script := []byte("#!/bin/sh\necho hi\n")
			sum := md5.Sum(script)
			e := ts.multipartBytes("/api/script/x1/run", map[string]string{"type": "sh", "md5": hex.EncodeToString(sum[:]), "args": "one"}, "s.sh", script)
			rep := decode[struct {
				ID    string `json:"id"`
				Code  int    `json:"code"`
				Data  []byte `json:"data"`
				State string `json:"state"`
			}](t, e)
			if rep.Code != 0 || rep.State != "ok" || !bytes.Equal(rep.Data, script) || rep.ID == "" {
				t.Errorf("script: %+v", rep)
			}
			fa.mu.Lock()
			x := fa.execs[len(fa.execs)-1]
			up := fa.uploads[len(fa.uploads)-1]
			fa.mu.Unlock()
			if x.Cmd != "sh" || len(x.Args) != 2 || x.Args[1] != "one" || x.DeferRM != x.Args[0] || up.Dir != protocol.UploadTmpDir || up.Mod != 0o700 {
				t.Errorf("exec %+v upload %+v", x, up)
			}
			cacheEmpty(t, cache)
		})
	}
}
