//go:build !linux

package collect

import (
	"fmt"

	"github.com/shirou/gopsutil/v4/disk"
)

func statfs(path string) (FSStat, error) {
	u, err := disk.Usage(path)
	if err != nil {
		return FSStat{}, fmt.Errorf("usage of %s: %w", path, err)
	}
	return FSStat{Total: u.Total, Free: u.Total - u.Used, Avail: u.Free, Files: u.InodesTotal, FilesFree: u.InodesFree}, nil
}
