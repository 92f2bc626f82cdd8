package installsvc

import (
	"context"
	"strings"
	"testing"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/store"
)

func TestOutcome(t *testing.T) {
	dl := protocol.InstallAction{N: 0, Action: protocol.InstallActDownload, Name: "u", Time: 100, OK: true}
	for _, tc := range []struct {
		name      string
		acts      []protocol.InstallAction
		restarted bool
		state     store.ResultState
		code      int
		msg       string
	}{
		{"ok", []protocol.InstallAction{dl, {N: 1, Action: "done", Time: 105, OK: true}}, false, store.ResultOK, 0, ""},
		{"failed", []protocol.InstallAction{dl, {N: 1, Action: "done", Time: 105, Msg: "exit code 1: x"}}, false, store.ResultFailed, 1, "exit code 1: x"},
		{"interrupted", []protocol.InstallAction{dl, {N: 1, Action: "done", Time: 105, Msg: "interrupted: …"}}, true, store.ResultFailed, 1, "agent restarted: interrupted: …"},
		{"no done", []protocol.InstallAction{dl}, false, store.ResultFailed, 1, "the agent reported no done action"},
	} {
		res := outcome(store.Result{TaskID: "t", AgentID: "a", State: store.ResultRunning}, tc.acts, tc.restarted)
		if res.State != tc.state || res.ExitCode != tc.code || res.Msg != tc.msg || res.EndedAt.IsZero() {
			t.Errorf("%s: %+v", tc.name, res)
		}
	}
}

// The action log read as output holds each position once, in arrival
// order, whatever is replayed.
func TestRunOutput(t *testing.T) {
	r := &Run{changed: make(chan struct{}), done: make(chan struct{})}
	ch := r.Changed()
	a0 := protocol.InstallAction{N: 0, Action: "download", Name: "u", Time: 1, OK: true}
	a1 := protocol.InstallAction{N: 1, Action: "done", Name: "t", Time: 2, OK: true}
	r.add([]protocol.InstallAction{a0})
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by an action")
	}
	r.add([]protocol.InstallAction{a0, a1}) // install_done replays a0
	b, next, err := r.ReadOutput(context.Background(), 0, 1<<20)
	if err != nil || next != int64(len(b)) || strings.Count(string(b), "\n") != 2 || !strings.Contains(string(b), `"action":"done"`) {
		t.Fatalf("output %q next %d err %v", b, next, err)
	}
	if part, n2, _ := r.ReadOutput(context.Background(), 5, 10); len(part) != 10 || n2 != 15 {
		t.Errorf("partial read: %q %d", part, n2)
	}
	r.end(store.Result{State: store.ResultOK})
	r.end(store.Result{State: store.ResultFailed}) // the first end wins
	if res, err := r.Wait(context.Background()); err != nil || res.State != store.ResultOK {
		t.Errorf("wait: %+v %v", res, err)
	}
	if err := r.Kill(context.Background()); err == nil {
		t.Error("Kill of an install succeeded")
	}
}
