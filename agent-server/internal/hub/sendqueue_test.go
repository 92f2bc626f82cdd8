package hub

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

// The send queue is bounded by messages and by bytes; either bound, reached
// and held past WriteTimeout, refuses the send with ErrQueueFull and
// disconnects the agent (reason queue_full), counted by the bound reached.
// The writer is held back by OnConnect (the handshake reply, and so the
// writer, waits for it), so the queue fills without racing the socket.
func TestSendQueueBounds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		messages  int   // Options.SendQueue
		bytes     int64 // Options.SendQueueBytes
		frame     int   // payload size of each send
		fits      int   // sends that find room (besides the queued handshake)
		wantLimit string
	}{
		{"large frames hit the byte bound", 256, 1 << 20, 300 << 10, 3, limitBytes},
		{"small frames hit the message bound", 4, 1 << 20, 100, 3, limitMessages},
		{"message bound first with large frames", 3, 64 << 20, 1 << 20, 2, limitMessages},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			th := newTestHub(t, func(o *Options) {
				o.WriteTimeout = 300 * time.Millisecond
				o.SendQueue = tc.messages
				o.SendQueueBytes = tc.bytes
				o.OnConnect = func(*Session) { <-release }
			})
			released := false
			defer func() {
				if !released {
					close(release)
				}
			}()
			c, _, err := dial(t, th.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			a := &agent{t: t, c: c}
			a.send(&protocol.Msg{Type: protocol.TypeCome, Payload: come("q")})
			eventually.Within(t, 30*time.Second, "session registered", func() bool { _, ok := th.Session("q"); return ok })

			msg := &protocol.Msg{Type: protocol.TypeError, ErrMsg: strings.Repeat("y", tc.frame)}
			for i := range tc.fits {
				if err := th.Send(context.Background(), "q", msg); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			if got := th.counter(t, "agentserver_hub_send_queue_bytes"); got < float64(tc.fits*tc.frame) {
				t.Errorf("queued bytes gauge %v, want at least %d", got, tc.fits*tc.frame)
			}
			err = th.Send(context.Background(), "q", msg)
			if !errors.Is(err, ErrQueueFull) {
				t.Fatalf("send over the bound: %v, want ErrQueueFull", err)
			}
			for _, l := range []string{limitBytes, limitMessages} {
				want := 0.0
				if l == tc.wantLimit {
					want = 1
				}
				if got := th.counter(t, "agentserver_hub_send_queue_full_total", "limit", l); got != want {
					t.Errorf("send_queue_full_total{limit=%s} = %v, want %v", l, got, want)
				}
			}
			if got := th.counter(t, "agentserver_hub_dropped_messages_total", "reason", reasonQueueFull); got != 1 {
				t.Errorf("dropped{queue_full} = %v, want 1", got)
			}
			close(release)
			released = true
			eventually.Within(t, 30*time.Second, "session end", func() bool { return th.Count() == 0 })
			eventually.Within(t, 30*time.Second, "queue bytes back to 0", func() bool {
				return th.counter(t, "agentserver_hub_send_queue_bytes") == 0
			})
			// The disconnect is counted after the session leaves the table.
			eventually.Within(t, 30*time.Second, "disconnect counted", func() bool {
				return th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonQueueFull) >= 1
			})
			if got := th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonQueueFull); got != 1 {
				t.Errorf("disconnects{queue_full} = %v, want 1", got)
			}
		})
	}
}

// A frame larger than the byte bound still goes out through an empty queue,
// and the gauge returns to zero once it is written.
func TestSendQueueTakesOneOversizedFrame(t *testing.T) {
	th := newTestHub(t, func(o *Options) { o.SendQueueBytes = 64 << 10 })
	a := connect(t, th, come("big"), nil)
	payload := strings.Repeat("z", 1<<20)
	for range 3 {
		if err := th.Send(context.Background(), "big", &protocol.Msg{Type: protocol.TypeError, ErrMsg: payload}); err != nil {
			t.Fatal(err)
		}
		m := a.recv()
		if m.ErrMsg != payload {
			t.Fatalf("got a %d-byte error message, want %d bytes", len(m.ErrMsg), len(payload))
		}
	}
	eventually.Within(t, 30*time.Second, "queue bytes back to 0", func() bool {
		return th.counter(t, "agentserver_hub_send_queue_bytes") == 0
	})
	if got := th.counter(t, "agentserver_hub_send_queue_full_total", "limit", limitBytes); got != 0 {
		t.Errorf("send_queue_full_total{limit=bytes} = %v, want 0", got)
	}
}
