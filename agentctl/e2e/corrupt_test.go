//go:build linux

package e2e

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/filetest"
)

// corruptProxy is a reverse proxy in front of the server that damages
// request bodies: every occurrence of from becomes to (as long), like a
// bad NIC or middlebox whose damage TCP's checksum let through. It stops
// with the test.
func corruptProxy(t *testing.T, target string, from, to []byte) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = struct {
				io.Reader
				io.Closer
			}{&replaceReader{r: r.Body, from: from, to: to}, r.Body}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// replaceReader reads r with from replaced by to, also across reads: it
// holds back the last len(from)-1 bytes until more come or r ends.
type replaceReader struct {
	r        io.Reader
	from, to []byte
	buf      []byte // replaced, not yet returned
	eof      bool
}

func (x *replaceReader) Read(p []byte) (int, error) {
	hold := len(x.from) - 1
	for !x.eof && len(x.buf) <= hold {
		chunk := make([]byte, 64<<10)
		n, err := x.r.Read(chunk)
		x.buf = bytes.ReplaceAll(append(x.buf, chunk[:n]...), x.from, x.to)
		if err == io.EOF {
			x.eof = true
		} else if err != nil {
			return 0, err
		}
	}
	avail := len(x.buf)
	if !x.eof {
		avail -= hold
	}
	if avail == 0 {
		return 0, io.EOF
	}
	n := copy(p, x.buf[:avail])
	x.buf = x.buf[n:]
	return n, nil
}

// TestCpUploadCorrupted sends files through a proxy that changes bytes of
// the upload in flight: agentctl must report the damage (the server
// refuses the CRC-32C agentctl sent after the file) and exit non-zero,
// and the agent must not end up with the file, for a small file (sent to
// the agent when whole) as for one large enough that the agent reads it
// while it arrives. The same files without the marker pass through the
// same proxy unharmed.
func TestCpUploadCorrupted(t *testing.T) {
	marker := []byte("--agentctl-e2e-corrupt-me--")
	damage := []byte("--agentctl-e2e-CORRUPTED!--")
	proxy := corruptProxy(t, fleet.url, marker, damage)
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote")
	if err := os.Mkdir(remote, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		size int64
		at   int64 // where the marker goes
	}{
		{"small", 10 << 10, 5 << 10},
		{"followed", 12 << 20, 9 << 20}, // beyond the 4 MiB after which the agent follows the spool
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(dir, tc.name+".bin")
			filetest.Make(t, src, tc.size, filetest.Noise)
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, marker) {
				t.Fatal("the marker is in the file already")
			}
			// Unharmed first: proves the proxy passes clean uploads on.
			r := fleet.ctl(t, ctlOpts{env: []string{"AGENTCTL_SERVER=" + proxy}}, "cp", "-q", src, "e2e-a1:"+remote+"/clean-"+tc.name)
			if r.code != 0 {
				t.Fatalf("clean upload through the proxy: exit %d\n%s", r.code, r.err)
			}
			want, _ := filetest.MD5(t, src)
			if got, _ := filetest.MD5(t, filepath.Join(remote, "clean-"+tc.name)); got != want {
				t.Fatalf("clean upload: md5 %s differs", got)
			}

			copy(data[tc.at:], marker)
			if err := os.WriteFile(src, data, 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(remote, "damaged-"+tc.name)
			r = fleet.ctl(t, ctlOpts{env: []string{"AGENTCTL_SERVER=" + proxy}}, "cp", "-q", src, "e2e-a1:"+dst)
			if r.code == 0 || !strings.Contains(r.err, "crc32c mismatch") {
				t.Errorf("damaged upload: exit %d, stderr %q; want a failure naming the crc32c mismatch", r.code, r.err)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("the agent wrote the damaged file (stat: %v)", err)
			}
			// The same file sent directly arrives whole.
			fleet.ok(t, "cp", "-q", src, "e2e-a1:"+dst)
			want, _ = filetest.MD5(t, src)
			if got, _ := filetest.MD5(t, dst); got != want {
				t.Errorf("direct upload: md5 %s, want %s", got, want)
			}
		})
	}
	left, _ := os.ReadDir(remote)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if want := "clean-followed clean-small damaged-followed damaged-small"; strings.Join(names, " ") != want {
		t.Errorf("files on the agent: %v, want %s (no temporary files left)", names, want)
	}
}
