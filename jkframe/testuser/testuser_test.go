package testuser

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A user made for the test exists with its password (su to it as root
// works) and is gone after the test; its reachable directory is 0755.
func TestCreate(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		u := Create(t, "aftu")
		name = u.Name
		if u.UID <= 0 || u.Pass == "" || !strings.HasPrefix(u.Name, "aftu") {
			t.Fatalf("user %+v", u)
		}
		Need(t, "su")
		out, err := exec.Command("su", "-s", "/bin/sh", "-c", "id -u", u.Name).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) == "0" {
			t.Fatalf("su to %s: %v %s", u.Name, err, out)
		}
		fi, err := os.Stat(ReachableDir(t, "testuser-"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("reachable dir: %v %v", fi, err)
		}
	})
	if name == "" {
		return // skipped
	}
	if err := exec.Command("id", name).Run(); err == nil {
		t.Errorf("user %s still exists after its test", name)
	}
}
