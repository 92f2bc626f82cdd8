package sim

import (
	"context"
	"maps"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/server"
	"github.com/agentfleet/agent-server/internal/testserver"
	"github.com/agentfleet/agent-server/servertest"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const agentToken = servertest.AgentToken

// startServer runs the real server on a free loopback port until the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	srv := testserver.Start(t, testserver.Config("sim-test", t.TempDir()), server.Options{})
	return "ws://" + srv.Addr() + "/ws/agent"
}

// runUntilDialed runs s until every agent has dialed once, then stops it.
func runUntilDialed(t *testing.T, s *Sim) Stats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// The callers check the stats: a timeout is theirs to report.
	_ = eventually.WaitTrue(eventually.DefaultTimeout, "every agent dialed", func() bool { return s.Stats().FirstAllTook != 0 })
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

// recordingListener keeps the remote address of every accepted connection.
type recordingListener struct {
	net.Listener
	mu    sync.Mutex
	hosts map[string]int
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		l.mu.Lock()
		l.hosts[host]++
		l.mu.Unlock()
	}
	return c, err
}

func TestSourceAddrs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("source address spreading is Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: ln, hosts: map[string]int{}}
	st := hub.NewMemStore()
	h, err := hub.New(hub.Options{Secrets: st, Acks: st, AllowLegacy: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(rl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		_ = srv.Shutdown(ctx)
	})

	stats := runUntilDialed(t, New(Config{URL: "ws://" + ln.Addr().String() + "/ws/agent", N: 8, Concurrency: 2, SourceAddrs: 4}))
	if stats.Handshakes != 8 || stats.Failures != 0 {
		t.Fatalf("handshakes %d failures %d, want 8 and 0", stats.Handshakes, stats.Failures)
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	want := map[string]int{"127.0.0.1": 2, "127.0.0.2": 2, "127.0.0.3": 2, "127.0.0.4": 2}
	if !maps.Equal(rl.hosts, want) {
		t.Errorf("connections per source address %v, want %v", rl.hosts, want)
	}
}
