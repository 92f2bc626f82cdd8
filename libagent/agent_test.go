package libagent_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentfleet/jkframe/compress"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/backoff"
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

// adopted waits until the agent itself took id from the handshake (the
// server registers the agent before the agent reads the handshake).
func (r *running) adopted(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.rt.ID() != id || !r.rt.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("agent id %q, want %q", r.rt.ID(), id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// eventually polls cond until it holds, failing after 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
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

var idPattern = regexp.MustCompile(`^agent-\d{8}-[0-9a-f]{16}$`)

func TestHandshakeAssignsAndPersistsID(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	a := startAgent(t, srv.Addr(), agentSpec{stateDir: dir, setup: echo})
	ctx := timeout(t, 5*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !idPattern.MatchString(ag.ID) {
		t.Errorf("assigned id %q does not match %s", ag.ID, idPattern)
	}
	c := ag.Come
	if c.Name != "test-agent" || c.Version != "1.0.0" || c.HostName == "" || c.CPUCore == 0 || c.Memory == 0 || c.IP == nil || !c.IP.IsLoopback() {
		t.Errorf("come lacks host facts: %+v", c)
	}
	if !protocol.HasCap(ag.Caps, protocol.CapAuth) || !protocol.HasCap(ag.Caps, protocol.CapAck) {
		t.Errorf("negotiated caps %v, want auth and ack", ag.Caps)
	}
	roundTrip(t, srv, ag.ID)
	a.adopted(t, ag.ID)
	a.stop(t)

	var st struct{ ID, Secret string }
	b, err := os.ReadFile(filepath.Join(dir, "agent.state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != ag.ID || st.Secret == "" {
		t.Fatalf("state file %s: want id %q and a secret", b, ag.ID)
	}

	// A restart presents the stored id and secret.
	startAgent(t, srv.Addr(), agentSpec{stateDir: dir, setup: echo})
	again, err := srv.WaitFor(ctx, ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Come.ID != ag.ID || again.Come.Secret != st.Secret {
		t.Errorf("restarted agent sent id %q secret %q, want %q %q", again.Come.ID, again.Come.Secret, ag.ID, st.Secret)
	}
}

func TestIDConflictAndAuthenticatedReplace(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	dirA := t.TempDir()
	a := startAgent(t, srv.Addr(), agentSpec{stateDir: dirA, basic: libagent.Basic{Labels: []string{"who=a"}}})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.adopted(t, ag.ID)
	// A's session goes stale: the server stops reading it and A goes away
	// without the server noticing.
	if err := srv.StopReading(ag.ID); err != nil {
		t.Fatal(err)
	}
	a.stop(t)

	// Same id without the secret: refused while the stale session lives.
	dials := srv.Dials()
	startAgent(t, srv.Addr(), agentSpec{basic: libagent.Basic{ID: ag.ID, Labels: []string{"who=b"}}})
	for srv.Dials() < dials+3 {
		if ctx.Err() != nil {
			t.Fatal("the conflicting agent did not retry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := srv.Agents(); len(got) != 1 || got[0].Come.Labels["who"] != "a" {
		t.Fatalf("conflicting agent was accepted: %+v", got)
	}

	// The same agent (its state file, hence its secret) replaces the stale session.
	startAgent(t, srv.Addr(), agentSpec{stateDir: dirA, basic: libagent.Basic{Labels: []string{"who=c"}}})
	if err := srv.WaitAccepted(ctx, 2); err != nil {
		t.Fatal(err)
	}
	got, err := srv.WaitFor(ctx, ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Come.Labels["who"] != "c" {
		t.Errorf("agent %s is %q, want the replacing agent c", ag.ID, got.Come.Labels["who"])
	}
}

func TestTokenRejectedBacksOff(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{Token: "right"})
	startAgent(t, srv.Addr(), agentSpec{
		basic: libagent.Basic{Token: "wrong"},
		opts:  libagent.Options{Backoff: &backoff.Backoff{Min: 50 * time.Millisecond, Max: 400 * time.Millisecond, Rand: func() float64 { return 0.5 }}},
	})
	window := time.Second
	time.Sleep(window) // observing a rate over a window of real time
	n := srv.Dials()
	// 0.5 jitter: delays 75, 125, 225, 225 ms … → about 6 dials in 1 s.
	if n < 3 || n > 10 {
		t.Fatalf("%d dials in %s with a rejected token, want 3..10 (backoff, no tight loop)", n, window)
	}
	if srv.Accepted() != 0 {
		t.Fatal("agent with a wrong token accepted")
	}
	startAgent(t, srv.Addr(), agentSpec{basic: libagent.Basic{Token: "right"}})
	if _, err := srv.WaitAgent(timeout(t, 5*time.Second)); err != nil {
		t.Fatal("agent with the right token:", err)
	}
}

func TestServerRestart(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	a := startAgent(t, srv.Addr(), agentSpec{setup: echo})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.adopted(t, ag.ID)
	srv.Stop()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitFor(ctx, ag.ID); err != nil {
		t.Fatal("agent did not come back:", err)
	}
	roundTrip(t, srv, ag.ID)
}

func TestAcceptThenDropBackoffGrows(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*agenttest.Server)
	}{
		{"before handshake", func(s *agenttest.Server) { s.SetRefuse(true) }},
		{"after handshake", func(s *agenttest.Server) { s.SetDropAfterHandshake(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := agenttest.New(t, agenttest.Options{})
			tc.set(srv)
			startAgent(t, srv.Addr(), agentSpec{opts: libagent.Options{
				Backoff: &backoff.Backoff{Min: 20 * time.Millisecond, Max: 640 * time.Millisecond, Stable: time.Hour, Rand: func() float64 { return 0.9 }},
			}})
			// Delays ≈ 38, 74, 146, 290, 578 ms: the 6th dial comes after ≈ 1.1 s.
			// A busy machine only adds to each gap, so only lower bounds are
			// checked (a backoff that does not grow fails them).
			ctx := timeout(t, 30*time.Second)
			for len(srv.DialTimes()) < 6 {
				if ctx.Err() != nil {
					t.Fatalf("only %d dials", len(srv.DialTimes()))
				}
				time.Sleep(10 * time.Millisecond)
			}
			at := srv.DialTimes()
			first, last := at[1].Sub(at[0]), at[5].Sub(at[4])
			if last < 300*time.Millisecond {
				t.Fatalf("gaps between dials %v … %v: backoff does not grow", first, last)
			}
			if total := at[5].Sub(at[0]); total < 800*time.Millisecond {
				t.Fatalf("6 dials in %v: tight loop", total)
			}
		})
	}
}

func TestHalfOpenLinkDetected(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	ka := 100 * time.Millisecond
	a := startAgent(t, srv.Addr(), agentSpec{setup: echo, opts: libagent.Options{KeepAlive: ka}})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.adopted(t, ag.ID)
	start := time.Now()
	if err := srv.StopReading(ag.ID); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitAccepted(ctx, 2); err != nil {
		t.Fatal("half-open link never detected:", err)
	}
	// Detection takes 3 intervals plus the reconnect backoff (≤ 100 ms) on
	// an idle machine; without the keepalive nothing would notice for
	// minutes (TCP). The bound tells the two apart on a busy machine too.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("half-open link detected after %v, want ≈ 3 × %v (5 s at most)", took, ka)
	}
	roundTrip(t, srv, ag.ID)
}

func TestSurvivesBadInput(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	startAgent(t, srv.Addr(), agentSpec{
		opts: libagent.Options{MaxFrame: 4096},
		setup: func(rt *libagent.Runtime) error {
			_ = echo(rt)
			rt.Handle(protocol.TypeExec, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				panic("boom")
			})
			rt.Handle(protocol.TypeLsReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				return errors.New("no such dir")
			})
			return nil
		},
	})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expectError := func(m *protocol.Msg, want string) {
		t.Helper()
		tid, err := srv.Send(ctx, ag.ID, m)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := srv.Await(ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, want) {
			t.Fatalf("reply %v %q, want type 0 with %q", rep.Type, rep.ErrMsg, want)
		}
	}
	for _, raw := range []string{`{not json`, `[]`, `{"type":"x"}`, `{"tid":"t"}`, `{"type":10,"tid":"t"}`, ``} {
		if err := srv.SendRaw(ag.ID, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	roundTrip(t, srv, ag.ID)
	// A payload that does not fit its type is refused by name when the
	// frame has a tid.
	if err := srv.SendRaw(ag.ID, []byte(`{"type":10,"tid":"bad-exec","exec":"ls"}`)); err != nil {
		t.Fatal(err)
	}
	if rep, err := srv.Await(ctx, "bad-exec"); err != nil || rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, "malformed message") {
		t.Fatalf("reply to a bad payload = %+v, %v; want type 0 naming the malformed message", rep, err)
	}
	expectError(&protocol.Msg{Type: 555}, "unsupported message type 555")
	expectError(&protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "true"}}, "panicked: boom")
	expectError(&protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: "/x"}}, "no such dir")
	roundTrip(t, srv, ag.ID)

	// An oversized frame closes the connection; the agent comes back.
	if err := srv.SendRaw(ag.ID, []byte(`{"type":8,"pad":"`+strings.Repeat("x", 8192)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitAccepted(ctx, 2); err != nil {
		t.Fatal("agent did not reconnect after an oversized frame:", err)
	}
	if _, err := srv.WaitFor(ctx, ag.ID); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, srv, ag.ID)
}

func TestV1Server(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{V1: true})
	var rt *libagent.Runtime
	startAgent(t, srv.Addr(), agentSpec{setup: func(r *libagent.Runtime) error {
		rt = r
		r.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			return w.ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeBar})
		})
		return nil
	}})
	ctx := timeout(t, 5*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ag.Caps) != 0 {
		t.Errorf("caps %v with a v1 server", ag.Caps)
	}
	tid, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := srv.Await(ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Type != protocol.TypeBar || rep.Seq != 0 {
		t.Errorf("reply %v seq %d, want bar without seq", rep.Type, rep.Seq)
	}
	if rt.HasCap(protocol.CapAck) {
		t.Error("HasCap(ack) with a v1 server")
	}
}

