package libagent_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

func TestMain(m *testing.M) {
	// lumberjack (behind jkframe/logging's file target) never stops its
	// pruning goroutine; see jkframe/logging.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

// testConfig is an agent config as agent authors write it.
type testConfig struct {
	Basic libagent.Basic `kv:"basic"`
}

type running struct {
	rt     *libagent.Runtime
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error
}

// stop cancels the agent and waits for Run to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop within 10 s")
	}
}

type agentSpec struct {
	basic    libagent.Basic
	opts     libagent.Options
	setup    func(rt *libagent.Runtime) error
	stateDir string
}

// startAgent runs an agent against addr with short test intervals.
func startAgent(t *testing.T, addr string, spec agentSpec) *running {
	t.Helper()
	cfg := &testConfig{Basic: spec.basic}
	if cfg.Basic.Server == "" {
		d := libagent.DefaultBasic()
		d.ID, d.Token, d.Labels = spec.basic.ID, spec.basic.Token, spec.basic.Labels
		cfg.Basic = d
		cfg.Basic.Server = addr
	}
	cfg.Basic.Monitor.Enabled = spec.basic.Monitor.Enabled
	o := spec.opts
	if o.StatePath == "" {
		dir := spec.stateDir
		if dir == "" {
			dir = t.TempDir()
		}
		o.StatePath = filepath.Join(dir, "agent.state")
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 200 * time.Millisecond
	}
	if o.Backoff == nil {
		o.Backoff = &backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	}
	o.SkipLimits = true
	r := &running{done: make(chan struct{})}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	ready := make(chan struct{})
	a := &libagent.Agent{
		Name:    "test-agent",
		Version: "1.0.0",
		Config:  cfg,
		Setup: func(rt *libagent.Runtime) error {
			r.rt = rt
			close(ready)
			if spec.setup != nil {
				return spec.setup(rt)
			}
			return nil
		},
	}
	go func() {
		defer close(r.done)
		r.err = libagent.Run(ctx, a, o)
	}()
	select {
	case <-ready:
	case <-r.done:
		t.Fatalf("Run: %v", r.err)
	}
	t.Cleanup(func() {
		r.cancel()
		<-r.done
	})
	return r
}

// connected waits, within d, for the agent to connect to srv and adopt the
// id srv gave it; the context returned ends after d.
func (r *running) connected(t *testing.T, srv *agenttest.Server, d time.Duration) (context.Context, agenttest.Agent) {
	t.Helper()
	ctx := timeout(t, d)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.adopted(t, ag.ID)
	return ctx, ag
}

// adopted waits until the agent itself took id from the handshake (the
// server registers the agent before the agent reads the handshake).
func (r *running) adopted(t *testing.T, id string) {
	t.Helper()
	eventually.NoError(t, "the agent to adopt id "+id, func() error {
		if got := r.rt.ID(); got != id || !r.rt.Connected() {
			return fmt.Errorf("agent id %q, connected %v", got, r.rt.Connected())
		}
		return nil
	})
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// echo answers foo with bar.
func echo(rt *libagent.Runtime) error {
	rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar})
	})
	return nil
}

// roundTrip sends foo to id and expects bar.
func roundTrip(t *testing.T, srv *agenttest.Server, id string) {
	t.Helper()
	ctx := timeout(t, 5*time.Second)
	tid, err := srv.Send(ctx, id, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := srv.Await(ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Type != protocol.TypeBar {
		t.Fatalf("reply type %v (%q), want bar", rep.Type, rep.ErrMsg)
	}
}
