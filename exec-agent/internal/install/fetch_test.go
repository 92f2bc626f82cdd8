package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// pkgServer serves body at /pkg, redirect chains at /r/N (N hops to
// /pkg), a body without length at /chunked, a body that stops halfway and
// hangs at /stall (until the client goes), and a redirect to another
// scheme at /file.
func pkgServer(t *testing.T, body []byte) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/pkg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	mux.HandleFunc("/r/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		to := "/pkg"
		if n > 1 {
			to = fmt.Sprintf("/r/%d", n-1)
		}
		http.Redirect(w, r, to, http.StatusFound)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		w.Write(body[len(body)/2:])
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestFetch(t *testing.T) {
	body := []byte(strings.Repeat("package bytes ", 1000))
	srv := pkgServer(t, body)
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/pkg", http.StatusFound)
	}))
	t.Cleanup(tls.Close)
	local := writeFile(t, t.TempDir(), "local.deb", body)
	cases := []struct {
		name string
		f    Fetcher
		src  Source
		want string // error text; "": success
		is   error
	}{
		{name: "url", src: Source{URL: srv.URL + "/pkg"}},
		{name: "url with sha256", src: Source{URL: srv.URL + "/pkg", SHA256: strings.ToUpper(sum(body))}},
		{name: "chunked", src: Source{URL: srv.URL + "/chunked", SHA256: sum(body)}},
		{name: "redirects within limit", f: Fetcher{MaxRedirects: 2}, src: Source{URL: srv.URL + "/r/2"}},
		{name: "local file", src: Source{Path: local, SHA256: sum(body)}},
		{name: "checksum mismatch", src: Source{URL: srv.URL + "/pkg", SHA256: sum([]byte("other"))}, is: ErrChecksum,
			want: "checksum mismatch: sha256 " + sum(body) + ", expected " + sum([]byte("other"))},
		{name: "local checksum mismatch", src: Source{Path: local, SHA256: sum(nil)}, is: ErrChecksum, want: "checksum mismatch"},
		{name: "too large, announced", f: Fetcher{MaxSize: 100}, src: Source{URL: srv.URL + "/pkg"}, is: ErrTooLarge,
			want: fmt.Sprintf("package too large: %d bytes, limit 100", len(body))},
		{name: "too large, chunked", f: Fetcher{MaxSize: 100}, src: Source{URL: srv.URL + "/chunked"}, is: ErrTooLarge,
			want: "package too large: more than 100 bytes"},
		{name: "too many redirects", f: Fetcher{MaxRedirects: 2}, src: Source{URL: srv.URL + "/r/3"}, want: "more than 2 redirects"},
		{name: "no redirects allowed", f: Fetcher{MaxRedirects: -1}, src: Source{URL: srv.URL + "/r/1"}, want: "more than 0 redirects"},
		{name: "redirect from https to http", f: Fetcher{Client: tls.Client()}, src: Source{URL: tls.URL + "/x.deb"},
			want: "redirect from https to http refused: " + srv.URL + "/pkg"},
		{name: "redirect to file scheme", src: Source{URL: srv.URL + "/file"}, want: `redirect to scheme "file" refused`},
		{name: "not found", src: Source{URL: srv.URL + "/nothing"}, want: "download: 404 Not Found"},
		{name: "stalls past the timeout", f: Fetcher{Timeout: 300 * time.Millisecond}, src: Source{URL: srv.URL + "/stall"},
			want: "context deadline exceeded"},
		{name: "local dir", src: Source{Path: t.TempDir()}, want: "not a regular file"},
		{name: "local missing", src: Source{Path: "/nonexistent/x.deb"}, want: "no such file"},
		{name: "ftp", src: Source{URL: "ftp://example.com/x.deb"}, is: ErrRequest, want: `scheme "ftp": want http or https`},
		{name: "file url", src: Source{URL: "file:///etc/passwd"}, is: ErrRequest, want: `scheme "file"`},
		{name: "no host", src: Source{URL: "http:///x.deb"}, is: ErrRequest, want: "no host"},
		{name: "bad url", src: Source{URL: "http://[::1"}, is: ErrRequest, want: "url:"},
		{name: "neither", src: Source{}, is: ErrRequest, want: "neither url nor a package file"},
		{name: "both", src: Source{URL: srv.URL, Path: local}, is: ErrRequest, want: "both url and a package file"},
		{name: "bad sha256", src: Source{URL: srv.URL + "/pkg", SHA256: "abc"}, is: ErrRequest, want: `sha256 "abc": want 64 hexadecimal digits`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var noted string
			got, err := c.f.Fetch(context.Background(), c.src, dir, ".deb", func(tmp string) error { noted = tmp; return nil })
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(got.File)
				if string(b) != string(body) || got.Size != int64(len(body)) || got.SHA256 != sum(body) {
					t.Fatalf("got %+v (%d bytes)", got, len(b))
				}
				if filepath.Dir(got.File) != dir || noted != got.File || !strings.HasSuffix(got.File, ".deb") {
					t.Fatalf("file %s, noted %s, want in %s", got.File, noted, dir)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
				t.Fatalf("err = %v, want %q (%v)", err, c.want, c.is)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("left in dir: %v", ents)
			}
		})
	}
}