func TestJournalReplayExactlyOnce(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	release, started := make(chan struct{}), make(chan struct{})
	var sent sync.WaitGroup
	sent.Add(1)
	var rt *libagent.Runtime
	startAgent(t, srv.Addr(), agentSpec{setup: func(r *libagent.Runtime) error {
		rt = r
		r.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
			close(started)
			<-release
			defer sent.Done()
			return w.ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeBar})
		})
		return nil
	}})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tid, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	srv.Stop()
	for rt.Connected() {
		if ctx.Err() != nil {
			t.Fatal("agent did not notice the server stopped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release) // the result is produced while disconnected
	sent.Wait()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	rep, err := srv.Await(ctx, tid)
	if err != nil {
		t.Fatal("journaled reply not replayed:", err)
	}
	if rep.Type != protocol.TypeBar || rep.Seq == 0 {
		t.Fatalf("replayed %v seq %d, want bar with a seq", rep.Type, rep.Seq)
	}
	// Another reconnect must not send it again: it was acked.
	srv.Drop()
	if err := srv.WaitAccepted(ctx, 3); err != nil {
		t.Fatal(err)
	}
	roundTripAfter := timeout(t, 300*time.Millisecond)
	if dup, err := srv.Await(roundTripAfter, tid); err == nil {
		t.Fatalf("reply delivered twice: %+v", dup)
	}
	if n := srv.Duplicates(); n != 0 {
		t.Fatalf("server dropped %d duplicates, want 0", n)
	}
}

func TestSelfReport(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	startAgent(t, srv.Addr(), agentSpec{
		basic: libagent.Basic{Monitor: libagent.Monitor{Enabled: true}},
		opts:  libagent.Options{MonitorInterval: 50 * time.Millisecond},
	})
	m, err := srv.AwaitPush(timeout(t, 5*time.Second), protocol.TypeAgentInfo)
	if err != nil {
		t.Fatal(err)
	}
	ai := m.AI()
	if ai.Version != "1.0.0" || !strings.HasPrefix(ai.GoVersion, "go") || ai.Routines == 0 || ai.Threads == 0 || ai.Startup == 0 || ai.HeapInuse == 0 || len(ai.GC) != 5 || ai.OutPackets == 0 {
		t.Errorf("self-report incomplete: %+v", ai)
	}
}

func TestTransfer(t *testing.T) {
	var got []byte
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/a", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "tok" {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, "file body")
	})
	mux.HandleFunc("PUT /files/b", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "tok" {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		got, _ = io.ReadAll(r.Body)
	})
	srv := agenttest.New(t, agenttest.Options{HTTP: mux})
	a := startAgent(t, srv.Addr(), agentSpec{})
	ctx := timeout(t, 5*time.Second)
	var buf bytes.Buffer
	n, err := a.rt.Fetch(ctx, "/files/a", "tok", &buf)
	if err != nil || n != 9 || buf.String() != "file body" {
		t.Fatalf("Fetch = %d, %v, %q", n, err, buf.String())
	}
	if err := a.rt.Put(ctx, "/files/b", "tok", strings.NewReader("upload"), 6); err != nil || string(got) != "upload" {
		t.Fatalf("Put: %v, server got %q", err, got)
	}
	for _, tc := range []struct{ uri, token, want string }{
		{"/files/a", "bad", "transfer failed: HTTP 403"},
		{"/nope", "tok", "transfer failed: HTTP 404"},
		{"ftp://x/y", "tok", `scheme "ftp", want http or https`},
	} {
		_, err := a.rt.Fetch(ctx, tc.uri, tc.token, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%q, %q) = %v, want %q", tc.uri, tc.token, err, tc.want)
		}
	}
}

