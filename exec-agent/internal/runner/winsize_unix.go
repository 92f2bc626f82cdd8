//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package runner

import "golang.org/x/sys/unix"

// resize sets the pty's window size (TIOCSWINSZ); the kernel sends
// SIGWINCH to the terminal's foreground process group.
func (pr *proc) resize(cols, rows uint16) error {
	rc, err := pr.out.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	// Control, not Fd: Fd would switch the master back to blocking mode.
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
	if err != nil {
		return err
	}
	return ierr
}
