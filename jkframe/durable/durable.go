// Package durable makes file-system changes survive a crash: after a file
// is created, renamed into place or removed, the directory that holds the
// entry is synced too, or a power loss can forget the entry even though the
// file's own data was synced.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// SyncDir makes the entries created, renamed or removed in dir durable. On
// Windows it does nothing: a directory cannot be opened for fsync there, and
// NTFS journals its metadata (a rename is durable once MoveFileEx returns
// with the flags Go uses).
func SyncDir(dir string) error { return syncDir(dir) }

// CreateAppend creates path (truncating a file there) for appending, mode
// 0600, and syncs its directory so that the new entry survives a crash: a
// new segment of a journal or spool. An error syncing the directory closes
// the file and says "sync dir".
func CreateAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync dir: %w", err)
	}
	return f, nil
}
