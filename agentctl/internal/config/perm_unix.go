//go:build !windows

package config

import (
	"fmt"
	"io/fs"
)

// permWarning reports a config file that others than its owner may read.
func permWarning(path string, m fs.FileMode) string {
	if m.Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("config %s has mode %04o and holds tokens: run chmod 600 %s", path, m.Perm(), path)
}
