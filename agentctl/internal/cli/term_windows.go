package cli

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/term"
)

// watchResize polls the console's size (Windows has no SIGWINCH) and
// calls resize when it changes, until ctx ends.
func watchResize(ctx context.Context, tty *os.File, resize func(cols, rows int)) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	w0, h0, _ := term.GetSize(int(tty.Fd()))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w, h, err := term.GetSize(int(tty.Fd()))
			if err == nil && w > 0 && h > 0 && (w != w0 || h != h0) {
				w0, h0 = w, h
				resize(w, h)
			}
		}
	}
}

// prepareOutput turns on the console's processing of escape sequences
// (colours, cursor moves of the remote terminal) and returns the undo.
func prepareOutput(f *os.File) func() {
	h := windows.Handle(f.Fd())
	var mode uint32
	if windows.GetConsoleMode(h, &mode) != nil {
		return func() {}
	}
	if windows.SetConsoleMode(h, mode|windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING) != nil {
		return func() {}
	}
	return func() { _ = windows.SetConsoleMode(h, mode) }
}
