package tasks

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/internal/rollout"
	"github.com/agentfleet/agent-server/internal/store"
)

// heldExec is an Executor whose commands run until released; every agent
// is an online exec-agent.
type heldExec struct {
	mu      sync.Mutex
	started []string
	release chan struct{}
}

func (x *heldExec) Online(string) (string, bool) { return ExecAgent, true }

func (x *heldExec) Start(_ context.Context, agent string, _ Command, o StartOptions) (Handle, error) {
	x.mu.Lock()
	x.started = append(x.started, agent)
	x.mu.Unlock()
	return &heldHandle{x: x, task: o.TaskID, agent: agent}, nil
}

func (x *heldExec) Kill(context.Context, string, string) error { return nil }
func (x *heldExec) Push(context.Context, string, PushFile) error {
	return nil
}

func (x *heldExec) Pull(context.Context, string, string, io.Writer, int64) (int64, error) {
	return 0, nil
}

func (x *heldExec) launched() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.started...)
}

type heldHandle struct {
	x           *heldExec
	task, agent string
}

func (h *heldHandle) TaskID() string             { return h.task }
func (h *heldHandle) Done() <-chan struct{}      { return h.x.release }
func (h *heldHandle) Changed() <-chan struct{}   { return h.x.release }
func (h *heldHandle) Kill(context.Context) error { return nil }
func (h *heldHandle) Result() store.Result {
	return store.Result{TaskID: h.task, AgentID: h.agent, State: store.ResultOK}
}
func (h *heldHandle) Wait(context.Context) (store.Result, error) { return h.Result(), nil }
func (h *heldHandle) ReadOutput(context.Context, int64, int) ([]byte, int64, error) {
	return nil, 0, nil
}

type fixedOwner struct{ o store.TaskOwner }

func (f fixedOwner) TaskOwner() store.TaskOwner { return f.o }

// ownedRun opens a SQLite store and a task service owned by member s1
// (instance i1, lease until now+lease), submits a fleet task over a0 and a1
// one at a time, and waits until a0 is launched (its command held).
func ownedRun(t *testing.T, lease time.Duration) (store.Store, *heldExec, store.TaskOwner, *Service, store.Task) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	x := &heldExec{release: make(chan struct{})}
	me := store.TaskOwner{Member: "s1", Instance: "i1", Until: time.Now().Add(lease)}
	svc, err := New(Options{Store: st, Exec: x, Owner: fixedOwner{me}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	task, err := svc.Submit(ctx, Request{Selector: Selector{IDs: []string{"a0", "a1"}}, Cmd: "true", Concurrency: rollout.Count(1)}, "test")
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "a0 launched", func() bool { return len(x.launched()) == 1 })
	return st, x, me, svc, task
}

// TestLostOwnership: a member's fleet task taken over by another member
// (its lease lapsed, say in a pause) stops on the first member at its next
// round: the agent not launched yet is neither launched nor skipped, and
// the task's state is not written; the new owner's token stands.
func TestLostOwnership(t *testing.T) {
	ctx := context.Background()
	st, x, me, svc, task := ownedRun(t, time.Second)
	ost := st.(store.TaskOwnerStore)
	if o, err := ost.TaskOwnerOf(ctx, task.ID); err != nil || o.Member != "s1" || o.Token != 1 {
		t.Fatalf("owner at creation: %+v %v", o, err)
	}
	// s1's lease has ended: s2 takes the task over.
	later := me.Until.Add(time.Millisecond)
	_, won, err := ost.TakeOverTask(ctx, store.OwnedTask{ID: task.ID, Owner: store.TaskOwner{Member: "s1", Instance: "i1", Token: 1}},
		store.TaskOwner{Member: "s2", Instance: "i2", Until: later.Add(time.Hour)}, later)
	if err != nil || !won {
		t.Fatalf("s2 takes over: %v %v", won, err)
	}
	// s1's next round: nothing to take over, its run stops.
	if n, err := svc.TakeOver(ctx); err != nil || n != 0 {
		t.Fatalf("s1's round: %d %v", n, err)
	}
	eventually.True(t, "s1's run ended", func() bool { return svc.lookup(task.ID) == nil })
	close(x.release) // a0's command ends now: s1 records nothing more
	if l := x.launched(); len(l) != 1 {
		t.Errorf("s1 launched %v after losing the task", l)
	}
	got, err := st.GetTask(ctx, task.ID)
	if err != nil || got.State != store.TaskRunning {
		t.Errorf("task after s1 lost it: %+v %v", got, err)
	}
	if r, err := st.GetResult(ctx, task.ID, "a1"); err != nil || r.State != store.ResultPending {
		t.Errorf("a1 after s1 lost the task: %+v %v", r, err)
	}
	if o, err := ost.TaskOwnerOf(ctx, task.ID); err != nil || o.Member != "s2" || o.Token != 2 {
		t.Errorf("owner: %+v %v", o, err)
	}
	// Its state writes are refused from now on.
	svc.setState(task.ID, store.TaskFailed, "late")
	if got, _ := st.GetTask(ctx, task.ID); got.State != store.TaskRunning {
		t.Errorf("s1's late state write went through: %s", got.State)
	}
}

