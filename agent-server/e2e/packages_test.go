package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/packages"
)

// genReader yields n pseudo-random bytes after a prefix (a type's magic
// bytes), computing their sha256 as they are read: a large upload that
// the test never holds in memory.
type genReader struct {
	prefix []byte
	left   int64
	rng    *rand.ChaCha8
	h      hash.Hash
}

func newGen(prefix string, n int64, seed byte) *genReader {
	return &genReader{prefix: []byte(prefix), left: n - int64(len(prefix)), rng: rand.NewChaCha8([32]byte{seed}), h: sha256.New()}
}

func (g *genReader) Read(p []byte) (int, error) {
	if len(g.prefix) > 0 {
		n := copy(p, g.prefix)
		g.prefix = g.prefix[n:]
		g.h.Write(p[:n])
		return n, nil
	}
	if g.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	g.rng.Read(p)
	g.left -= int64(len(p))
	g.h.Write(p)
	return len(p), nil
}

func (g *genReader) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

// pkgReq sends a package request with token and optional headers; body
// may be nil, or a reader without a length (sent chunked).
func (ts *testServer) pkgReq(method, path, token string, body io.Reader, hdr map[string]string) (*http.Response, envelope) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var e envelope
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &e)
		e.body = b
	}
	e.status, e.header = resp.StatusCode, resp.Header
	return resp, e
}

