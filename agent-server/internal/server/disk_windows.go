//go:build windows

package server

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// diskUsedPercent returns the used share of the volume holding dir.
func diskUsedPercent(dir string) (float64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var free, total, totalFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &free, &total, &totalFree); err != nil {
		return 0, fmt.Errorf("disk space of %s: %w", dir, err)
	}
	if total == 0 {
		return 0, nil
	}
	return float64(total-free) / float64(total) * 100, nil
}
