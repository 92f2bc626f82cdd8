package hub

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/jkframe/eventually"
)

func TestJournalAckDedupReplay(t *testing.T) {
	th := newTestHub(t, nil)
	var mu sync.Mutex
	var stored []uint64
	fail := false
	th.HandleJournal(func(s *Session, m *protocol.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("disk full")
		}
		if s.Journal() != "j1" {
			t.Errorf("journal %q", s.Journal())
		}
		stored = append(stored, m.Seq)
		return nil
	})
	c := come("a1", protocol.CapAck)
	c.Journal = "j1"
	a := connect(t, th, c, nil)
	if a.hs.Ack != 0 || !a.hs.OK {
		t.Fatalf("handshake %+v", a.hs)
	}
	ctx := context.Background()
	st, err := th.Stream(ctx, "a1", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	req := a.recv()
	now := time.Now()
	a.send(&protocol.Msg{Type: protocol.TypeExecd, TID: req.TID, Seq: 1, Payload: &protocol.Execd{OK: true, Time: now}})
	a.send(&protocol.Msg{Type: protocol.TypeExecData, TID: req.TID, Seq: 2, Payload: &protocol.ExecData{Data: "eA=="}})
	a.send(&protocol.Msg{Type: protocol.TypeExecData, TID: req.TID, Seq: 2, Payload: &protocol.ExecData{Data: "eA=="}}) // duplicate
	a.send(&protocol.Msg{Type: protocol.TypeExecDone, TID: req.TID, Seq: 3, Payload: &protocol.ExecDone{Time: now}})
	n := 0
	for {
		_, err := st.Recv(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("stream got %d messages, want 3 (duplicate dropped)", n)
	}
	// exec_done is acked at once, cumulatively.
	if m := a.recv(); m.Type != protocol.TypeAck || m.Ack().Seq != 3 {
		t.Fatalf("got %+v, want ack 3", m)
	}
	if got := th.counter(t, "agentserver_hub_dropped_messages_total", "reason", reasonDuplicate); got != 1 {
		t.Errorf("duplicates counted %v", got)
	}
	// A replayed message without a waiter goes to the journal handler and
	// is acked after AckDelay; a gap is accepted and counted.
	a.send(&protocol.Msg{Type: protocol.TypeExecData, TID: "old", Seq: 5, Payload: &protocol.ExecData{Data: "eQ=="}})
	if m := a.recv(); m.Type != protocol.TypeAck || m.Ack().Seq != 5 {
		t.Fatalf("got %+v, want ack 5", m)
	}
	mu.Lock()
	if len(stored) != 1 || stored[0] != 5 {
		t.Errorf("journal handler got %v", stored)
	}
	mu.Unlock()
	if th.counter(t, "agentserver_hub_journal_gaps_total") != 1 {
		t.Error("gap not counted")
	}

	// Reconnect: handshake.ack is the persisted high-water mark.
	a.c.Close()
	eventually.Within(t, 30*time.Second, "disconnect", func() bool { return th.Count() == 0 })
	b := connect(t, th, c, nil)
	if b.hs.Ack != 5 {
		t.Errorf("handshake.ack after reconnect = %d, want 5", b.hs.Ack)
	}
	// A message the server cannot store closes the connection (to be replayed).
	mu.Lock()
	fail = true
	mu.Unlock()
	b.send(&protocol.Msg{Type: protocol.TypeExecDone, TID: "old", Seq: 6, Payload: &protocol.ExecDone{Time: now}})
	if _, err := b.tryRecv(2 * time.Second); err == nil {
		t.Fatal("connection kept after journal handler error")
	}
	eventually.Within(t, 30*time.Second, "journal_error counted", func() bool {
		return th.counter(t, "agentserver_hub_disconnects_total", "reason", reasonJournal) == 1
	})
	if ack, _ := th.store.JournalAck(ctx, "a1", "j1"); ack != 5 {
		t.Errorf("persisted ack %d, want 5", ack)
	}
}
