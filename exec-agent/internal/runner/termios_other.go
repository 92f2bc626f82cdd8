//go:build unix && !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package runner

import (
	"errors"
	"os"
)

// echoOff cannot read the terminal mode here: the password is not typed
// into a pty (use pipes).
func echoOff(*os.File) (bool, error) { return false, errors.ErrUnsupported }
