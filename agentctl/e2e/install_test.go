//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestInstall installs a tar.gz the agents download: the live action log
// per agent, exit 0; a wrong sha256 refused before anything is unpacked,
// exit 1; a fleet install on a selector.
func TestInstall(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "installed by agentctl\n"
	if err := tw.WriteHeader(&tar.Header{Name: "app/hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(body))
	_ = tw.Close()
	_ = zw.Close()
	pkg := buf.Bytes()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pkg) }))
	defer web.Close()
	url := web.URL + "/app-1.0.tar.gz"

	dir := filepath.Join(t.TempDir(), "one")
	r := fleet.ok(t, "install", "e2e-a1", "--url", url, "--dir", dir)
	for _, want := range []string{"e2e-a1 | download " + url, "e2e-a1 | install  " + url, "e2e-a1 | file     " + filepath.Join(dir, "app/hello.txt"), "e2e-a1 | done"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "app/hello.txt")); err != nil || string(b) != body {
		t.Errorf("unpacked: %q %v", b, err)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	r = fleet.ctl(t, ctlOpts{}, "install", "e2e-a2", "--url", url, "--dir", bad, "--sha256", strings.Repeat("0", 64))
	if r.code != 1 || !strings.Contains(r.out, "FAILED: checksum mismatch") {
		t.Errorf("wrong sha256: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Errorf("%s created: something was unpacked", bad)
	}

	many := filepath.Join(t.TempDir(), "many")
	r = fleet.ok(t, "install", "-l", "e2e=yes", "--concurrency", "1", "--url", url, "--dir", many)
	if n := strings.Count(r.out, "| done "); n != 3 {
		t.Errorf("%d done actions, want 3:\n%s", n, r.out)
	}
	if !regexp.MustCompile(`task \w+ done: 3 agent\(s\): 3 ok`).MatchString(r.err) {
		t.Errorf("stderr:\n%s", r.err)
	}
}
