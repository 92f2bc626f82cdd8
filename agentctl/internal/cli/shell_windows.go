package cli

import (
	"context"
	"os"
	"time"

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
