// Package console serves the web console (/ui/) and the API reference
// (/docs/) from files embedded in the binary: the build output of the
// repository's console/ folder, committed under dist/ so that building
// agent-server needs Go only (docs/console.md; `make console-check`
// rebuilds them and fails when they differ from their sources).
//
// Files are served with an ETag (a hash of their content), `Cache-Control:
// no-cache` (the browser revalidates, a 304 costs a round trip and no
// bytes), gzip when the client takes it (compressed once, on first use),
// and a Content-Security-Policy that allows the page's own origin only: no
// inline script, nothing from elsewhere. Under /ui/, a path that is not a
// file is the single-page app's own route and gets index.html.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// csp is the policy of every page: same-origin scripts, styles (inline
// style attributes too: the terminal and the charts set them), images,
// fetches and WebSockets; no frames, no plugins.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded file, its validator and, once asked for, its gzip.
type file struct {
	name  string
	body  []byte
	ctype string
	etag  string

	gzOnce sync.Once
	gz     []byte // nil: not worth it
}

func (f *file) gzipped() []byte {
	f.gzOnce.Do(func() {
		if len(f.body) < 1024 || !compressible(f.ctype) {
			return
		}
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(f.body)
		_ = zw.Close()
		if b.Len() < len(f.body) {
			f.gz = b.Bytes()
		}
	})
	return f.gz
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "javascript") || strings.Contains(ctype, "json") ||
		strings.Contains(ctype, "svg")
}

// Site is the set of embedded files. Safe for concurrent use.
type Site struct {
	files map[string]*file // by path under dist, e.g. "ui/app.js"
}

// New loads the embedded files.
func New() (*Site, error) {
	return load(dist)
}

func load(fsys fs.FS) (*Site, error) {
	s := &Site{files: map[string]*file{}}
	err := fs.WalkDir(fsys, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "dist/")
		ctype := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) { // not every system's mime table has them
		case ".js", ".mjs":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		case ".png":
			ctype = "image/png"
		case ".svg":
			ctype = "image/svg+xml"
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		s.files[name] = &file{name: name, body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return s, err
}

// has reports whether the embedded tree holds name ("ui/index.html").
func (s *Site) has(name string) bool { _, ok := s.files[name]; return ok }

// sizes returns the embedded files' names and sizes (raw, gzip), for the
// size budget test.
func (s *Site) sizes() map[string][2]int {
	out := make(map[string][2]int, len(s.files))
	for n, f := range s.files {
		gz := len(f.body)
		if z := f.gzipped(); z != nil {
			gz = len(z)
		}
		out[n] = [2]int{len(f.body), gz}
	}
	return out
}

// UI serves /ui/: files of dist/ui, and index.html for every other path
// (the app's own routes).
func (s *Site) UI(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, "/ui/")
	f := s.files["ui/"+rel]
	if rel == "" || f == nil {
		if rel != "" && strings.Contains(path.Base(rel), ".") { // a missing file is a 404, not the app
			http.NotFound(w, r)
			return
		}
		f = s.files["ui/index.html"]
	}
	s.serve(w, r, f)
}

// Docs serves /docs/: the API reference page and the renderer's files.
func (s *Site) Docs(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, "/docs/")
	if rel == "" {
		rel = "index.html"
	}
	f := s.files["docs/"+rel]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	s.serve(w, r, f)
}

// Root redirects / to the console.
func Root(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/ui/", http.StatusFound)
}

func (s *Site) serve(w http.ResponseWriter, r *http.Request, f *file) {
	if f == nil {
		http.Error(w, "console not built into this binary", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Vary", "Accept-Encoding")
	if strings.HasPrefix(f.ctype, "text/html") {
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if acceptsGzip(r) {
		if z := f.gzipped(); z != nil {
			h.Set("Content-Encoding", "gzip")
			body = z
		}
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// acceptsGzip reads Accept-Encoding: gzip, unless its weight is 0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !ok {
			return true
		}
		w, err := strconv.ParseFloat(q, 64)
		return err == nil && w > 0
	}
	return false
}
