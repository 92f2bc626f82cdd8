package execsvc

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"

	"github.com/agentfleet/jkframe/eventually"
)

// countingStore counts PutResults and PutResultsStates calls that carry
// outcomes (a final state: what the group commit batches) and can hold or
// fail them. The row a Run stores before sending the exec (state running)
// passes straight through.
type countingStore struct {
	store.Store
	puts atomic.Int64 // writes of final results (PutResults, PutResultsStates)
	rows atomic.Int64
	// combined counts PutResultsStates calls.
	combined atomic.Int64
	gate     chan struct{} // when set, PutResults waits for it to close
	fails    atomic.Int64  // the next n PutResults calls fail
	// lost: the next n output appends are stored but report a transient
	// error (a commit whose answer was lost).
	lost atomic.Int64
}

func (c *countingStore) AppendOutputAt(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error) {
	n, err := c.Store.AppendOutputAt(ctx, taskID, agentID, off, p)
	if err == nil && c.lost.Add(-1) >= 0 {
		return 0, errFlaky
	}
	return n, err
}

var errFlaky = errors.New("flaky store")

func (c *countingStore) PutResults(ctx context.Context, rs []store.Result) error {
	if err := c.outcomes(rs); err != nil {
		return err
	}
	return c.Store.PutResults(ctx, rs)
}

// PutResultsStates is the group commit's write of finished execs: counted,
// held and failed like PutResults.
func (c *countingStore) PutResultsStates(ctx context.Context, rs []store.Result, cs []store.TaskStateChange) error {
	c.combined.Add(1)
	if err := c.outcomes(rs); err != nil {
		return err
	}
	return c.Store.PutResultsStates(ctx, rs, cs)
}

// outcomes counts, holds or fails a write of rs when one of them is final.
func (c *countingStore) outcomes(rs []store.Result) error {
	if !slices.ContainsFunc(rs, func(r store.Result) bool { return r.State.Final() }) {
		return nil
	}
	c.puts.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	if c.fails.Add(-1) >= 0 {
		return errFlaky
	}
	c.rows.Add(int64(len(rs)))
	return nil
}

// testSvc is a Service on a real hub (loopback WebSocket) and SQLite store.
type testSvc struct {
	*Service
	st  *countingStore
	url string
}

