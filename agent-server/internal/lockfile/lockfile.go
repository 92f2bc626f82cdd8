// Package lockfile keeps a directory to one process: an exclusive lock on
// a file in it (flock on Unix, LockFileEx on Windows), held while the
// process runs and released by the kernel when it ends, however it ends.
// The file holds the holder's pid, so that the refusal can name it.
//
// agent-server takes it on its data dir before it opens anything there:
// two servers writing one SQLite database, package repository or log
// segment store would corrupt them.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrLocked is wrapped by the error of Acquire when another holder has the
// lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held lock; Release gives it up.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock on path (created when missing, mode 0600) without
// waiting. When another holder has it, the error wraps ErrLocked and names
// the holder's pid as the file records it. The lock belongs to the open
// file, so a second Acquire in the same process fails too.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := lock(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%s is held by %s: %w", path, holder(path), ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Ours now: record who holds it, for the next one's error.
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		_ = unlock(f)
		f.Close()
		return nil, fmt.Errorf("lock %s: write pid: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// holder describes the process named in the lock file.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another process"
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process (pid not recorded yet)"
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Release gives the lock up. The file stays (removing it would race with
// the next holder's open); a stale pid in it means nothing without the
// lock. Calling Release again does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := errors.Join(unlock(l.f), l.f.Close())
	l.f = nil
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}