// TestCancelledElsewhere: a task cancelled in the store by a member that
// does not own it (it saw no live owner) is stopped by its owner at its
// next round, launching nothing more; and a member taking over the tasks
// of a member whose lease ended does not resume a cancelled one.
func TestCancelledElsewhere(t *testing.T) {
	ctx := context.Background()

	// The owner's round notices the cancel.
	st, x, _, svc, task := ownedRun(t, time.Hour)
	if err := st.UpdateTaskState(ctx, task.ID, store.TaskCancelled, time.Now(), "cancelled"); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.TakeOver(ctx); err != nil || n != 0 {
		t.Fatalf("s1's round: %d %v", n, err)
	}
	close(x.release) // a0's command ends (the fake's kill waits for it)
	eventually.True(t, "s1's run ended", func() bool { return svc.lookup(task.ID) == nil })
	if l := x.launched(); len(l) != 1 {
		t.Errorf("s1 launched %v after the cancel", l)
	}
	if got, err := st.GetTask(ctx, task.ID); err != nil || got.State != store.TaskCancelled {
		t.Errorf("task after the cancel: %+v %v", got, err)
	}

	// Two tasks of s0, whose lease has ended; one is cancelled meanwhile.
	xOld := &heldExec{release: make(chan struct{})}
	old, err := New(Options{Store: st, Exec: xOld, Owner: fixedOwner{store.TaskOwner{Member: "s0", Instance: "i0", Until: time.Now()}}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req := func(ids ...string) Request {
		return Request{Selector: Selector{IDs: ids}, Cmd: "true", Concurrency: rollout.Count(1)}
	}
	cancelled, err := old.Submit(ctx, req("c0", "c1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	running, err := old.Submit(ctx, req("r0", "r1"), "test")
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "c0 and r0 launched by s0", func() bool { return len(xOld.launched()) == 2 })
	old.Close() // stops its runs, writing nothing: both stay running
	close(xOld.release)
	if err := st.UpdateTaskState(ctx, cancelled.ID, store.TaskCancelled, time.Now(), "cancelled"); err != nil {
		t.Fatal(err)
	}
	x2 := &heldExec{release: make(chan struct{})}
	defer close(x2.release)
	svc2, err := New(Options{Store: st, Exec: x2, Owner: fixedOwner{store.TaskOwner{Member: "s2", Instance: "i2", Until: time.Now().Add(time.Hour)}}, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	if n, err := svc2.TakeOver(ctx); err != nil || n != 1 {
		t.Fatalf("s2's round: took over %d, want 1 (%v)", n, err)
	}
	if svc2.lookup(cancelled.ID) != nil || svc2.lookup(running.ID) == nil {
		t.Errorf("s2 runs the cancelled task (%v) or not the running one (%v)", svc2.lookup(cancelled.ID) != nil, svc2.lookup(running.ID) != nil)
	}
	if got, err := st.GetTask(ctx, cancelled.ID); err != nil || got.State != store.TaskCancelled {
		t.Errorf("the cancelled task after the takeover: %+v %v", got, err)
	}
}
