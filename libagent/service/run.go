package service

import (
	"context"
	"fmt"
	"time"
)

// Run runs start until it returns or the service is asked to stop. Under the
// Windows service manager it speaks to the SCM; everywhere else (systemd,
// launchd, SysV, a terminal) a stop request is SIGTERM or SIGINT. A stop
// cancels start's context; Run then waits up to StopTimeout for start to
// return and fails with ErrStopTimeout otherwise. Run returns start's error.
func Run(c Config, start func(ctx context.Context) error) error {
	if c.StopTimeout <= 0 {
		c.StopTimeout = defaultStopTimeout
	}
	return run(c, start)
}

// supervise runs start in a goroutine, cancels it when stop is closed, and
// waits for it at most timeout after that.
func supervise(parent context.Context, stop <-chan struct{}, timeout time.Duration, start func(context.Context) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- safeStart(ctx, start) }()
	select {
	case err := <-done:
		return err
	case <-stop:
	case <-parent.Done():
	}
	cancel()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("service: start did not return %v after the stop request: %w", timeout, ErrStopTimeout)
	}
}

// safeStart turns a panic of start into an error, so a crash is reported
// through Run (and the manager restarts the service) instead of lost.
func safeStart(ctx context.Context, start func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("service: start panicked: %v", r)
		}
	}()
	return start(ctx)
}
