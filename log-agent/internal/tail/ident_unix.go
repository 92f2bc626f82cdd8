//go:build !windows

package tail

import (
	"os"
	"syscall"
)

// fileKey returns the device and inode of fi.
func fileKey(_ string, fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // int32 on darwin
	}
	return 0, 0
}
