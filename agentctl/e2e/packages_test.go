//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/filetest"
)

// makePackage writes an n-byte "tar.gz" (gzip magic, then noise) and
// returns its sha256.
func makePackage(t *testing.T, path string, n int64) string {
	t.Helper()
	filetest.Make(t, path, n, filetest.Noise)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0x1f, 0x8b}, 0); err != nil {
		t.Fatal(err)
	}
	return fileSHA256(t, path)
}

func fileSHA256(t *testing.T, path string) string {
	sum, _ := filetest.Digest(t, path, sha256.New())
	return sum
}

// TestPackages: push (checksum sent and matched), ls, get (checked), rm,
// with the read-only token refused writes.
func TestPackages(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "site_1.0.tar.gz")
	sum := makePackage(t, src, 20<<20)

	r := fleet.ok(t, "packages", "push", "-o", "json", src)
	var pushed struct {
		Name, Kind, SHA256 string
		Size               int64
	}
	if err := json.Unmarshal([]byte(r.out), &pushed); err != nil {
		t.Fatalf("push -o json: %v\n%s", err, r.out)
	}
	if pushed.Name != "site_1.0.tar.gz" || pushed.Kind != "tar.gz" || pushed.SHA256 != sum || pushed.Size != 20<<20 {
		t.Fatalf("push: %+v, want sha256 %s", pushed, sum)
	}
	// The same file again is not an error; other content under the name is
	// refused unless --replace.
	fleet.ok(t, "packages", "push", "-q", src)
	other := filepath.Join(dir, "other.tar.gz")
	otherSum := makePackage(t, other, 1<<20+7)
	r = fleet.ctl(t, ctlOpts{}, "packages", "push", other, "--name", "site_1.0.tar.gz")
	if r.code != 1 || !strings.Contains(r.err, `package "site_1.0.tar.gz" exists`) {
		t.Errorf("push over another: exit %d %q", r.code, r.err)
	}
	fleet.ok(t, "packages", "push", other, "--name", "site_1.1.tar.gz")

	r = fleet.ok(t, "packages", "ls", "-o", "json")
	checkShape(t, "packages_ls", r.out)
	var list []struct{ Name, SHA256 string }
	if err := json.Unmarshal([]byte(r.out), &list); err != nil || len(list) < 2 {
		t.Fatalf("ls: %v %s", err, r.out)
	}
	r = fleet.ok(t, "packages", "ls")
	if !strings.Contains(r.out, "site_1.0.tar.gz  tar.gz  20.0MiB  "+sum[:12]) {
		t.Errorf("ls table:\n%s", r.out)
	}

	got := filepath.Join(dir, "got.tgz")
	fleet.ok(t, "packages", "get", "site_1.0.tar.gz", "-o", got)
	if s := fileSHA256(t, got); s != sum {
		t.Errorf("get: sha256 %s, want %s", s, sum)
	}
	r = fleet.ok(t, "packages", "get", "site_1.1.tar.gz", "-o", "-")
	if h := sha256.Sum256([]byte(r.out)); hex.EncodeToString(h[:]) != otherSum {
		t.Errorf("get to stdout: %d bytes, sha256 differs", len(r.out))
	}
	// Into a directory, under the package's name.
	fleet.ok(t, "packages", "get", "site_1.1.tar.gz", "-o", dir)
	if s := fileSHA256(t, filepath.Join(dir, "site_1.1.tar.gz")); s != otherSum {
		t.Error("get into a directory: content differs")
	}
	r = fleet.ctl(t, ctlOpts{}, "packages", "get", "nope.deb", "-o", filepath.Join(dir, "nope"))
	if r.code != 1 || !strings.Contains(r.err, `not found: package "nope.deb"`) {
		t.Errorf("get missing: exit %d %q", r.code, r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Error("a failed get left a file")
	}

	ro := ctlOpts{env: []string{"AGENTCTL_TOKEN=" + roToken}}
	if r := fleet.ctl(t, ro, "packages", "ls"); r.code != 0 {
		t.Errorf("ls as read-only: exit %d %s", r.code, r.err)
	}
	for _, args := range [][]string{{"packages", "push", src, "--name", "ro.tar.gz"}, {"packages", "rm", "site_1.0.tar.gz"}} {
		if r := fleet.ctl(t, ro, args...); r.code != 3 || !strings.Contains(r.err, "packages:write") {
			t.Errorf("%s as read-only: exit %d %q", strings.Join(args, " "), r.code, r.err)
		}
	}

	r = fleet.ok(t, "packages", "rm", "site_1.0.tar.gz", "site_1.1.tar.gz")
	if r.out != "removed site_1.0.tar.gz\nremoved site_1.1.tar.gz\n" {
		t.Errorf("rm: %q", r.out)
	}
	if r := fleet.ok(t, "packages", "ls"); strings.Contains(r.out, "site_1.") {
		t.Errorf("ls after rm:\n%s", r.out)
	}
	if r := fleet.ctl(t, ctlOpts{}, "packages", "push", filepath.Join(dir, "missing.deb")); r.code != 2 {
		t.Errorf("push of a missing file: exit %d %q", r.code, r.err)
	}
}

// TestPackagesPushProgress: push shows cp's progress bar on a terminal.
func TestPackagesPushProgress(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bar_1.0.tar.gz")
	makePackage(t, src, 32<<20)
	x, status := inTmux(t, "packages", "push", src)
	if code := exitStatus(t, x, status); code != "0" {
		t.Fatalf("push exit %s:\n%s", code, x.screen())
	}
	if s := x.screen(); !strings.Contains(s, "100%") || !rateShown.MatchString(s) || !strings.Contains(s, "bar_1.0.tar.gz: tar.gz, 32.0MiB, sha256 ") {
		t.Errorf("push on a terminal:\n%s", s)
	}
	fleet.ok(t, "packages", "rm", "bar_1.0.tar.gz")
}
