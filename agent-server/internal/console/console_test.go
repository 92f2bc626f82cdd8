package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func testSite(t *testing.T) *Site {
	t.Helper()
	big := strings.Repeat("console.log('agentfleet');\n", 200)
	s, err := load(fstest.MapFS{
		"dist/ui/index.html":   {Data: []byte("<!doctype html><script type=module src=/ui/app.js></script>")},
		"dist/ui/app.js":       {Data: []byte(big)},
		"dist/ui/app.css":      {Data: []byte("body{}")},
		"dist/ui/favicon.svg":  {Data: []byte("<svg/>")},
		"dist/docs/index.html": {Data: []byte("<!doctype html>docs")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func serve(h http.HandlerFunc, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h(w, r)
	return w
}

func TestUI(t *testing.T) {
	s := testSite(t)
	tests := []struct {
		path, ctype, body string
		code              int
	}{
		{"/ui/", "text/html; charset=utf-8", "<!doctype html>", 200},
		{"/ui/fleet", "text/html; charset=utf-8", "<!doctype html>", 200},             // the app's own route
		{"/ui/hosts/a.b.c/files", "text/html; charset=utf-8", "<!doctype html>", 200}, // dots in the path, none in the last element
		{"/ui/app.js", "text/javascript; charset=utf-8", "console.log", 200},
		{"/ui/app.css", "text/css; charset=utf-8", "body{}", 200},
		{"/ui/favicon.svg", "image/svg+xml", "<svg/>", 200},
		{"/ui/missing.js", "", "404", 404},                                           // a missing file is not the app
		{"/ui/../../etc/passwd", "text/html; charset=utf-8", "<!doctype html>", 200}, // names are keys of the embedded map: nothing else is reachable
		{"/ui/../../etc/hosts.conf", "", "404", 404},
	}
	for _, tt := range tests {
		w := serve(s.UI, "GET", tt.path)
		if w.Code != tt.code || (tt.ctype != "" && w.Header().Get("Content-Type") != tt.ctype) || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("GET %s: %d %q %.40q, want %d %q %q", tt.path, w.Code, w.Header().Get("Content-Type"), w.Body.String(), tt.code, tt.ctype, tt.body)
		}
	}
	w := serve(s.UI, "GET", "/ui/")
	for k, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
	} {
		if !strings.Contains(w.Header().Get(k), want) {
			t.Errorf("%s = %q, want %q in it", k, w.Header().Get(k), want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") || strings.Contains(csp, "http") {
		t.Errorf("CSP too loose: %s", csp)
	}
}

func TestETagAndGzip(t *testing.T) {
	s := testSite(t)
	w := serve(s.UI, "GET", "/ui/app.js")
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("no ETag, or gzip without Accept-Encoding: %v", w.Header())
	}
	if w := serve(s.UI, "GET", "/ui/app.js", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d %d bytes", w.Code, w.Body.Len())
	}
	for _, ae := range []string{"gzip", "br, gzip;q=0.5", "deflate, GZIP"} {
		w := serve(s.UI, "GET", "/ui/app.js", "Accept-Encoding", ae)
		if w.Header().Get("Content-Encoding") != "gzip" {
			t.Errorf("Accept-Encoding %q: not gzipped", ae)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		if !strings.HasPrefix(string(b), "console.log") || w.Body.Len() >= len(b) {
			t.Errorf("gzip body: %d bytes for %d", w.Body.Len(), len(b))
		}
	}
	for _, ae := range []string{"gzip;q=0", "br", "gzip; q=0.0"} {
		if w := serve(s.UI, "GET", "/ui/app.js", "Accept-Encoding", ae); w.Header().Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: gzipped anyway", ae)
		}
	}
	// Small files are not worth compressing.
	if w := serve(s.UI, "GET", "/ui/app.css", "Accept-Encoding", "gzip"); w.Header().Get("Content-Encoding") != "" || w.Body.String() != "body{}" {
		t.Errorf("small file: %v %q", w.Header(), w.Body.String())
	}
}

func TestDocsAndRoot(t *testing.T) {
	s := testSite(t)
	if w := serve(s.Docs, "GET", "/docs/"); w.Code != 200 || !strings.Contains(w.Body.String(), "docs") {
		t.Errorf("/docs/: %d %q", w.Code, w.Body.String())
	}
	if w := serve(s.Docs, "GET", "/docs/nope.js"); w.Code != 404 {
		t.Errorf("/docs/nope.js: %d", w.Code)
	}
	if w := serve(Root, "GET", "/"); w.Code != http.StatusFound || w.Header().Get("Location") != "/ui/" {
		t.Errorf("/: %d %q", w.Code, w.Header().Get("Location"))
	}
}

// TestEmbedded: the committed build is in the binary, and within budget:
// everything /ui/ serves is at most 400 KB gzipped (the API reference
// renderer under /docs/ is counted on its own, docs/console.md).
func TestEmbedded(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ui/index.html", "ui/app.js", "ui/app.css", "docs/index.html", "docs/swagger-ui-bundle.js", "docs/docs.js"} {
		if !s.has(f) {
			t.Errorf("%s is not embedded (make console)", f)
		}
	}
	var ui, docs int
	for name, sz := range s.sizes() {
		if strings.HasPrefix(name, "ui/") {
			ui += sz[1]
		} else {
			docs += sz[1]
		}
	}
	t.Logf("/ui/ %d bytes gzipped, /docs/ %d", ui, docs)
	if ui > 400_000 {
		t.Errorf("/ui/ assets are %d bytes gzipped, over the 400,000 budget", ui)
	}
	// Every script the page loads is one of ours (no CDN).
	w := serve(s.UI, "GET", "/ui/")
	if strings.Contains(w.Body.String(), "http://") || strings.Contains(w.Body.String(), "https://") {
		t.Errorf("index.html refers to another origin: %s", w.Body.String())
	}
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "br, gzip;q=0.5", "", ";;", "gzip;q=", "gzip;q=abc", "GZIP ; q = 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ae string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", ae)
		_ = acceptsGzip(r)
	})
}
