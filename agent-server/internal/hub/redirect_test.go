package hub

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/libagent/protocol"
)

// Options.Redirect answers come with ok:false, msg "redirect" and the
// list, closes with 1001 and registers nothing; Session.Drain sends a
// registered agent away with 1001.
func TestRedirectAndDrain(t *testing.T) {
	var to atomic.Pointer[[]string]
	var asked atomic.Value
	th := newTestHub(t, func(o *Options) {
		o.Redirect = func(agent string) []string {
			asked.Store(agent)
			if p := to.Load(); p != nil {
				return *p
			}
			return nil
		}
	})
	a := connect(t, th, come("a-1", protocol.CapAuth), nil)
	if !a.hs.OK || a.hs.Redirect != nil {
		t.Fatalf("kept: %+v", a.hs)
	}
	list := []string{"10.0.0.2:13081"}
	to.Store(&list)
	b := connect(t, th, come("a-2", protocol.CapAuth), nil)
	if b.hs.OK || b.hs.Msg != MsgRedirect || !slices.Equal(b.hs.Redirect, list) || b.hs.ID != "a-2" {
		t.Fatalf("redirected handshake: %+v", b.hs)
	}
	if got := asked.Load(); got != "a-2" {
		t.Errorf("Redirect asked for %v, want a-2", got)
	}
	_ = b.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := b.c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after the redirect: %v, want close 1001", err)
	}
	if _, ok := th.Session("a-2"); ok {
		t.Error("a redirected agent was registered")
	}
	// Counted once the connection's goroutine is done with it, which may be
	// after the client read the close.
	eventually.True(t, "the redirect counted", func() bool {
		return th.counter(t, "agentserver_hub_handshakes_total", "reason", reasonRedirected) == 1
	})
	s, ok := th.Session("a-1")
	if !ok {
		t.Fatal("a-1 not registered")
	}
	s.Drain()
	_ = a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := a.c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("a-1 after Drain: %v, want close 1001", err)
	}
	eventually.Within(t, 30*time.Second, "a-1 gone", func() bool { _, ok := th.Session("a-1"); return !ok })
	if got := th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonDraining); got != 1 {
		t.Errorf("draining disconnects = %v", got)
	}
}
