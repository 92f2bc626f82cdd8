//go:build windows

package lockfile

import (
	"os"

	"golang.org/x/sys/windows"
)

var errWouldBlock = windows.ERROR_LOCK_VIOLATION

// The locked byte range lies far beyond the pid the file holds, so that
// another process can still read the pid (Windows locks are mandatory).
const lockOffset = 1 << 30

// lock takes LockFileEx exclusively without waiting: per handle, so
// another open of the file, in this process or another, is refused.
func lock(f *os.File) error {
	ol := &windows.Overlapped{Offset: lockOffset}
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
}

func unlock(f *os.File) error {
	ol := &windows.Overlapped{Offset: lockOffset}
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, ol)
}
