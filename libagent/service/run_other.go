//go:build !windows

package service

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// run: on Unix every service manager stops a service with SIGTERM, so the
// service and foreground paths are the same.
func run(c Config, start func(context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return supervise(ctx, nil, c.StopTimeout, start)
}
