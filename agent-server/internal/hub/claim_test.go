package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/libagent/protocol"
)

// Options.Claim runs in the handshake with what the agent proved: its
// token is kept with the session; ErrHeldElsewhere refuses the agent with
// "agent id conflict" and another error with "server error", leaving no
// session behind either way.
func TestClaim(t *testing.T) {
	var mu sync.Mutex
	verdict := map[string]error{"held": fmt.Errorf("%w: s2 holds it", ErrHeldElsewhere), "broken": errors.New("store down")}
	proven := map[string]bool{}
	th := newTestHub(t, func(o *Options) {
		o.Claim = func(_ context.Context, s *Session, p bool) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			proven[s.ID()] = p
			return 41, verdict[s.ID()]
		}
	})
	a := connect(t, th, come("ok-1", protocol.CapAuth), nil)
	if !a.hs.OK {
		t.Fatalf("ok-1: %+v", a.hs)
	}
	if s, ok := th.Session("ok-1"); !ok || s.ClaimToken() != 41 {
		t.Fatalf("ok-1: session %v, token %v", ok, s)
	}
	for id, msg := range map[string]string{"held": protocol.MsgIDConflict, "broken": "server error"} {
		b := connect(t, th, come(id, protocol.CapAuth), nil)
		if b.hs.OK || b.hs.Msg != msg {
			t.Errorf("%s: handshake %+v, want %q", id, b.hs, msg)
		}
		if _, ok := th.Session(id); ok {
			t.Errorf("%s: a refused session stayed registered", id)
		}
	}
	// A reconnect proving the secret it was issued says so.
	a.c.Close()
	eventually.Within(t, 30*time.Second, "ok-1 gone", func() bool { _, ok := th.Session("ok-1"); return !ok })
	c := come("ok-1", protocol.CapAuth)
	c.Secret = a.hs.Secret
	if again := connect(t, th, c, nil); !again.hs.OK {
		t.Fatalf("reconnect: %+v", again.hs)
	}
	mu.Lock()
	defer mu.Unlock()
	if !proven["ok-1"] || proven["held"] {
		t.Errorf("proven: %v", proven)
	}
}
