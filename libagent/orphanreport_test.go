package libagent_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"
)

// A message for a task no handler owns (a restarted agent reporting on its
// predecessor's tasks), sent after WaitConnected through Replier, is
// journaled: the server receives it with a seq, under the task's tid.
func TestReplierAfterWaitConnected(t *testing.T) {
	srv := agenttest.New(t, agenttest.Options{})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	startAgent(t, srv.Addr(), agentSpec{setup: func(rt *libagent.Runtime) error {
		if rt.Connected() {
			t.Error("connected during Setup")
		}
		ctx := rt.Context() // read here: Run sets it again after Setup
		wg.Go(func() {
			if err := rt.WaitConnected(ctx); err != nil {
				return
			}
			err := rt.Replier("old-task").ReplyReliable(ctx, &protocol.Msg{Type: protocol.TypeExecDone, Payload: &protocol.ExecDone{
				Code: protocol.CodeKilled, Time: time.Now(), Msg: "agent restarted: command killed (pid 7)", Restarted: true}})
			if err != nil {
				t.Errorf("ReplyReliable: %v", err)
			}
		})
		return nil
	}})
	m, err := srv.Await(timeout(t, 10*time.Second), "old-task")
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != protocol.TypeExecDone || m.Seq == 0 || m.ExecDone().Msg != "agent restarted: command killed (pid 7)" || !m.ExecDone().Restarted || m.ExecDone().Code != 137 {
		t.Fatalf("got %+v %+v, want a journaled exec_done with the msg", m, m.ExecDone())
	}
}

// WaitConnected returns the context's error when no connection comes.
func TestWaitConnectedCancelled(t *testing.T) {
	r := startAgent(t, "127.0.0.1:1", agentSpec{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.rt.WaitConnected(ctx); err == nil {
		t.Fatal("WaitConnected without a server returned nil")
	}
}
