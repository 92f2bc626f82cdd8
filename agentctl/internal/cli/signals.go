package cli

import (
	"context"
	"os"
	"os/signal"
)

// notifyContext is cancelled by Ctrl-C (os.Interrupt, on every OS).
func notifyContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt)
}