// download fetches a package and returns the sha256 of its body and the
// response's headers.
func (ts *testServer) download(name, token string) (string, int64, http.Header) {
	ts.t.Helper()
	req, _ := http.NewRequest("GET", ts.url+"/api/packages/"+name+"/download", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		ts.t.Fatalf("download %s: %d %s", name, resp.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		ts.t.Fatalf("download %s: %v", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, resp.Header
}

func (ts *testServer) packageList(token string) packagesPayload {
	ts.t.Helper()
	_, e := ts.pkgReq("GET", "/api/packages", token, nil, nil)
	var out packagesPayload
	if e.status != 200 || json.Unmarshal(e.Payload, &out) != nil {
		ts.t.Fatalf("list: %d %s", e.status, e.body)
	}
	return out
}

type packagesPayload struct {
	Packages []packages.Info `json:"packages"`
	MaxSize  int64           `json:"max_size"`
}

// TestPackages: a multi-MB package uploaded streamed (the server's memory
// does not grow with it), listed, downloaded with its checksum, kept
// across a restart; the read-only token reads but cannot write; writes
// are audited.
func TestPackages(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir})

	const size = 48 << 20
	gen := newGen("\x1f\x8b\x08", size, 1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// Chunked: no Content-Length, the server cannot size anything by it.
	_, e := ts.pkgReq("PUT", "/api/packages/big_1.0.tar.gz", opToken, io.MultiReader(gen), nil)
	runtime.ReadMemStats(&after)
	if e.status != 200 {
		t.Fatalf("upload: %d %s", e.status, e.body)
	}
	// The whole process (client, server) allocated far less than the
	// package: the body went through fixed buffers to the file.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/3 {
		t.Errorf("uploading %d MiB allocated %d MiB: the body is buffered", size>>20, alloc>>20)
	}
	var info packages.Info
	if err := json.Unmarshal(e.Payload, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "big_1.0.tar.gz" || info.Size != size || info.SHA256 != gen.sum() || info.Kind != "tar.gz" || info.Created.IsZero() {
		t.Fatalf("upload answered %+v, want sha256 %s", info, gen.sum())
	}

	// A small one with its checksum in the header, and one as a query.
	deb := []byte("!<arch>\ndebian-binary   2.0\n")
	debSum := sha256.Sum256(deb)
	if _, e := ts.pkgReq("PUT", "/api/packages/app_1.0_amd64.deb", opToken, bytes.NewReader(deb),
		map[string]string{"X-Checksum-Sha256": hex.EncodeToString(debSum[:])}); e.status != 200 {
		t.Fatalf("upload deb: %d %s", e.status, e.body)
	}
	elf := append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{7}, 4096)...)
	elfSum := sha256.Sum256(elf)
	if _, e := ts.pkgReq("PUT", "/api/packages/exec-agent_2.0_linux_amd64?sha256="+hex.EncodeToString(elfSum[:]), opToken, bytes.NewReader(elf), nil); e.status != 200 {
		t.Fatalf("upload bin: %d %s", e.status, e.body)
	}

	// Read-only token: lists, stats and downloads; cannot write.
	list := ts.packageList(roToken)
	if len(list.Packages) != 3 || list.Packages[1] != info || list.MaxSize != config.DefaultPackagesMaxSize {
		t.Fatalf("list: %+v", list)
	}
	if list.Packages[2].Kind != "bin" || list.Packages[0].Kind != "deb" {
		t.Fatalf("kinds: %+v", list.Packages)
	}
	if _, e := ts.pkgReq("GET", "/api/packages/big_1.0.tar.gz", roToken, nil, nil); e.status != 200 || !strings.Contains(string(e.Payload), gen.sum()) {
		t.Fatalf("stat: %d %s", e.status, e.body)
	}
	sum, n, hdr := ts.download("big_1.0.tar.gz", roToken)
	if sum != gen.sum() || n != size {
		t.Fatalf("download: %d bytes sha256 %s, want %s", n, sum, gen.sum())
	}
	raw, _ := hex.DecodeString(gen.sum())
	if hdr.Get("X-Checksum-Sha256") != gen.sum() || hdr.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":" ||
		hdr.Get("Content-Length") != "50331648" || !strings.Contains(hdr.Get("Content-Disposition"), "big_1.0.tar.gz") {
		t.Errorf("download headers: %v", hdr)
	}
	// One range.
	resp, _ := ts.pkgReq("GET", "/api/packages/app_1.0_amd64.deb/download", roToken, nil, map[string]string{"Range": "bytes=8-20"})
	if resp.StatusCode != 206 {
		t.Errorf("range: %d", resp.StatusCode)
	}
	for _, c := range []struct{ method, path string }{
		{"PUT", "/api/packages/ro.deb"}, {"DELETE", "/api/packages/app_1.0_amd64.deb"},
	} {
		if _, e := ts.pkgReq(c.method, c.path, roToken, bytes.NewReader(deb), nil); e.status != 403 || !strings.Contains(e.Msg, "packages:write") {
			t.Errorf("%s %s as read-only: %d %q", c.method, c.path, e.status, e.Msg)
		}
	}

	// Replace, delete.
	deb2 := []byte("!<arch>\ndebian-binary   2.0\nv2")
	if _, e := ts.pkgReq("PUT", "/api/packages/app_1.0_amd64.deb", opToken, bytes.NewReader(deb2), nil); e.status != 409 {
		t.Errorf("replace without replace=true: %d %s", e.status, e.Msg)
	}
	if _, e := ts.pkgReq("PUT", "/api/packages/app_1.0_amd64.deb?replace=true", opToken, bytes.NewReader(deb2), nil); e.status != 200 {
		t.Errorf("replace: %d %s", e.status, e.Msg)
	}
	if _, e := ts.pkgReq("DELETE", "/api/packages/exec-agent_2.0_linux_amd64", opToken, nil, nil); e.status != 200 {
		t.Fatalf("delete: %d %s", e.status, e.Msg)
	}
	if _, e := ts.pkgReq("GET", "/api/packages/exec-agent_2.0_linux_amd64", roToken, nil, nil); e.status != 404 || e.Msg != `not found: package "exec-agent_2.0_linux_amd64"` {
		t.Errorf("stat deleted: %d %q", e.status, e.Msg)
	}

	// Writes are audited with the package as target.
	e = ts.get("/api/audit?action=" + url.QueryEscape("PUT /api/packages/{name}"))
	var entries []struct{ Actor, Target, Result string }
	if err := json.Unmarshal(e.Payload, &entries); err != nil || len(entries) != 6 {
		t.Fatalf("audit of uploads: %s", e.body)
	}
	for _, en := range entries {
		if en.Target == "" || en.Actor == "" {
			t.Errorf("audit entry %+v", en)
		}
	}

	// After a restart the repository is as it was.
	addr := ts.addr
	ts.stop()
	ts2 := startServer(t, serverSpec{dataDir: dir, addr: addr})
	list2 := ts2.packageList(opToken)
	if len(list2.Packages) != 2 || list2.Packages[1] != info {
		t.Fatalf("list after restart: %+v", list2)
	}
	if sum, _, _ := ts2.download("big_1.0.tar.gz", opToken); sum != gen.sum() {
		t.Fatalf("download after restart: sha256 %s", sum)
	}
	if sum, _, _ := ts2.download("app_1.0_amd64.deb", opToken); sum != hex.EncodeToString(func() []byte { s := sha256.Sum256(deb2); return s[:] }()) {
		t.Fatal("the replaced package came back")
	}
}

