package hub

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

func goleakMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHandshakeAssignsID(t *testing.T) {
	th := newTestHub(t, nil)
	var connected []string
	var mu sync.Mutex
	th.opts.OnConnect = func(s *Session) { mu.Lock(); connected = append(connected, s.ID()); mu.Unlock() }

	a := connect(t, th, come("", protocol.CapAuth, protocol.CapAck, "future.v9"), nil)
	if !a.hs.OK || a.hs.Msg != "" {
		t.Fatalf("handshake = %+v", a.hs)
	}
	if !regexp.MustCompile(`^agent-20261124-[0-9a-f]{16}$`).MatchString(a.hs.ID) {
		t.Errorf("assigned id %q", a.hs.ID)
	}
	if len(a.hs.Secret) != 43 {
		t.Errorf("secret %q: want 43 base64url chars", a.hs.Secret)
	}
	if got := strings.Join(a.hs.Caps, ","); got != "auth.v1,ack.v1,errkind.v1" {
		t.Errorf("server caps %q", got)
	}
	s, ok := th.Session(a.hs.ID)
	if !ok {
		t.Fatal("session not registered")
	}
	if !s.HasCap(protocol.CapAuth) || s.HasCap(protocol.CapStream) {
		t.Errorf("negotiated caps %v", s.Caps())
	}
	infos := th.Sessions()
	if len(infos) != 1 || infos[0].Type != "example-agent" || infos[0].ID != a.hs.ID || !infos[0].ConnectedAt.Equal(testDay) {
		t.Errorf("Sessions() = %+v", infos)
	}
	mu.Lock()
	if len(connected) != 1 || connected[0] != a.hs.ID {
		t.Errorf("OnConnect saw %v", connected)
	}
	mu.Unlock()
	if got := th.counter(t, "agentserver_hub_connected_agents", "type", "example-agent", "version", "1.0.0"); got != 1 {
		t.Errorf("connected gauge = %v", got)
	}

	// A v1 agent keeps its configured id and gets no extension fields.
	b := connect(t, th, come("legacy-1"), nil)
	if !b.hs.OK || b.hs.ID != "legacy-1" || b.hs.Secret != "" {
		t.Errorf("v1 handshake = %+v", b.hs)
	}
	if th.Count() != 2 {
		t.Errorf("Count = %d", th.Count())
	}
}

// brokenReads is a store whose reads fail.
type brokenReads struct{ *MemStore }

func (brokenReads) SecretHash(context.Context, string) ([]byte, error) {
	return nil, errors.New("disk on fire")
}

func (brokenReads) JournalAck(context.Context, string, string) (uint64, error) {
	return 0, errors.New("disk on fire")
}

// The handshake of an agent the server names itself reads nothing from the
// store (there is nothing to read for a new id); one that brings its own id
// does, and a failing read refuses it.
func TestHandshakeOfNewAgentReadsNothing(t *testing.T) {
	th := newTestHub(t, func(o *Options) {
		b := brokenReads{NewMemStore()}
		o.Secrets, o.Acks = b, b
	})
	c := come("", protocol.CapAuth, protocol.CapAck)
	c.Journal = "j1"
	a := connect(t, th, c, nil)
	if !a.hs.OK || a.hs.Secret == "" || a.hs.Ack != 0 {
		t.Fatalf("new agent: handshake = %+v", a.hs)
	}
	for _, caps := range [][]string{{protocol.CapAuth}, {protocol.CapAck}} {
		c := come("known-1", caps...)
		c.Journal = "j1"
		b := connect(t, th, c, nil)
		if b.hs.OK || b.hs.Msg != "server error" {
			t.Errorf("caps %v, store read failing: handshake = %+v", caps, b.hs)
		}
	}
}

