package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const helperEnv = "DAEMON_TEST_HELPER"

// TestHelperProcess is the worker: the test binary started again with
// DAEMON_TEST_HELPER=<mode> and DAEMON_TEST_OUT=<file>.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("only runs as a worker")
	}
	out, err := os.OpenFile(os.Getenv("DAEMON_TEST_OUT"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		os.Exit(90)
	}
	say := func(s string) { fmt.Fprintf(out, "%s %d\n", s, os.Getpid()) }
	switch mode {
	case "crash":
		say("start")
		os.Exit(3)
	case "serve", "stubborn":
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, helperSignals...)
		say("ready")
		for sig := range sigs {
			say("got-" + sig.String())
			if mode == "serve" && isStop(sig) {
				os.Exit(0)
			}
		}
	}
	os.Exit(91)
}

func helperSupervisor(t *testing.T, mode string) (*Supervisor, string) {
	out := filepath.Join(t.TempDir(), "out")
	return &Supervisor{
		Command: []string{os.Args[0], "-test.run=^TestHelperProcess$"},
		// GORACE: a race-enabled worker would otherwise sleep 1s when it exits.
		Env:        append(os.Environ(), helperEnv+"="+mode, "DAEMON_TEST_OUT="+out, "GORACE=atexit_sleep_ms=0"),
		MinBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond,
		Grace:      5 * time.Second,
	}, out
}

// waitLines polls the worker's output file until it holds n lines starting
// with prefix, and returns the pids of those lines.
func waitLines(t *testing.T, out, prefix string, n int) []int {
	t.Helper()
	var pids []int
	eventually.NoError(t, fmt.Sprintf("%d %q lines of worker output", n, prefix), func() error {
		b, _ := os.ReadFile(out)
		pids = pids[:0]
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
				pid, _ := strconv.Atoi(rest)
				pids = append(pids, pid)
			}
		}
		if len(pids) < n {
			return fmt.Errorf("%d lines:\n%s", len(pids), b)
		}
		return nil
	})
	return pids
}

