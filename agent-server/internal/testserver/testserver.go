// Package testserver runs the real agent-server in-process for the tests
// and benchmarks that reach into it (its hub, its store) or simulate many
// agents: the default config on a free 127.0.0.1 port with a temporary
// data folder and servertest's tokens, started with server.New and Run,
// and stopped (and its Run error reported) when the test ends. Tests of
// the binary use servertest instead.
//
// Only tests import it.
package testserver

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/servertest"
)

// Config is config.Default() for a test server named id: a free port,
// data in dir (cache and logs below it), servertest's operator, read-only
// and agent tokens, and no connect limit (tests connect many agents at
// once).
func Config(id, dir string) config.Config {
	cfg := config.Default()
	cfg.ID, cfg.Listen = id, 0
	cfg.DataDir, cfg.CacheDir, cfg.LogDir = dir, filepath.Join(dir, "cache"), filepath.Join(dir, "logs")
	cfg.API.Tokens = []string{servertest.OperatorName + ":" + servertest.OperatorToken}
	cfg.API.ReadOnlyTokens = []string{servertest.ReadOnlyName + ":" + servertest.ReadOnlyToken}
	cfg.Agent.Tokens = []string{servertest.AgentTokenName + ":" + servertest.AgentToken}
	cfg.ConnectLimit = 0
	return cfg
}

// Server is a server running in this process.
type Server struct {
	*server.Server
	URL    string // http://Addr()
	cancel context.CancelFunc
	done   chan error
}

// StopWait is how long Stop waits for Run to return.
const StopWait = 15 * time.Second

// Start creates the server (o.Logger nil: discarded; o.ShutdownTimeout 0:
// 5 s) and runs it until Stop or the end of tb, where Stop's error fails
// the test. An error of server.New fails the test at once.
func Start(tb testing.TB, cfg config.Config, o server.Options) *Server {
	tb.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, o)
	if err != nil {
		cancel()
		tb.Fatalf("server.New: %v", err)
	}
	s := &Server{Server: srv, URL: "http://" + srv.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// Stop shuts the server down and waits up to StopWait for Run: its error,
// or one saying it did not stop. Calling it again does nothing.
func (s *Server) Stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("server Run: %w", err)
		}
		return nil
	case <-time.After(StopWait):
		return fmt.Errorf("server did not stop within %v", StopWait)
	}
}