func newTestSvc(t *testing.T, gate chan struct{}, mods ...func(*Options)) *testSvc {
	t.Helper()
	ctx := context.Background()
	raw, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: raw, gate: gate}
	// The test agent speaks plain v1, admitted only with AllowLegacy.
	h, err := hub.New(hub.Options{ExtraCaps: Caps, WriteTimeout: 2 * time.Second, AllowLegacy: true})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Hub: h, Store: cs, CacheDir: t.TempDir()}
	for _, mod := range mods {
		mod(&o)
	}
	svc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
		svc.Close()
		if err := raw.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return &testSvc{Service: svc, st: cs, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// connectTrue connects an agent that answers every exec with execd and
// exit code 0, and waits until the hub has its session.
func (ts *testSvc) connectTrue(t *testing.T, id string) {
	t.Helper()
	come := &protocol.Come{ID: id, Name: id, Version: "1.0.0", OS: "linux", Arch: "amd64"}
	ts.dialAgent(t, come, func(a *scriptAgent, m *protocol.Msg) {
		now := time.Now()
		a.sendQuiet(&protocol.Msg{Type: protocol.TypeExecd, TID: m.TID, Payload: &protocol.Execd{OK: true, Pid: 7, Time: now}})
		a.sendQuiet(&protocol.Msg{Type: protocol.TypeExecDone, TID: m.TID, Payload: &protocol.ExecDone{Code: 0, Time: now}})
	})
}

// runTrue starts n runs of `true` on agent.
func (ts *testSvc) runTrue(t *testing.T, agent string, n int) []*Exec {
	t.Helper()
	var execs []*Exec
	for range n {
		e, err := ts.Run(context.Background(), agent, Spec{Cmd: "true"}, RunOptions{})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		execs = append(execs, e)
	}
	return execs
}

// waitOutcomes waits until the outcome of every exec is known (isDone:
// decided, not necessarily stored).
func waitOutcomes(t *testing.T, execs []*Exec) {
	t.Helper()
	eventually.True(t, "all outcomes", func() bool {
		return !slices.ContainsFunc(execs, func(e *Exec) bool { return !e.isDone() })
	})
}

// TestGroupCommit: many concurrent execs reach the store in a few
// PutResults calls, and each Done closes only once its final result and
// task state are stored.
func TestGroupCommit(t *testing.T) {
	const agents, perAgent = 10, 20
	gate := make(chan struct{})
	ts := newTestSvc(t, gate)
	for i := range agents {
		ts.connectTrue(t, fmt.Sprintf("a%d", i))
	}
	ctx := context.Background()
	var execs []*Exec
	for i := range agents {
		execs = append(execs, ts.runTrue(t, fmt.Sprintf("a%d", i), perAgent)...)
	}
	// Every outcome is known while the store is held: none may be Done.
	waitOutcomes(t, execs)
	for _, e := range execs {
		select {
		case <-e.Done():
			t.Fatalf("task %s done before its result was stored", e.TaskID())
		default:
		}
	}
	close(gate)
	for _, e := range execs {
		<-e.Done()
		r, err := ts.st.GetResult(ctx, e.TaskID(), e.AgentID())
		if err != nil || r.State != store.ResultOK || r.PID != 7 {
			t.Fatalf("stored result of %s: %+v, %v", e.TaskID(), r, err)
		}
		task, err := ts.st.GetTask(ctx, e.TaskID())
		if err != nil || task.State != store.TaskDone {
			t.Fatalf("stored task %s: %s, %v", e.TaskID(), task.State, err)
		}
	}
	n, puts := int64(len(execs)), ts.st.puts.Load()
	t.Logf("%d execs stored with %d PutResults calls (%d rows)", n, puts, ts.st.rows.Load())
	if puts > 5 || puts*10 > n {
		t.Errorf("%d PutResults calls for %d execs, want a handful", puts, n)
	}
	if c := ts.st.combined.Load(); c == 0 || c > puts {
		t.Errorf("%d PutResultsStates calls of %d writes, want results and task states stored together", c, puts)
	}
}

// TestGroupCommitRetry: a failed result write is retried, and Done does not
// wait for the retry (the outcome is known).
func TestGroupCommitRetry(t *testing.T) {
	ts := newTestSvc(t, nil)
	ts.connectTrue(t, "a0")
	ts.st.fails.Store(3)
	ctx := context.Background()
	e, err := ts.Run(ctx, "a0", Spec{Cmd: "true"}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if r, err := e.Wait(wctx); err != nil || r.State != store.ResultOK {
		t.Fatalf("wait: %+v, %v", r, err)
	}
	eventually.True(t, "the retried result", func() bool {
		r, err := ts.st.GetResult(ctx, e.TaskID(), e.AgentID())
		return err == nil && r.State == store.ResultOK
	})
	if ts.st.puts.Load() < 4 {
		t.Errorf("%d PutResults calls, want the 3 failures and a success", ts.st.puts.Load())
	}
}

// TestGroupCommitDeletedTask: a task deleted under a running exec fails
// its own row, not the rest of the batch.
func TestGroupCommitDeletedTask(t *testing.T) {
	gate := make(chan struct{})
	ts := newTestSvc(t, gate)
	ts.connectTrue(t, "a0")
	ctx := context.Background()
	execs := ts.runTrue(t, "a0", 5)
	waitOutcomes(t, execs)
	if err := ts.st.DeleteTask(ctx, execs[2].TaskID()); err != nil {
		t.Fatal(err)
	}
	close(gate)
	for i, e := range execs {
		<-e.Done()
		r, err := ts.st.GetResult(ctx, e.TaskID(), e.AgentID())
		switch {
		case i == 2 && !errors.Is(err, store.ErrNotFound):
			t.Errorf("deleted task %s: result %+v, %v", e.TaskID(), r, err)
		case i != 2 && (err != nil || r.State != store.ResultOK):
			t.Errorf("task %s: result %+v, %v", e.TaskID(), r, err)
		}
	}
	err := ts.Service.env.commit.flushWait(execs[0])
	if err != nil {
		t.Errorf("flush after the batch: %v", err)
	}
}

// An own exec's result row is in the store before Run returns (before the
// exec reaches the agent): a server that dies before the next group commit
// still finds it when the agent replays its journal, and adopts the task.
func TestRunStoresResultBeforeSending(t *testing.T) {
	gate := make(chan struct{}) // holds every outcome write: only Run's own write can land
	ts := newTestSvc(t, gate)
	defer close(gate)
	ts.connectTrue(t, "a0")
	e, err := ts.Run(context.Background(), "a0", Spec{Cmd: "true"}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.st.Store.GetResult(context.Background(), e.TaskID(), "a0")
	if err != nil {
		t.Fatalf("result row right after Run: %v", err)
	}
	if res.AgentID != "a0" || res.State != store.ResultRunning {
		t.Fatalf("result row right after Run: %+v, want a0 running", res)
	}
}