func TestUpgradeAuth(t *testing.T) {
	tests := []struct {
		name   string
		legacy bool
		header string
		status int
		body   string
	}{
		{"good token", false, "Bearer s3cret", http.StatusSwitchingProtocols, ""},
		{"second token", false, "bearer other", http.StatusSwitchingProtocols, ""},
		{"no token", false, "", http.StatusUnauthorized, "agent token required"},
		{"no token legacy", true, "", http.StatusSwitchingProtocols, ""},
		{"wrong token", true, "Bearer nope", http.StatusUnauthorized, "invalid agent token"},
		{"wrong scheme", false, "Basic czNjcmV0", http.StatusUnauthorized, "invalid agent token"},
		{"empty bearer", false, "Bearer ", http.StatusUnauthorized, "invalid agent token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, func(o *Options) {
				o.AgentTokens = []string{"s3cret", "other"}
				o.AllowLegacy = tt.legacy
			})
			hdr := http.Header{}
			if tt.header != "" {
				hdr.Set("Authorization", tt.header)
			}
			d := websocket.Dialer{}
			c, resp, err := d.Dial(th.url, hdr)
			if c != nil {
				c.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.body != "" {
				b, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(b), tt.body) {
					t.Errorf("body %q, want %q", b, tt.body)
				}
			}
		})
	}
}

func TestConnectLimit(t *testing.T) {
	th := newTestHub(t, func(o *Options) { o.ConnectLimit = 0.5; o.ConnectBurst = 2 })
	for i := range 2 {
		if _, _, err := dial(t, th.url, nil); err != nil {
			t.Fatalf("dial %d within burst: %v", i, err)
		}
	}
	_, resp, err := dial(t, th.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third dial: err %v, resp %v; want 429", err, resp)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	if got := th.counter(t, "agentserver_hub_handshakes_total", "reason", reasonRateLimited); got != 1 {
		t.Errorf("rate_limited counter = %v", got)
	}
}

func TestFirstFrame(t *testing.T) {
	tests := []struct {
		name   string
		frame  string // "" = send nothing
		reason string
		reply  string // handshake msg expected before the close, if any
	}{
		{"silent", "", reasonComeTimeout, ""},
		{"not come", `{"type":8,"tid":"x"}`, reasonNotCome, ""},
		{"garbage", `not json`, reasonNotCome, ""},
		{"come without payload", `{"type":1}`, reasonNotCome, ""},
		{"bad id", `{"type":1,"come":{"id":"a b"}}`, reasonBadID, msgBadID},
		{"long id", `{"type":1,"come":{"id":"` + strings.Repeat("x", 200) + `"}}`, reasonBadID, msgBadID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, func(o *Options) { o.ComeTimeout = 100 * time.Millisecond })
			c, _, err := dial(t, th.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.frame != "" {
				if err := c.WriteMessage(websocket.TextMessage, []byte(tt.frame)); err != nil {
					t.Fatal(err)
				}
			}
			a := &agent{t: t, c: c}
			m, err := a.tryRecv(3 * time.Second)
			if tt.reply != "" {
				if err != nil || m.Handshake() == nil || m.Handshake().OK || m.Handshake().Msg != tt.reply {
					t.Fatalf("reply %+v, %v; want handshake %q", m, err, tt.reply)
				}
				_, err = a.tryRecv(3 * time.Second)
			}
			if err == nil {
				t.Fatal("connection still open")
			}
			eventually.Within(t, 30*time.Second, "counter", func() bool {
				return th.counter(t, "agentserver_hub_handshakes_total", "result", "rejected", "reason", tt.reason) == 1
			})
		})
	}
}

