package agent

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// env is an agenttest server with a running exec-agent.
type env struct {
	t   testing.TB
	srv *agenttest.Server
	id  string
	dir string // the agent's state dir
	// stop stops the agent and waits for Run to return (once).
	stop func()
}

// start runs the exec-agent against a fresh agenttest server until the end
// of the test.
func start(t testing.TB, opts agenttest.Options, mod func(*Config)) *env {
	t.Helper()
	return startIn(t, t.TempDir(), opts, mod)
}

// startIn is start with the agent's state (and task records) in dir.
func startIn(t testing.TB, dir string, opts agenttest.Options, mod func(*Config)) *env {
	t.Helper()
	srv := agenttest.New(t, opts)
	cfg := DefaultConfig()
	cfg.Basic.Server = srv.Addr()
	cfg.Basic.Monitor.Enabled = false
	cfg.Exec.KillGrace = 200 * time.Millisecond
	cfg.Exec.DrainTimeout = 100 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- libagent.Run(ctx, New(&cfg), libagent.Options{
			StatePath: filepath.Join(dir, "agent.state"), Logger: testLogger(t), SkipLimits: true,
			// 2 s: a link silent for 3 pings is dropped, and a starved
			// machine can hold a pong for a second or more.
			KeepAlive: 2 * time.Second, Backoff: &backoff.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		})
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("agent did not stop within 15 s")
			}
		})
	}
	t.Cleanup(stop)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	a, err := srv.WaitAgent(wctx)
	if err != nil {
		t.Fatalf("agent did not connect: %v", err)
	}
	if a.Come.Name != Name {
		t.Fatalf("come.name = %q, want %q", a.Come.Name, Name)
	}
	return &env{t: t, srv: srv, id: a.ID, dir: dir, stop: stop}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// send sends m and returns its tid.
func (e *env) send(m *protocol.Msg) string {
	e.t.Helper()
	tid, err := e.srv.Send(ctxT(e.t, 10*time.Second), e.id, m)
	if err != nil {
		e.t.Fatalf("send %v: %v", m.Type, err)
	}
	return tid
}

// await returns the next reply for tid.
func (e *env) await(tid string, d time.Duration) *protocol.Msg {
	e.t.Helper()
	m, err := e.srv.Await(ctxT(e.t, d), tid)
	if err != nil {
		e.t.Fatalf("await %s: %v", tid, err)
	}
	return m
}

// call sends m and returns the first reply.
func (e *env) call(m *protocol.Msg) *protocol.Msg {
	e.t.Helper()
	return e.await(e.send(m), 20*time.Second)
}

// execResult is what an exec produced, in arrival order.
type execResult struct {
	execd  *protocol.Execd
	output string
	done   *protocol.ExecDone
	msgs   []protocol.Type
}

// collect reads an exec's replies up to exec_done (or a failed execd) and
// checks their order: execd first, exec_done last.
func (e *env) collect(tid string, d time.Duration) execResult {
	e.t.Helper()
	var r execResult
	var out strings.Builder
	for {
		m := e.await(tid, d)
		r.msgs = append(r.msgs, m.Type)
		switch m.Type {
		case protocol.TypeExecd:
			if r.execd != nil {
				e.t.Fatalf("second execd: %v", r.msgs)
			}
			r.execd = m.Execd()
			if !m.Execd().OK {
				r.output = out.String()
				return r
			}
		case protocol.TypeExecData:
			if r.execd == nil {
				e.t.Fatalf("exec_data before execd: %v", r.msgs)
			}
			b, err := base64.StdEncoding.DecodeString(m.ExecData().Data)
			if err != nil {
				e.t.Fatalf("exec_data not base64: %v", err)
			}
			out.Write(b)
		case protocol.TypeExecDone:
			if r.execd == nil {
				e.t.Fatalf("exec_done before execd: %v", r.msgs)
			}
			r.done = m.ExecDone()
			r.output = out.String()
			return r
		default:
			e.t.Fatalf("unexpected reply %v (%s) to exec", m.Type, m.ErrMsg)
		}
	}
}

func (e *env) exec(x *protocol.Exec) execResult {
	e.t.Helper()
	return e.collect(e.send(&protocol.Msg{Type: protocol.TypeExec, Payload: x}), 30*time.Second)
}

// collectRest reads an exec's output up to exec_done, after its execd.
func (e *env) collectRest(tid string) execResult {
	e.t.Helper()
	var r execResult
	var out strings.Builder
	for {
		m := e.await(tid, 20*time.Second)
		r.msgs = append(r.msgs, m.Type)
		switch m.Type {
		case protocol.TypeExecData:
			b, err := base64.StdEncoding.DecodeString(m.ExecData().Data)
			if err != nil {
				e.t.Fatalf("exec_data not base64: %v", err)
			}
			out.Write(b)
		case protocol.TypeExecDone:
			r.done = m.ExecDone()
			r.output = out.String()
			return r
		default:
			e.t.Fatalf("unexpected reply %v (%s)", m.Type, m.ErrMsg)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
