package agent

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/metrics-agent/internal/collect"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// fakeClock is a Clock whose time moves only when the test fires a timer.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &waiter{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- c.now
		return w.ch, func() {}
	}
	c.waiters = append(c.waiters, w)
	return w.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.waiters {
			if x == w {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				return
			}
		}
	}
}

// next waits (polling, with a deadline) until the scheduler waits on a
// timer and returns its deadline.
func (c *fakeClock) next(t *testing.T) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.waiters)
		var at time.Time
		if n > 0 {
			at = c.waiters[0].at
		}
		c.mu.Unlock()
		if n > 1 {
			t.Fatalf("%d timers pending; the scheduler waits on one", n)
		}
		if n == 1 {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduler did not wait on the clock within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// fire moves the time to the scheduler's next deadline and fires it.
func (c *fakeClock) fire(t *testing.T) time.Time {
	t.Helper()
	at := c.next(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	w := c.waiters[0]
	c.waiters = c.waiters[1:]
	w.ch <- at
	return at
}

// fixtureRoots builds a host tree from the collector's fixtures: the debian
// tree (4 processes, 13 sockets) with the arm tree's sensors.
func fixtureRoots(t *testing.T) collect.Roots {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join("..", "collect", "testdata")
	if err := os.CopyFS(root, os.DirFS(filepath.Join(src, "debian"))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(root, "sys", "class"), os.DirFS(filepath.Join(src, "arm", "sys", "class"))); err != nil {
		t.Fatal(err)
	}
	return collect.Roots{Proc: root + "/proc", Sys: root + "/sys", Etc: root + "/etc", Dev: root + "/dev"}
}

func fixtureStatfs(path string) (collect.FSStat, error) {
	if path == "/" {
		return collect.FSStat{Total: 100 << 30, Free: 60 << 30, Avail: 55 << 30, Files: 6553600, FilesFree: 6453600}, nil
	}
	return collect.FSStat{}, &fs.PathError{Op: "statfs", Path: path, Err: errors.New("no such file or directory")}
}

func fixtureInterfaces() ([]protocol.HMInterface, error) {
	return []protocol.HMInterface{{Index: 1, Name: "lo", MTU: 65536, Flags: []string{"up", "loopback"}, Addrs: []string{"127.0.0.1/8"}}}, nil
}

// runner is one run of the agent against a test server.
type runner struct {
	a      *Agent
	cfg    *Config
	clock  *fakeClock
	cancel context.CancelFunc
	done   chan error
}

type spec struct {
	srv        *agenttest.Server
	clock      *fakeClock // nil: a new one
	mod        func(*Config)
	configPath string // "" = cfg as built
	statePath  string
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs the agent until stop or the end of the test.
func start(t *testing.T, s spec) *runner {
	t.Helper()
	if s.clock == nil {
		s.clock = newFakeClock()
	}
	cfg := DefaultConfig()
	cfg.Basic.Server = s.srv.Addr()
	cfg.Basic.Monitor.Enabled = false
	cfg.Task.Process.QPSLimit, cfg.Task.Conns.QPSLimit = 0, 0
	if s.mod != nil {
		s.mod(cfg)
	}
	a := New(cfg, Options{
		Clock:          s.clock,
		Retry:          10 * time.Millisecond,
		StatusInterval: 30 * time.Second,
		Collect: collect.Options{Roots: fixtureRoots(t), Now: s.clock.Now, Statfs: fixtureStatfs,
			Interfaces: fixtureInterfaces},
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{a: a, cfg: cfg, clock: s.clock, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- libagent.Run(ctx, &libagent.Agent{Name: "metrics-agent", Version: "0.0.0-test", Config: cfg, Setup: a.Setup, Report: a.Report},
			libagent.Options{ConfigPath: s.configPath, StatePath: s.statePath, Logger: logger(t), SkipLimits: true,
				Backoff: &backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}})
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *runner) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		panic("libagent.Run: " + err.Error())
	}
	r.a.Wait()
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func awaitPush(t *testing.T, srv *agenttest.Server, typ protocol.Type) *protocol.Msg {
	t.Helper()
	m, err := srv.AwaitPush(timeout(t), typ)
	if err != nil {
		t.Fatalf("push of type %d: %v", typ, err)
	}
	return m
}

// noPush fails when a push of typ is already queued.
func noPush(t *testing.T, srv *agenttest.Server, typ protocol.Type) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if m, err := srv.AwaitPush(ctx, typ); err == nil {
		t.Fatalf("unexpected push of type %d: %+v", typ, m)
	}
}

// request sends m to the agent and returns its reply.
func request(t *testing.T, srv *agenttest.Server, id string, m *protocol.Msg) *protocol.Msg {
	t.Helper()
	ctx := timeout(t)
	tid, err := srv.Send(ctx, id, m)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := srv.Await(ctx, tid)
	if err != nil {
		t.Fatalf("reply to type %d: %v", m.Type, err)
	}
	return rep
}

// categories names the categories an hm_dynamic_rep carries.
func categories(rep *protocol.HMDynamicRep) []string {
	var c []string
	if rep.Usage != nil {
		c = append(c, JobUsage)
	}
	if rep.Process != nil {
		c = append(c, JobProcess)
	}
	if rep.Connections != nil {
		c = append(c, JobConns)
	}
	if rep.Temperatures != nil {
		c = append(c, JobTemps)
	}
	return c
}