// runAsync runs s and returns a function that waits for Run's result.
func runAsync(ctx context.Context, s *Supervisor) func(t *testing.T) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	return func(t *testing.T) error {
		t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

func TestRestartAfterCrash(t *testing.T) {
	s, out := helperSupervisor(t, "crash")
	s.Signals = make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runAsync(ctx, s)
	pids := waitLines(t, out, "start", 3)
	cancel()
	if err := wait(t); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if pids[0] == pids[1] || pids[1] == pids[2] {
		t.Fatalf("restarts reused a pid: %v", pids)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		s    Supervisor
		want string
	}{
		{Supervisor{}, "daemon: Supervisor.Command is empty"},
		{Supervisor{Command: []string{""}}, "daemon: Supervisor.Command is empty"},
		{Supervisor{Command: []string{"x"}, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "MinBackoff 1s is above MaxBackoff 1ms"},
		{Supervisor{Command: []string{filepath.Join(t.TempDir(), "no-such-binary")}, Signals: make(chan os.Signal)}, "daemon: start "},
	}
	for _, tt := range tests {
		err := tt.s.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Run(%+v) = %v, want %q", tt.s.Command, err, tt.want)
		}
	}
}

func TestPidFile(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sup.pid")

	t.Run("written while running, removed after", func(t *testing.T) {
		s, out := helperSupervisor(t, "serve")
		s.PidFile, s.Signals = pidFile, make(chan os.Signal)
		ctx, cancel := context.WithCancel(context.Background())
		wait := runAsync(ctx, s)
		waitLines(t, out, "ready", 1)
		b, err := os.ReadFile(pidFile)
		if err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
			t.Fatalf("pid file = %q, %v; want our pid %d", b, err, os.Getpid())
		}
		cancel()
		if err := wait(t); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("pid file left behind: %v", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files left in %s: %v", dir, entries)
		}
	})

	tests := []struct {
		name    string
		content string
		want    string // "" = Run starts
	}{
		{"live process", strconv.Itoa(os.Getppid()) + "\n", "daemon: already running: pid file " + pidFile + " names live process " + strconv.Itoa(os.Getppid())},
		{"garbage", "hello", `holds "hello", not a pid`},
		{"stale", "999999999\n", ""},
		{"our own pid", strconv.Itoa(os.Getpid()), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(pidFile, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(pidFile)
			s, out := helperSupervisor(t, "serve")
			s.PidFile, s.Signals = pidFile, make(chan os.Signal)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wait := runAsync(ctx, s)
			if tt.want != "" {
				err := wait(t)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Run = %v, want %q", err, tt.want)
				}
				if b, _ := os.ReadFile(pidFile); string(b) != tt.content {
					t.Fatalf("refused run changed the pid file to %q", b)
				}
				return
			}
			waitLines(t, out, "ready", 1)
			cancel()
			if err := wait(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name string
		rand float64
		ups  []time.Duration // uptime of each exit
		want []time.Duration
	}{
		{"grows and caps", 0.5, []time.Duration{0, 0, 0, 0, 0, 0},
			[]time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms}},
		{"resets after a stable run", 0.5, []time.Duration{0, 0, 0, time.Second, 0},
			[]time.Duration{5 * ms, 10 * ms, 20 * ms, 5 * ms, 10 * ms}},
		{"just under stable does not reset", 0.5, []time.Duration{0, 0, time.Second - 1},
			[]time.Duration{5 * ms, 10 * ms, 20 * ms}},
		{"full jitter reaches zero", 0, []time.Duration{0, 0}, []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Supervisor{MinBackoff: 10 * ms, MaxBackoff: 80 * ms, Stable: time.Second, Rand: func() float64 { return tt.rand }}
			b := s.backoff()
			t0 := time.Unix(1_700_000_000, 0)
			for i, up := range tt.ups {
				b.Connected(t0)
				b.Disconnected(t0.Add(up))
				if got := b.Next(); got != tt.want[i] {
					t.Fatalf("delay %d = %s, want %s", i, got, tt.want[i])
				}
			}
		})
	}
	s := &Supervisor{MinBackoff: time.Hour, MaxBackoff: 1 << 62, Stable: time.Hour, Rand: func() float64 { return 1 }}
	b := s.backoff()
	for range 200 {
		if d := b.Next(); d <= 0 || d > 1<<62 {
			t.Fatalf("delay %d overflowed", d)
		}
	}
}

// fakeClock hands every requested delay to the test and fires it when the
// test says so; Now advances by step on each call.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	step   time.Duration
	delays chan time.Duration
	fire   chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func (c *fakeClock) setStep(d time.Duration) {
	c.mu.Lock()
	c.step = d
	c.mu.Unlock()
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.delays <- d
	return c.fire
}

func TestRestartDelaysUseClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0), delays: make(chan time.Duration, 16), fire: make(chan time.Time)}
	s, _ := helperSupervisor(t, "crash")
	s.MinBackoff, s.MaxBackoff, s.Stable = time.Second, 8*time.Second, time.Minute
	s.Clock, s.Rand, s.Signals = clock, func() float64 { return 0.5 }, make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runAsync(ctx, s)
	next := func() time.Duration {
		select {
		case d := <-clock.delays:
			return d
		case <-time.After(20 * time.Second):
			t.Fatal("no restart delay requested")
			return 0
		}
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		if d := next(); d != w {
			t.Fatalf("delay %d = %s, want %s", i, d, w)
		}
		if i == len(want)-1 {
			clock.setStep(time.Minute) // the next run counts as stable
		}
		clock.fire <- time.Time{}
	}
	if d := next(); d != 500*time.Millisecond {
		t.Fatalf("delay after a stable run = %s, want the minimum 500ms", d)
	}
	cancel()
	if err := wait(t); err != nil {
		t.Fatal(err)
	}
}
