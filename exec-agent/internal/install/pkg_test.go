package install

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agentfleet/exec-agent/internal/pkgtest"
)

// pkgSpec is a package built in the test with nfpm (pkgtest).
type pkgSpec struct {
	name, version string
	dst, body     string // one file
	postinst      string // a postinstall script, "" for none
}

// buildPkg makes a .deb or .rpm (format "deb" / "rpm") and returns its bytes.
func buildPkg(t testing.TB, format string, p pkgSpec) []byte {
	t.Helper()
	b, err := pkgtest.Build(format, pkgtest.Spec{Name: p.name, Version: p.version, Dst: p.dst, Body: p.body, PostInst: p.postinst})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dpkgRoot makes an empty dpkg root and returns it with the dpkg
// arguments that install into it (scripts run without chroot).
func dpkgRoot(t testing.TB) (string, []string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, root, "var/lib/dpkg/status", nil)
	return root, []string{"--root=" + root, "--force-script-chrootless", "--force-not-root", "--log=/dev/null"}
}
