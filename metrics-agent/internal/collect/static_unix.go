//go:build !linux && !windows

package collect

import (
	"os"
	"path/filepath"
	"time"
)

// installPaths are files made when the system was installed.
func installPaths(r Roots) []string {
	root := filepath.Dir(r.Etc)
	return []string{filepath.Join(root, "var", "db", ".AppleSetupDone"), filepath.Join(r.Etc, "hostid")}
}

func fileTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime().UTC(), nil
}

// staticNet reads resolv.conf and passwd; the default route is not
// available without a routing socket.
func (c *Collector) staticNet(s *Static, w *warns) {
	if b, err := os.ReadFile(c.etc("resolv.conf")); err != nil {
		w.add("static.nameservers", err)
	} else {
		s.Nameservers = parseResolvConf(b)
	}
	w.addf("static.gateway", "default route: %w", ErrUnsupported)
	if b, err := os.ReadFile(c.etc("passwd")); err != nil {
		w.add("static.user", err)
	} else {
		s.User, _ = parsePasswd(b)
	}
}
