//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package runner

import (
	"os"

	"golang.org/x/sys/unix"
)

func echoOffReq(f *os.File, req uint) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var tio *unix.Termios
	var ierr error
	// Control, not Fd: Fd would switch f back to blocking mode.
	if err := rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), req) }); err != nil {
		return false, err
	}
	if ierr != nil {
		return false, ierr
	}
	return tio.Lflag&unix.ECHO == 0, nil
}