// TestConfigFileAndLogHandlers runs an agent from a real config file with
// file logging, lists its log files and downloads them as a zip.
func TestConfigFileAndLogHandlers(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf", "agent.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	text := "basic.server = $TEST_AGENT_SERVER\nbasic.log.target = file\nbasic.log.dir = logs\nbasic.log.level = debug\nbasic.monitor.enabled = false\nbasic.labels = env=test, rack=r1\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_AGENT_SERVER", srv.Addr())
	cfg := &testConfig{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- libagent.Run(ctx, &libagent.Agent{Name: "log-agent", Config: cfg}, libagent.Options{
			ConfigPath: conf, BaseDir: dir, SkipLimits: true,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if ag.Come.Labels["rack"] != "r1" || ag.Come.Labels["env"] != "test" {
		t.Errorf("labels %v", ag.Come.Labels)
	}
	eventually(t, "state file next to the config", func() bool {
		_, err := os.Stat(filepath.Join(dir, "conf", "agent.state"))
		return err == nil
	})
	tid, _ := srv.Send(wctx, ag.ID, &protocol.Msg{Type: protocol.TypeLogLsReq})
	rep, err := srv.Await(wctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Type != protocol.TypeLogLsRep || len(rep.LogLs().Files) == 0 || rep.LogLs().Files[0].Name != "log-agent.log" {
		t.Fatalf("log list %+v", rep)
	}

	for _, tc := range []struct{ name, want string }{
		{"../conf/agent.conf", "not a log file of this agent"},
		{"/etc/passwd", "not a log file of this agent"},
		{"other.log", "not a log file of this agent"},
	} {
		tid, _ := srv.Send(wctx, ag.ID, &protocol.Msg{Type: protocol.TypeLogDownloadReq, Payload: &protocol.LogDownloadReq{Files: []string{tc.name}}})
		rep, err := srv.Await(wctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if rep.LogDInfo() == nil || rep.LogDInfo().OK || !strings.Contains(rep.LogDInfo().Msg, tc.want) {
			t.Errorf("download %q: %+v, want refusal %q", tc.name, rep.LogDInfo(), tc.want)
		}
	}

	tid, _ = srv.Send(wctx, ag.ID, &protocol.Msg{Type: protocol.TypeLogDownloadReq, Payload: &protocol.LogDownloadReq{Files: []string{"log-agent.log"}}})
	info, err := srv.Await(wctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if !info.LogDInfo().OK || info.LogDInfo().Size == 0 {
		t.Fatalf("log_dinfo %+v", info.LogDInfo())
	}
	var zipped []byte
	for uint64(len(zipped)) < info.LogDInfo().Size {
		m, err := srv.Await(wctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != protocol.TypeLogDownloadData || m.LogDData().Offset != uint64(len(zipped)) {
			t.Fatalf("block %v at %d, want log_ddata at %d", m.Type, m.LogDData().Offset, len(zipped))
		}
		b, err := compress.Decode(m.LogDData().Data, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		zipped = append(zipped, b...)
	}
	if md5.Sum(zipped) != [16]byte(info.LogDInfo().MD5) {
		t.Error("md5 mismatch")
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "log-agent.log" {
		t.Fatalf("zip holds %v", zr.File)
	}
	f, _ := zr.File[0].Open()
	body, _ := io.ReadAll(f)
	f.Close()
	if !strings.Contains(string(body), "connected") {
		t.Errorf("zipped log lacks the connect line:\n%s", body)
	}
}

func TestRedirect(t *testing.T) {
	target := agenttest.New(t, agenttest.Options{})
	first := agenttest.New(t, agenttest.Options{})
	first.SetRedirect([]string{"127.0.0.1:1", target.Addr()}) // the first is dead
	startAgent(t, first.Addr(), agentSpec{setup: echo})
	ag, err := target.WaitAgent(timeout(t, 10*time.Second))
	if err != nil {
		t.Fatal("agent did not follow the redirect:", err)
	}
	roundTrip(t, target, ag.ID)
}

func TestBusyTimeoutAndCancel(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	block := make(chan struct{})
	a := startAgent(t, srv.Addr(), agentSpec{
		opts: libagent.Options{Workers: 1},
		setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				select {
				case <-block:
					return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar})
				case <-ctx.Done():
					return fmt.Errorf("foo stopped: %w", ctx.Err())
				}
			})
			rt.Handle(protocol.TypeLsReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				<-ctx.Done()
				return ctx.Err()
			}, libagent.WithTimeout(50*time.Millisecond))
			return nil
		},
	})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.adopted(t, ag.ID)
	first, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	// The single worker is taken: the next request is refused at once.
	var busy *protocol.Msg
	eventually(t, "a busy refusal", func() bool {
		tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
		rep, err := srv.Await(ctx, tid)
		busy = rep
		return err == nil && rep.Type == protocol.TypeError && strings.Contains(rep.ErrMsg, "agent busy")
	})
	if busy == nil {
		t.Fatal("no busy reply")
	}
	// Kill by tid cancels the handler's context; its error is the reply.
	if !a.rt.Cancel(first) {
		t.Fatal("Cancel found no running task")
	}
	rep, err := srv.Await(ctx, first)
	if err != nil || rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, "foo stopped: context canceled") {
		t.Fatalf("cancelled task answered %+v, %v", rep, err)
	}
	// A handler timeout ends in an error reply too (once the worker is free).
	eventually(t, "the worker to be free", func() bool { return !a.rt.Cancel(first) })
	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: "/"}})
	rep, err = srv.Await(ctx, tid)
	if err != nil || rep.Type != protocol.TypeError || !strings.Contains(rep.ErrMsg, "deadline exceeded") {
		t.Fatalf("timed-out task answered %+v, %v", rep, err)
	}
	close(block)
}

