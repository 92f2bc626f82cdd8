package sim

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const agentToken = "agent-token-0123456789abc"

// startServer runs the real server on a free loopback port until the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.ID = "sim-test"
	cfg.Listen = 0
	cfg.DataDir, cfg.CacheDir, cfg.LogDir = dir, filepath.Join(dir, "cache"), filepath.Join(dir, "logs")
	cfg.API.Tokens = []string{"ops:operator-token-0123456789"}
	cfg.Agent.Tokens = []string{"fleet:" + agentToken}
	cfg.ConnectLimit = 0
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, server.Options{Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: 5 * time.Second})
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Run: %v", err)
		}
	})
	return "ws://" + srv.Addr() + "/ws/agent"
}

// runUntilDialed runs s until every agent has dialed once, then stops it.
func runUntilDialed(t *testing.T, s *Sim) Stats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().FirstAllTook == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st
}

func TestStartAtAndWindow(t *testing.T) {
	url := startServer(t)
	startAt := time.Now().Add(300 * time.Millisecond)
	st := runUntilDialed(t, New(Config{URL: url, N: 8, Concurrency: 4, Token: agentToken, StartAt: startAt}))
	if st.Handshakes != 8 || st.Failures != 0 {
		t.Fatalf("handshakes %d failures %d, want 8 and 0", st.Handshakes, st.Failures)
	}
	if st.FirstOK.Before(startAt) {
		t.Errorf("first handshake at %v, before StartAt %v", st.FirstOK, startAt)
	}
	if st.LastOK.Before(st.FirstOK) {
		t.Errorf("last handshake %v before the first %v", st.LastOK, st.FirstOK)
	}
}

func TestWindowEmptyWhenAllFail(t *testing.T) {
	url := startServer(t)
	st := runUntilDialed(t, New(Config{URL: url, N: 3, Token: "wrong-token-0123456789abc"}))
	if st.Handshakes != 0 || st.Failures != 3 {
		t.Fatalf("handshakes %d failures %d, want 0 and 3", st.Handshakes, st.Failures)
	}
	if !st.FirstOK.IsZero() || !st.LastOK.IsZero() {
		t.Errorf("window %v … %v, want zero times", st.FirstOK, st.LastOK)
	}
}
