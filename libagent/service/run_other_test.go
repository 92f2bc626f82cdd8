//go:build !windows

package service

import (
	"context"
	"errors"
	"syscall"
	"testing"
)

func TestRunForegroundSignal(t *testing.T) {
	err := Run(Config{Name: "a"}, func(ctx context.Context) error {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			return err
		}
		<-ctx.Done()
		return errors.New("stopped by " + context.Cause(ctx).Error())
	})
	if err == nil || err.Error() != "stopped by terminated signal received" {
		t.Fatalf("got %v", err)
	}
}
