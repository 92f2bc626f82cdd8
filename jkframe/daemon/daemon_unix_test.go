//go:build unix

package daemon

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var helperSignals = []os.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT}

func TestSignalForwarding(t *testing.T) {
	s, out := helperSupervisor(t, "serve")
	sigs := make(chan os.Signal)
	s.Signals = sigs
	wait := runAsync(context.Background(), s)
	pid := waitLines(t, out, "ready", 1)[0]
	sigs <- syscall.SIGHUP
	waitLines(t, out, "got-hangup", 1)
	sigs <- syscall.SIGTERM
	if err := wait(t); err != nil {
		t.Fatalf("Run = %v, want nil after SIGTERM", err)
	}
	if got := waitLines(t, out, "got-terminated", 1); got[0] != pid {
		t.Fatalf("SIGTERM reached pid %d, want %d", got[0], pid)
	}
	if n := len(waitLines(t, out, "ready", 1)); n != 1 {
		t.Fatalf("worker started %d times, want once (SIGHUP must not restart it)", n)
	}
	if alive(pid) {
		t.Fatalf("worker %d still alive", pid)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	s, out := helperSupervisor(t, "stubborn")
	s.Signals, s.Grace = make(chan os.Signal), 300*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	wait := runAsync(ctx, s)
	pid := waitLines(t, out, "ready", 1)[0]
	cancel()
	if err := wait(t); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "got-terminated") {
		t.Errorf("worker never saw SIGTERM before the kill:\n%s", b)
	}
	if alive(pid) {
		t.Fatalf("worker %d survived the kill", pid)
	}
}