// TestJournalFullBlocksThenDrains: while disconnected, reliable replies
// fill the bounded journal and the producer blocks; after the reconnect
// everything arrives once, in order.
func TestJournalFullBlocksThenDrains(t *testing.T) {
	const n = 40
	srv := agenttest.New(t, agenttest.Options{})
	var produced atomic.Int64
	release, started := make(chan struct{}), make(chan struct{})
	a := startAgent(t, srv.Addr(), agentSpec{
		opts: libagent.Options{JournalMax: 2048},
		setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypeExec, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				close(started)
				<-release
				for i := range n {
					m := &protocol.Msg{Type: protocol.TypeExecData, Payload: &protocol.ExecData{Data: fmt.Sprintf("%03d%s", i, strings.Repeat(".", 60))}}
					if err := w.ReplyReliable(ctx, m); err != nil {
						return err
					}
					produced.Add(1)
				}
				return nil
			})
			return nil
		},
	})
	ctx := timeout(t, 15*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.adopted(t, ag.ID)
	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "x"}})
	<-started
	srv.Stop()
	eventually(t, "the agent to notice the stop", func() bool { return !a.rt.Connected() })
	close(release)
	// 2 KiB hold about 20 of these records: the producer must stall.
	eventually(t, "the producer to stall", func() bool {
		p := produced.Load()
		time.Sleep(50 * time.Millisecond)
		return p > 0 && p == produced.Load()
	})
	if p := produced.Load(); p >= n {
		t.Fatalf("produced all %d replies into a 2 KiB journal while disconnected", p)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range n {
		m, err := srv.Await(ctx, tid)
		if err != nil {
			t.Fatalf("reply %d: %v (produced %d)", i, err, produced.Load())
		}
		if want := fmt.Sprintf("%03d", i); m.ExecData() == nil || !strings.HasPrefix(m.ExecData().Data, want) || m.Seq <= last {
			t.Fatalf("reply %d: %+v seq %d after %d", i, m.ExecData(), m.Seq, last)
		}
		last = m.Seq
	}
	if d := srv.Duplicates(); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

func TestWSSWithCA(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blob", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "over https") })
	srv := agenttest.New(t, agenttest.Options{TLS: true, HTTP: mux})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  libagent.TLS
		ok   bool
	}{
		{"ca", libagent.TLS{CA: ca}, true},
		{"insecure", libagent.TLS{InsecureSkipVerify: true}, true},
		{"system roots", libagent.TLS{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := libagent.DefaultBasic()
			b.Server, b.TLS = srv.URL(), tc.tls
			before := srv.Accepted()
			a := startAgent(t, "", agentSpec{basic: b})
			if !tc.ok {
				time.Sleep(300 * time.Millisecond) // several dial attempts (backoff ≤ 100 ms)
				if srv.Accepted() != before || a.rt.Connected() {
					t.Fatal("agent accepted a server it cannot verify")
				}
				return
			}
			if err := srv.WaitAccepted(timeout(t, 5*time.Second), before+1); err != nil {
				t.Fatal(err)
			}
			eventually(t, "connected", a.rt.Connected)
			var buf bytes.Buffer
			if _, err := a.rt.Fetch(timeout(t, 5*time.Second), "/blob", "", &buf); err != nil || buf.String() != "over https" {
				t.Fatalf("Fetch over https: %q, %v", buf.String(), err)
			}
			a.stop(t)
		})
	}
}

