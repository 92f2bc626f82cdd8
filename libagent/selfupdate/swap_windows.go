package selfupdate

import (
	"os"
	"strings"
)

// StagedPath is where a new binary is written before the swap
// (exec-agent.new.exe).
func StagedPath(exe string) string { return strings.TrimSuffix(exe, ".exe") + ".new.exe" }

// PrevPath is where the previous binary is kept (exec-agent.prev.exe).
func PrevPath(exe string) string { return strings.TrimSuffix(exe, ".exe") + ".prev.exe" }

// keepPrevious: Windows does not let a running executable be replaced or
// deleted, but it may be renamed; so the running exe moves to prev and the
// staged one takes its name in replace. Between the two renames exe does
// not exist (a restart in that window finds no binary; the watchdog, run
// from prev, puts it back).
func keepPrevious(exe, prev string) error {
	_ = os.Remove(prev)
	return os.Rename(exe, prev)
}

func replace(staged, exe string) error { return os.Rename(staged, exe) }

// restore: the failed binary may still run, so it is renamed aside
// (.failed.exe) before prev takes its name.
func restore(prev, exe string) error {
	failed := strings.TrimSuffix(exe, ".exe") + ".failed.exe"
	_ = os.Remove(failed)
	if err := os.Rename(exe, failed); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.Rename(prev, exe)
}
