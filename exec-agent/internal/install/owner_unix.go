//go:build unix

package install

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// giveTo makes file the user's, so that an installer run as that user (su,
// sudo) can read it. Only root can, and only root needs to.
func giveTo(file, name string) error {
	if os.Geteuid() != 0 || name == "" || name == "root" {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("user %q: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return os.Chown(file, uid, gid)
}
