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

// The action log read as output holds each position once, in position
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

// The output a Run streams is, byte for byte, the log RenderLog makes of
// the stored actions: an action that arrives before a lower position
// waits for it, and at the end actions after a gap that never filled are
// shown in order. A client that saw a prefix in the event stream reads
// the rest of RenderLog's from there (the output route).
func TestRunOutputIsRenderLog(t *testing.T) {
	acts := []protocol.InstallAction{
		{N: 0, Action: "download", Name: "https://x/a.tar.gz", Time: 1, OK: true},
		{N: 1, Action: "install", Name: "https://x/a.tar.gz", Time: 2, OK: true},
		{N: 2, Action: "file", Name: "/opt/a/\u00e9t\u00e9 \"q\".txt", Time: 3, OK: true},
		{N: 4, Action: "done", Name: "", Time: 4, OK: false, Msg: "exit code 1: <no>"},
	}
	stored := func(as ...protocol.InstallAction) []store.InstallAction {
		var out []store.InstallAction
		for _, a := range as {
			out = append(out, store.InstallAction{TaskID: "t", AgentID: "a", N: a.N, Action: a.Action, Name: a.Name, Time: a.Time, OK: a.OK, Msg: a.Msg})
		}
		return out
	}
	read := func(r *Run) string {
		b, _, _ := r.ReadOutput(context.Background(), 0, 1<<20)
		return string(b)
	}
	r := &Run{changed: make(chan struct{}), done: make(chan struct{})}
	r.add([]protocol.InstallAction{acts[1]}) // before 0: waits
	if got := read(r); got != "" {
		t.Fatalf("action 1 shown before action 0: %q", got)
	}
	ch := r.Changed()
	r.add([]protocol.InstallAction{acts[0]})
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed when the log grew")
	}
	if got, want := read(r), string(RenderLog(stored(acts[0], acts[1]))); got != want {
		t.Fatalf("after 1, 0:\n got %q\nwant %q", got, want)
	}
	r.add([]protocol.InstallAction{acts[3], acts[0]}) // 4 after a gap (3 never comes), 0 again
	r.add([]protocol.InstallAction{acts[2]})
	if got, want := read(r), string(RenderLog(stored(acts[:3]...))); got != want {
		t.Fatalf("before the end:\n got %q\nwant %q", got, want)
	}
	r.end(store.Result{State: store.ResultFailed})
	got, want := read(r), string(RenderLog(stored(acts...)))
	if got != want {
		t.Fatalf("at the end:\n got %q\nwant %q", got, want)
	}
	if strings.Count(got, "\n") != len(acts) || !strings.HasPrefix(got, `{"n":0,"action":"download",`) {
		t.Errorf("log: %q", got)
	}
	r.add([]protocol.InstallAction{{N: 3, Action: "file", Name: "late"}}) // after the end: not shown
	if read(r) != want {
		t.Errorf("an action after the end changed the output: %q", read(r))
	}
}