func TestIDConflictAndTakeover(t *testing.T) {
	th := newTestHub(t, nil)
	var mu sync.Mutex
	var events []string
	th.opts.OnConnect = func(s *Session) { mu.Lock(); events = append(events, "up"); mu.Unlock() }
	th.opts.OnDisconnect = func(s *Session, r string) { mu.Lock(); events = append(events, "down:"+r); mu.Unlock() }

	first := connect(t, th, come("a1", protocol.CapAuth), nil)
	secret := first.hs.Secret
	if !first.hs.OK || secret == "" {
		t.Fatalf("first handshake %+v", first.hs)
	}
	cases := []struct {
		name   string
		secret string
		caps   []string
		msg    string
	}{
		{"v1 session", "", nil, protocol.MsgBadSecret}, // the id has a secret: no v1 session may have it
		{"no secret", "", []string{protocol.CapAuth}, protocol.MsgBadSecret},
		{"wrong secret", "wrong", []string{protocol.CapAuth}, protocol.MsgBadSecret},
	}
	for _, tc := range cases {
		c := come("a1", tc.caps...)
		c.Secret = tc.secret
		a := connect(t, th, c, nil)
		if a.hs.OK || a.hs.Msg != tc.msg {
			t.Errorf("%s: handshake %+v, want msg %q", tc.name, a.hs, tc.msg)
		}
		if _, err := a.tryRecv(2 * time.Second); err == nil {
			t.Errorf("%s: connection not closed", tc.name)
		}
	}
	// The proven secret replaces the live session.
	c := come("a1", protocol.CapAuth)
	c.Secret = secret
	second := connect(t, th, c, nil)
	if !second.hs.OK || second.hs.Secret != "" {
		t.Fatalf("takeover handshake %+v", second.hs)
	}
	if _, err := first.tryRecv(2 * time.Second); err == nil {
		t.Error("replaced connection still open")
	}
	s, _ := th.Session("a1")
	if s == nil || s.conn.LocalAddr() == nil {
		t.Fatal("no session after takeover")
	}
	done := second.serve()
	if _, err := th.Call(context.Background(), "a1", &protocol.Msg{Type: protocol.TypeFoo}); err != nil {
		t.Errorf("call after takeover: %v", err)
	}
	mu.Lock()
	if got := strings.Join(events, " "); got != "up down:replaced up" {
		t.Errorf("hooks %q", got)
	}
	mu.Unlock()
	// The session counts its rejection after writing it, so the count can
	// trail the client's view of the rejection by a moment.
	eventually.Within(t, 30*time.Second, "the rejections counted", func() bool {
		return th.counter(t, "agentserver_hub_handshakes_total", "reason", reasonBadSecret) == 3
	})
	// After an operator reset the agent is treated as new: a fresh secret.
	th.store.ResetSecret("a1")
	second.c.Close()
	<-done
	eventually.Within(t, 30*time.Second, "session end", func() bool { return th.Count() == 0 })
	third := connect(t, th, c, nil)
	if !third.hs.OK || third.hs.Secret == "" || third.hs.Secret == secret {
		t.Errorf("after reset: %+v", third.hs)
	}
}

