//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRateLimitRetry copies several files to an agent through a server
// that lets one agent call through every 2 s (api.rate_limit 0.5, burst
// 1): the calls refused with 429 are retried after the server's
// Retry-After, and the copy succeeds.
func TestRateLimitRetry(t *testing.T) {
	e, err := startEnv(filepath.Join(t.TempDir(), "limited"), envOptions{agents: 1, rateLimit: 0.5})
	t.Cleanup(func() {
		if e != nil {
			if t.Failed() {
				e.dumpLogs(os.Stderr)
			}
			e.stop()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "four")
	os.Mkdir(src, 0o755)
	for _, n := range []string{"a", "b", "c", "d"} {
		os.WriteFile(filepath.Join(src, n), []byte(n), 0o644)
	}
	dst := t.TempDir()
	r := e.ctl(t, ctlOpts{}, "--debug", "cp", "-r", src, "e2e-a1:"+dst)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	if !strings.Contains(r.err, ": 429 (") || !strings.Contains(r.err, "debug: retry in 1s") {
		t.Errorf("no 429 retried:\n%s", r.err)
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if b, err := os.ReadFile(filepath.Join(dst, "four", n)); err != nil || string(b) != n {
			t.Errorf("%s: %q %v", n, b, err)
		}
	}
	if strings.Contains(r.err, opToken) {
		t.Error("--debug printed the token")
	}
}
