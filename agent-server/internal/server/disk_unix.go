//go:build linux || darwin || freebsd || netbsd || openbsd

package server

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskUsedPercent returns the used share of the file system holding dir, as
// df shows it (blocks reserved for root count as unavailable).
func diskUsedPercent(dir string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	used := float64(st.Blocks - st.Bfree)
	total := used + float64(st.Bavail)
	if total == 0 {
		return 0, nil
	}
	return used / total * 100, nil
}
