//go:build !windows

package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// watchResize calls resize with the terminal's size at each SIGWINCH
// until ctx ends.
func watchResize(ctx context.Context, tty *os.File, resize func(cols, rows int)) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if w, h, err := term.GetSize(int(tty.Fd())); err == nil && w > 0 && h > 0 {
				resize(w, h)
			}
		}
	}
}

// prepareOutput readies the terminal for the remote's escape sequences:
// nothing to do on Unix.
func prepareOutput(*os.File) func() { return func() {} }