// A handler's error goes out with its kind (protocol.KindOf) to a server
// that speaks errkind.v1, and as the plain v1 type 0 to one that does not.
func TestHandlerErrorKind(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "errkind.v1", true: "v1"}[v1], func(t *testing.T) {
			srv := agenttest.New(t, agenttest.Options{V1: v1})
			missing := filepath.Join(t.TempDir(), "nope")
			startAgent(t, srv.Addr(), agentSpec{setup: func(rt *libagent.Runtime) error {
				rt.Handle(protocol.TypeLsReq, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
					_, err := os.ReadDir(missing)
					return err
				})
				rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
					return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeExecd, Payload: &protocol.Execd{Msg: "m", Kind: protocol.KindDenied}})
				})
				return nil
			}})
			ctx := timeout(t, 10*time.Second)
			ag, err := srv.WaitAgent(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantKind := map[bool]protocol.ErrKind{false: protocol.KindNotFound, true: ""}[v1]
			tid, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: missing}})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := srv.Await(ctx, tid)
			if err != nil || rep.Type != protocol.TypeError || rep.ErrMsg != "open "+missing+": no such file or directory" || rep.ErrKind != wantKind {
				t.Fatalf("reply %v %+v, want type 0 with kind %q", err, rep, wantKind)
			}
			wantKind = map[bool]protocol.ErrKind{false: protocol.KindDenied, true: ""}[v1]
			if tid, err = srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo}); err != nil {
				t.Fatal(err)
			}
			rep, err = srv.Await(ctx, tid)
			if err != nil || rep.Type != protocol.TypeExecd || rep.Execd().Kind != wantKind {
				t.Fatalf("reply %v %+v, want execd with kind %q", err, rep, wantKind)
			}
		})
	}
}

