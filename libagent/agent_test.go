package libagent_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

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
	ctx, ag := a.connected(t, srv, 10*time.Second)
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
	ctx, ag := a.connected(t, srv, 10*time.Second)
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
	ctx, ag := a.connected(t, srv, 10*time.Second)
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
