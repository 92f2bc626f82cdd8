package remote

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/log-agent/internal/batch"
)

// loop is a session whose server answers every log_batch through answer.
type loop struct {
	s         *Sink
	connected atomic.Bool
	answer    func(lb *protocol.LogBatch) *protocol.LogAck // nil: no answer
	mu        sync.Mutex
	sent      []uint64
}

func (l *loop) HasCap(c string) bool { return c == protocol.CapLog && l.connected.Load() }
func (l *loop) Connected() bool      { return l.connected.Load() }
func (l *loop) Push(_ context.Context, m *protocol.Msg) error {
	var lb protocol.LogBatch
	if err := m.GetExtra(protocol.KeyLogBatch, &lb); err != nil {
		return err
	}
	l.mu.Lock()
	l.sent = append(l.sent, lb.Seq)
	l.mu.Unlock()
	if a := l.answer(&lb); a != nil {
		ack := &protocol.Msg{Type: protocol.TypeLogAck, TID: m.TID}
		if err := ack.SetExtra(protocol.KeyLogAck, a); err != nil {
			return err
		}
		go func() { _ = l.s.Ack(ack) }()
	}
	return nil
}

func batches(n int) []*batch.Batch {
	out := make([]*batch.Batch, n)
	for i := range out {
		out[i] = &batch.Batch{Project: "p", Seq: uint64(i + 1), Lines: 1, Sources: []batch.Source{{ID: "s", Name: "/x", End: 1}}, Data: []byte{1}}
	}
	return out
}

func TestShip(t *testing.T) {
	ok := func(lb *protocol.LogBatch) *protocol.LogAck {
		return &protocol.LogAck{Project: lb.Project, Seq: lb.Seq, OK: true, Stored: 1}
	}
	cases := []struct {
		name      string
		answer    func(*protocol.LogBatch) *protocol.LogAck
		connected bool
		dropAfter time.Duration // disconnect after this long (0: never)
		acked     int
		err       string
	}{
		{"all acked", ok, true, 0, 5, ""},
		{"refused third", func(lb *protocol.LogBatch) *protocol.LogAck {
			if lb.Seq == 3 {
				return &protocol.LogAck{Project: lb.Project, Seq: lb.Seq, Err: "disk full"}
			}
			return ok(lb)
		}, true, 0, 2, "disk full"},
		{"wrong ack", func(lb *protocol.LogBatch) *protocol.LogAck {
			return &protocol.LogAck{Project: lb.Project, Seq: lb.Seq + 1, OK: true}
		}, true, 0, 0, "answers batch"},
		{"not connected", ok, false, 0, 0, "log.v1"},
		{"connection lost", func(lb *protocol.LogBatch) *protocol.LogAck {
			if lb.Seq > 2 {
				return nil
			}
			return ok(lb)
		}, true, 50 * time.Millisecond, 2, "connection lost"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &loop{answer: c.answer}
			l.connected.Store(c.connected)
			l.s = New(l, time.Minute)
			if c.dropAfter > 0 {
				time.AfterFunc(c.dropAfter, func() { l.connected.Store(false) })
			}
			n, err := l.s.Ship(context.Background(), batches(5))
			if n != c.acked || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("acked %d err %v, want %d and %q", n, err, c.acked, c.err)
			}
			l.s.mu.Lock()
			left := len(l.s.waiting)
			l.s.mu.Unlock()
			if left != 0 {
				t.Fatalf("%d waiters left behind", left)
			}
		})
	}
}