// TestInlineAndConnScoped: inline handlers see their messages in arrival
// order (the worker pool does not keep it); a connection-scoped handler's
// context ends with the connection its request came on.
func TestInlineAndConnScoped(t *testing.T) {
	const n = 300
	srv := agenttest.New(t, agenttest.Options{})
	var mu sync.Mutex
	var got []string
	scoped := make(chan error, 1)
	a := startAgent(t, srv.Addr(), agentSpec{
		setup: func(rt *libagent.Runtime) error {
			rt.Handle(protocol.TypePtyInput, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				mu.Lock()
				got = append(got, req.PtyData().Data)
				mu.Unlock()
				return nil
			}, libagent.Inline())
			rt.Handle(protocol.TypeFoo, func(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
				if err := w.Reply(ctx, &protocol.Msg{Type: protocol.TypeBar}); err != nil {
					return err
				}
				<-ctx.Done()
				scoped <- ctx.Err()
				return nil
			}, libagent.ConnScoped())
			return nil
		},
	})
	ctx := timeout(t, 10*time.Second)
	ag, err := srv.WaitAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.adopted(t, ag.ID)
	var want []string
	for i := range n {
		d := protocol.NewPtyData(fmt.Appendf(nil, "%d", i)).Data
		want = append(want, d)
		if _, err := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypePtyInput, TID: "p", Payload: &protocol.PtyData{Data: d}}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every input", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
	mu.Lock()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("input %d is %q, want %q: order lost", i, got[i], want[i])
		}
	}
	mu.Unlock()

	tid, _ := srv.Send(ctx, ag.ID, &protocol.Msg{Type: protocol.TypeFoo})
	if rep, err := srv.Await(ctx, tid); err != nil || rep.Type != protocol.TypeBar {
		t.Fatalf("foo: %+v, %v", rep, err)
	}
	select {
	case err := <-scoped:
		t.Fatalf("scoped handler ended before the connection did: %v", err)
	default:
	}
	srv.Drop()
	select {
	case err := <-scoped:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("scoped handler's context ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("dropping the connection did not cancel the scoped handler")
	}
}
