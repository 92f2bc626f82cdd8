// Package testuser is for tests that run commands as another user (su,
// sudo): it creates a throwaway system user with a password, removed at
// the test's end, and the directories such a user can reach. Unix only at
// run time (useradd, chpasswd, userdel); it needs root, and skips the test
// otherwise.
package testuser

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// User is a user made for a test.
type User struct {
	Name string
	Pass string // random, for chpasswd; never log it
	UID  int
	GID  int
}

// Create adds a user named prefix and a number (no home directory, shell
// /bin/sh) with a random password, removed when the test ends. It skips
// the test when not run as root (see Need for missing tools).
func Create(t testing.TB, prefix string) User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create the test user")
	}
	Need(t, "useradd")
	Need(t, "chpasswd")
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	u := User{Name: fmt.Sprintf("%s%d", prefix, os.Getpid()%1000000), Pass: "pw-" + hex.EncodeToString(rnd[:])}
	if out, err := exec.Command("useradd", "-M", "-s", "/bin/sh", u.Name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v %s", u.Name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("userdel", u.Name).Run() })
	chpw := exec.Command("chpasswd")
	chpw.Stdin = strings.NewReader(u.Name + ":" + u.Pass + "\n")
	if out, err := chpw.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v %s", err, out)
	}
	pw, err := user.Lookup(u.Name)
	if err != nil {
		t.Fatal(err)
	}
	u.UID, _ = strconv.Atoi(pw.Uid)
	u.GID, _ = strconv.Atoi(pw.Gid)
	return u
}

// Need skips the test when prog is not installed; in CI (the environment
// variable CI set) it fails it instead, since CI installs what the tests
// drive (.ci/host-tools).
func Need(t testing.TB, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (CI: .ci/host-tools installs it): %v", prog, err)
		}
		t.Skipf("%s not installed: %v", prog, err)
	}
}

// ReachableDir returns a new temporary directory (mode 0755) that every
// user can traverse, unlike the test's own (0700), removed when the test
// ends: what another user must reach goes there.
func ReachableDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
