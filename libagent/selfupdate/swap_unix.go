//go:build !windows

package selfupdate

import (
	"os"
)

// StagedPath is where a new binary is written before the swap.
func StagedPath(exe string) string { return exe + ".new" }

// PrevPath is where the previous binary is kept.
func PrevPath(exe string) string { return exe + ".prev" }

// keepPrevious makes prev a copy of exe (a hard link when it can) while exe
// stays in place: there is never a moment without exe.
func keepPrevious(exe, prev string) error {
	tmp := prev + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Link(exe, tmp); err != nil {
		return copyFile(exe, prev)
	}
	return os.Rename(tmp, prev)
}

// replace renames staged over exe: atomic; the running process keeps its
// inode.
func replace(staged, exe string) error { return os.Rename(staged, exe) }

// restore renames prev over exe (atomic).
func restore(prev, exe string) error { return os.Rename(prev, exe) }
