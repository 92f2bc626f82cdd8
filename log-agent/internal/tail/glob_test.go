package tail

import (
	"path/filepath"
	"runtime"
	"testing"
)

func TestGlobEscape(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/docker/containers/abc/abc-json.log": "/var/lib/docker/containers/abc/abc-json.log",
		`/pods/a*b?c[d\e`: `/pods/a\*b\?c\[d\\e`,
	} {
		if got := GlobEscape(in); got != want {
			t.Errorf("GlobEscape(%q) = %q, want %q", in, got, want)
		}
		// On Windows filepath.Match has no escape character (`\` separates
		// path elements), so the round trip holds on Unix only; the
		// collectors that escape paths (docker, k8s) read Linux hosts' paths.
		if runtime.GOOS == "windows" {
			continue
		}
		if ok, err := filepath.Match(GlobEscape(in), in); !ok || err != nil {
			t.Errorf("filepath.Match(GlobEscape(%q), itself) = %v, %v", in, ok, err)
		}
	}
}