func TestCallAndStream(t *testing.T) {
	th := newTestHub(t, nil)
	a := connect(t, th, come("a1"), nil)
	done := a.serve()
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := &protocol.Msg{Type: protocol.TypeFoo}
			rep, err := th.Call(ctx, "a1", msg)
			if err != nil {
				errs <- err
				return
			}
			if rep.Type != protocol.TypeBar || rep.TID != msg.TID {
				errs <- errors.New("reply " + rep.Type.String() + " tid " + rep.TID + " for " + msg.TID)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	msg := &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "true"}}
	st, err := th.Stream(ctx, "a1", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^20261124-\d{5}-[0-9a-f]{16}$`).MatchString(st.TID()) {
		t.Errorf("tid %q", st.TID())
	}
	var types []string
	for {
		m, err := st.Recv(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, m.Type.String())
	}
	if got := strings.Join(types, ","); got != "execd,exec_data,exec_done" {
		t.Errorf("stream %s", got)
	}
	st.Close()

	// type 0 → AgentError
	_, err = th.Call(ctx, "a1", &protocol.Msg{Type: protocol.TypeHMQueryCollect})
	var ae *AgentError
	if !errors.As(err, &ae) || ae.Msg != "unsupported message type 34" {
		t.Errorf("error reply: %v", err)
	}
	if _, err := th.Call(ctx, "nobody", &protocol.Msg{Type: protocol.TypeFoo}); !errors.Is(err, ErrAgentNotFound) {
		t.Errorf("unknown agent: %v", err)
	}
	// A caller-given tid that is pending is refused. The agent a2 never
	// answers, so the first request stays pending (a1 answers at once, and
	// on a busy machine before the second request is made).
	connect(t, th, come("a2"), nil)
	st2, err := th.Stream(ctx, "a2", &protocol.Msg{Type: protocol.TypeLogLsReq, TID: "dup"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := th.Stream(ctx, "a2", &protocol.Msg{Type: protocol.TypeLogLsReq, TID: "dup"}); !errors.Is(err, ErrDuplicateTID) {
		t.Errorf("duplicate tid: %v", err)
	}
	st2.Close()
	a.c.Close()
	<-done
}

func TestAgentGoneFailsPending(t *testing.T) {
	th := newTestHub(t, nil)
	var gone sync.WaitGroup
	gone.Add(1)
	th.opts.OnDisconnect = func(*Session, string) { gone.Done() }
	a := connect(t, th, come("a1"), nil)
	ctx := context.Background()
	errc := make(chan error, 2)
	go func() {
		_, err := th.Call(ctx, "a1", &protocol.Msg{Type: protocol.TypeFoo})
		errc <- err
	}()
	st, err := th.Stream(ctx, "a1", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "sleep 100"}})
	if err != nil {
		t.Fatal(err)
	}
	a.recv() // the requests reached the agent: drop mid-request
	a.recv()
	start := time.Now()
	a.c.Close()
	go func() {
		_, err := st.Recv(ctx)
		errc <- err
	}()
	for range 2 {
		select {
		case err := <-errc:
			if !errors.Is(err, ErrAgentGone) {
				t.Errorf("pending request: %v, want ErrAgentGone", err)
			}
		case <-time.After(30 * time.Second):
			// The requests have no deadline of their own: only the
			// disconnect can end them (30 s bounds a hang, not a speed).
			t.Fatal("pending request not failed within 30 s")
		}
	}
	t.Logf("failed after %v", time.Since(start))
	gone.Wait()
	if got := th.counter(t, "agentserver_hub_pending_requests"); got != 0 {
		t.Errorf("pending gauge %v", got)
	}
	if _, err := th.Call(ctx, "a1", &protocol.Msg{Type: protocol.TypeFoo}); !errors.Is(err, ErrAgentNotFound) {
		t.Errorf("after drop: %v", err)
	}
}

func TestNoWaiterLeak(t *testing.T) {
	th := newTestHub(t, nil)
	a := connect(t, th, come("a1"), nil)
	// The agent reads but never answers.
	go func() {
		for {
			if _, _, err := a.c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for i := range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		var err error
		if i%2 == 0 {
			_, err = th.Call(ctx, "a1", &protocol.Msg{Type: protocol.TypeFoo})
		} else {
			var st *Stream
			st, err = th.Stream(ctx, "a1", &protocol.Msg{Type: protocol.TypeLogLsReq})
			if err == nil {
				_, err = st.Recv(ctx)
				st.Close()
			}
		}
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	s, _ := th.Session("a1")
	s.mu.Lock()
	n := len(s.waiters)
	s.mu.Unlock()
	if n != 0 || th.counter(t, "agentserver_hub_pending_requests") != 0 {
		t.Errorf("%d waiters left, gauge %v", n, th.counter(t, "agentserver_hub_pending_requests"))
	}
}

func TestOversizedFrameClosesOnlyThatConnection(t *testing.T) {
	th := newTestHub(t, func(o *Options) { o.MaxFrame = 1024 })
	big := connect(t, th, come("big"), nil)
	ok := connect(t, th, come("ok"), nil)
	done := ok.serve()
	big.sendQuiet(&protocol.Msg{Type: protocol.TypeBar, ErrMsg: strings.Repeat("x", 2000)})
	if _, err := big.tryRecv(2 * time.Second); err == nil {
		t.Fatal("oversized frame did not close the connection")
	}
	eventually.Within(t, 30*time.Second, "disconnect counted", func() bool {
		return th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonFrameTooBig) == 1
	})
	if _, err := th.Call(context.Background(), "ok", &protocol.Msg{Type: protocol.TypeFoo}); err != nil {
		t.Errorf("other agent: %v", err)
	}
	ok.c.Close()
	<-done
}

func TestDeadPeerEviction(t *testing.T) {
	// The pinger pings 25 times per DeadAfter: a starved machine must stall
	// it for a whole second to have it evicted too.
	const deadAfter = time.Second
	th := newTestHub(t, func(o *Options) { o.DeadAfter = deadAfter })
	silent := connect(t, th, come("silent"), nil)
	pinger := connect(t, th, come("pinger"), nil)
	pongs := make(chan struct{}, 100)
	pinger.c.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
	go func() {
		for {
			if _, _, err := pinger.c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(40 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				pinger.mu.Lock()
				_ = pinger.c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second))
				pinger.mu.Unlock()
			}
		}
	}()
	if _, err := silent.tryRecv(30 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent peer not evicted: %v", err)
	}
	eventually.Within(t, 30*time.Second, "dead_peer counted", func() bool {
		return th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonDeadPeer) == 1
	})
	time.Sleep(2 * deadAfter) // two dead-peer windows: the pinger must stay
	if _, ok := th.Session("pinger"); !ok {
		t.Error("pinging peer evicted")
	}
	if len(pongs) == 0 {
		t.Error("no pong received")
	}
}

func TestSlowReaderDisconnected(t *testing.T) {
	th := newTestHub(t, func(o *Options) { o.WriteTimeout = 300 * time.Millisecond; o.SendQueue = 4 })
	connect(t, th, come("slow"), nil) // never reads again
	big := &protocol.Msg{Type: protocol.TypeError, ErrMsg: strings.Repeat("y", 256<<10)}
	start := time.Now()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = th.Send(context.Background(), "slow", big)
	}
	if !errors.Is(err, ErrAgentGone) && !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrAgentNotFound) {
		t.Fatalf("send to a peer that never reads: %v", err)
	}
	// The session leaves the table before its disconnect is counted, so
	// wait on the counter itself.
	slow := func() float64 {
		return th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonWriteTimeout) +
			th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonQueueFull)
	}
	eventually.Within(t, 30*time.Second, "slow-peer disconnect counted", func() bool { return slow() >= 1 })
	t.Logf("disconnected after %v: %v", time.Since(start), err)
	if th.Count() != 0 {
		t.Error("slow peer still connected")
	}
	if n := slow(); n != 1 {
		t.Errorf("slow-peer disconnects counted %v", n)
	}
}

func TestShutdownTellsAgents(t *testing.T) {
	th := newTestHub(t, nil)
	a := connect(t, th, come("a1"), nil)
	b, _, err := dial(t, th.url, nil) // upgraded, no come yet
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := th.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = a.tryRecv(time.Second)
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("agent got %v, want going-away close", err)
	}
	_ = b.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, err := b.ReadMessage(); err == nil {
		t.Error("pre-handshake connection still open")
	}
	_, resp, err := dial(t, th.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after shutdown: %v", err)
	}
}

func TestPushHandlers(t *testing.T) {
	th := newTestHub(t, nil)
	got := make(chan *protocol.Msg, 2)
	th.Handle(protocol.TypeAgentInfo, func(s *Session, m *protocol.Msg) {
		if s.ID() == "a1" {
			got <- m
		}
	})
	th.Handle(protocol.TypeHMAgentStatus, func(*Session, *protocol.Msg) { panic("boom") })
	a := connect(t, th, come("a1"), nil)
	a.send(&protocol.Msg{Type: protocol.TypeHMAgentStatus, Payload: &protocol.HMAgentStatus{}})
	a.send(&protocol.Msg{Type: 55}) // unknown type, no handler: dropped
	a.send(&protocol.Msg{Type: protocol.TypeAgentInfo, Payload: &protocol.AgentInfo{Version: "1.0.0"}})
	select {
	case m := <-got:
		if m.AI().Version != "1.0.0" {
			t.Errorf("push %+v", m.AI())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("push not handled")
	}
	if got := th.counter(t, "agentserver_hub_dropped_messages_total", "reason", reasonUnhandled); got != 1 {
		t.Errorf("unhandled counter %v", got)
	}
}
