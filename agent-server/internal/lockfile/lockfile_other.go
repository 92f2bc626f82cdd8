//go:build !unix && !windows

package lockfile

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("lock held")

// lock is a no-op where the OS offers no file locks we use (plan9, wasm):
// agent-server is not supported there.
func lock(*os.File) error   { return nil }
func unlock(*os.File) error { return nil }
