package hub

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/libagent/protocol"
)

// Options.Admit refuses upgrades with 503 and Retry-After while it says
// so; Session.LeaseLost tells the agent to go away (1001) and ends it.
func TestAdmitAndLeaseLost(t *testing.T) {
	var refuse atomic.Bool
	th := newTestHub(t, func(o *Options) {
		o.Admit = func() error {
			if refuse.Load() {
				return errors.New("lease ended")
			}
			return nil
		}
	})
	a := connect(t, th, come("a-1", protocol.CapAuth), nil)
	if !a.hs.OK {
		t.Fatalf("admitted: %+v", a.hs)
	}
	refuse.Store(true)
	_, resp, err := dial(t, th.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refused dial: err %v, resp %+v; want 503 with Retry-After", err, resp)
	}
	if got := th.counter(t, "agentserver_hub_handshakes_total", "reason", reasonNotAdmitted); got != 1 {
		t.Errorf("not_admitted counter = %v", got)
	}
	s, ok := th.Session("a-1")
	if !ok {
		t.Fatal("a-1 not registered")
	}
	s.LeaseLost()
	_ = a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = a.c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("a-1 after LeaseLost: %v, want close 1001", err)
	}
	eventually.Within(t, 30*time.Second, "a-1 gone", func() bool { _, ok := th.Session("a-1"); return !ok })
	if got := th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonLeaseLost); got != 1 {
		t.Errorf("lease_lost disconnects = %v", got)
	}
	refuse.Store(false)
	if b := connect(t, th, come("a-2", protocol.CapAuth), nil); !b.hs.OK {
		t.Fatalf("admitted again: %+v", b.hs)
	}
}
