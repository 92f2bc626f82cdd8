package server

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/windows"
)

// GetDiskFreeSpaceEx on the volume holding a directory; a missing
// directory is an error (the watch then logs and does not block).
func TestDiskUsedPercentWindows(t *testing.T) {
	used, err := diskUsedPercent(t.TempDir())
	if err != nil || used <= 0 || used > 100 {
		t.Fatalf("used %v%%, %v; want a share in (0, 100]", used, err)
	}
	_, err = diskUsedPercent(filepath.Join(t.TempDir(), "nope", "deeper"))
	if !errors.Is(err, windows.ERROR_PATH_NOT_FOUND) && !errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
		t.Fatalf("missing dir: %v, want a not-found error", err)
	}
}