// TestPackagesBadInput: every bad request is a 4xx naming what is wrong,
// and leaves nothing behind.
func TestPackagesBadInput(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: dir, mod: func(c *config.Config) { c.Packages.MaxSize = 1 << 20 }})
	deb := "!<arch>\ndebian-binary   2.0\n"
	if _, e := ts.pkgReq("PUT", "/api/packages/app.deb", opToken, strings.NewReader(deb), nil); e.status != 200 {
		t.Fatalf("upload: %d %s", e.status, e.body)
	}
	zero := strings.Repeat("0", 64)
	// Plain requests, through the e2e bad-input runner.
	checkAPI(t, ts, strings.Contains, []apiCase{
		{"PUT", "/api/packages/..%2Fx.deb", deb, 400, `invalid parameter name: "../x.deb": must not start with '.'`},
		{"PUT", "/api/packages/x%2F..%2F..%2Fetc%2Fpasswd", deb, 400, `invalid parameter name: "x/../../etc/passwd": a path separator is not allowed`},
		{"PUT", "/api/packages/a%5Cb.deb", deb, 400, "path separator"},
		{"PUT", "/api/packages/.x.deb", deb, 400, "invalid parameter name"},
		{"PUT", "/api/packages/-rf.deb", deb, 400, "must not start with '-'"},
		{"PUT", "/api/packages/a%20b.deb", deb, 400, "character ' ' at byte 1"},
		{"PUT", "/api/packages/" + strings.Repeat("a", 201) + ".deb", deb, 400, "longer than 200 bytes"},
		{"PUT", "/api/packages/nul.deb", deb, 400, "reserved device name"},
		{"PUT", "/api/packages/notes.txt", "hello", 400, `invalid parameter name: "notes.txt": unknown package type`},
		{"PUT", "/api/packages/b.deb", "PK\x03\x04zip", 400, "invalid parameter body: the content is not a deb file"},
		{"PUT", "/api/packages/b.deb?sha256=" + zero, deb, 400, "invalid parameter sha256: the content's sha256 is"},
		{"PUT", "/api/packages/b.deb?sha256=xyz", deb, 400, `invalid parameter sha256: "xyz": want 64 hexadecimal digits`},
		{"PUT", "/api/packages/b.deb?replace=maybe", deb, 400, "invalid parameter replace"},
		{"PUT", "/api/packages/app.deb", deb + "v2", 409, `package "app.deb" exists with sha256`},
		{"PUT", "/api/packages/APP.deb", deb, 409, "only in case"},
		{"GET", "/api/packages/nope.deb", "", 404, `not found: package "nope.deb"`},
		{"GET", "/api/packages/..%2F..%2Fetc%2Fpasswd", "", 400, "invalid parameter name"},
		{"GET", "/api/packages/nope.deb/download", "", 404, `not found: package "nope.deb"`},
		{"GET", "/api/packages/..%2F..%2Fetc%2Fpasswd/download", "", 400, "invalid parameter name"},
		{"DELETE", "/api/packages/nope.deb", "", 404, `not found: package "nope.deb"`},
		{"DELETE", "/api/packages/..%2Findex%2Fapp.deb", "", 400, "invalid parameter name"},
	})
	// Requests with headers, an empty or a large body.
	big := bytes.Repeat([]byte{'!'}, 1<<20+1)
	copy(big, deb)
	cases := []struct {
		name, path string
		body       io.Reader
		hdr        map[string]string
		status     int
		msg        string
	}{
		{"empty", "/api/packages/b.deb", strings.NewReader(""), nil, 400, "the content is not a deb file"},
		{"sha256 header mismatch", "/api/packages/b.deb", strings.NewReader(deb), map[string]string{"X-Checksum-Sha256": zero}, 400, "invalid parameter sha256"},
		{"sha256 query and header differ", "/api/packages/b.deb?sha256=" + zero, strings.NewReader(deb), map[string]string{"X-Checksum-Sha256": strings.Repeat("1", 64)}, 400, "invalid parameter sha256: the query says"},
		{"too big, declared", "/api/packages/big.deb", bytes.NewReader(big), nil, 413, "package over packages.max_size (1048576 bytes)"},
		{"too big, chunked", "/api/packages/big.deb", io.MultiReader(bytes.NewReader(big)), nil, 413, "package over packages.max_size (1048576 bytes)"},
		{"form body not parsed", "/api/packages/form.deb", strings.NewReader("a=b"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, "the content is not a deb file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, e := ts.pkgReq("PUT", c.path, opToken, c.body, c.hdr)
			if e.status != c.status || !strings.Contains(e.Msg, c.msg) {
				t.Errorf("PUT %s: %d %q, want %d %q", c.path, e.status, e.Msg, c.status, c.msg)
			}
		})
	}
	list := ts.packageList(opToken)
	if len(list.Packages) != 1 || list.Packages[0].Name != "app.deb" {
		t.Errorf("list: %+v", list.Packages)
	}
	pdir := filepath.Join(dir, "packages")
	for sub, want := range map[string]int{"index": 1, "blobs": 1, "tmp": 0} {
		if e, err := os.ReadDir(filepath.Join(pdir, sub)); err != nil || len(e) != want {
			t.Errorf("%s: %d files (%v), want %d", sub, len(e), err, want)
		}
	}
	m := metricsText(t, ts)
	for _, want := range []string{
		`agentserver_package_uploads_refused_total{reason="checksum"} 2`,
		`agentserver_package_uploads_refused_total{reason="too_large"} 2`,
		`agentserver_package_uploads_refused_total{reason="exists"} 2`,
		`agentserver_packages 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
