//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package runner

import (
	"os"

	"golang.org/x/sys/unix"
)

// echoOff reports whether the terminal behind the pty master f has ECHO off.
func echoOff(f *os.File) (bool, error) {
	return echoOffReq(f, unix.TIOCGETA)
}
