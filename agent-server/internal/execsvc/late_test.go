package execsvc

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/store"

	"github.com/agentfleet/jkframe/eventually"
)

// scriptAgent is an agent the test drives message by message: it forwards
// the execs it receives and sends what the test tells it to.
type scriptAgent struct {
	t     *testing.T
	mu    sync.Mutex
	c     *websocket.Conn
	execs chan *protocol.Msg
}

func (ts *testSvc) connectScript(t *testing.T, id string, caps ...string) *scriptAgent {
	t.Helper()
	come := &protocol.Come{ID: id, Name: "exec-agent", Version: "1.5.0", OS: "linux", Arch: "amd64", Caps: caps}
	return ts.dialAgent(t, come, func(a *scriptAgent, m *protocol.Msg) { a.execs <- m })
}

// dialAgent connects a plain v1 agent that says come and passes every
// exec it receives to onExec (on its reading goroutine), and waits until
// the hub has its session. It is closed at the end of the test.
func (ts *testSvc) dialAgent(t *testing.T, come *protocol.Come, onExec func(a *scriptAgent, m *protocol.Msg)) *scriptAgent {
	t.Helper()
	c, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(ts.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	a := &scriptAgent{t: t, c: c, execs: make(chan *protocol.Msg, 16)}
	a.send(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypeExec {
				onExec(a, m)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	eventually.True(t, "session of "+come.ID, func() bool { _, ok := ts.hub.Session(come.ID); return ok })
	return a
}

// send sends m; a failure fails the test.
func (a *scriptAgent) send(m *protocol.Msg) {
	if err := a.write(m); err != nil {
		a.t.Errorf("send: %v", err)
	}
}

// sendQuiet is send for the agent's own goroutine: a write error (the
// connection is closing) is not the test's failure.
func (a *scriptAgent) sendQuiet(m *protocol.Msg) { _ = a.write(m) }

func (a *scriptAgent) write(m *protocol.Msg) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.c.WriteMessage(websocket.TextMessage, b)
}

func (a *scriptAgent) exec() *protocol.Msg {
	select {
	case m := <-a.execs:
		return m
	case <-time.After(10 * time.Second):
		a.t.Fatal("no exec reached the agent")
		return nil
	}
}

func (a *scriptAgent) execd(tid string) {
	a.send(&protocol.Msg{Type: protocol.TypeExecd, TID: tid, Payload: &protocol.Execd{OK: true, Pid: 42, Time: time.Now()}})
}

func (a *scriptAgent) data(tid, s string) {
	a.send(&protocol.Msg{Type: protocol.TypeExecData, TID: tid, Payload: &protocol.ExecData{Data: base64.StdEncoding.EncodeToString([]byte(s))}})
}

func (a *scriptAgent) done(tid string, d protocol.ExecDone) {
	d.Time = time.Now()
	a.send(&protocol.Msg{Type: protocol.TypeExecDone, TID: tid, Payload: &d})
}

// runOn starts an exec on the agent and answers execd.
func runOn(t *testing.T, ts *testSvc, a *scriptAgent, id string) *Exec {
	t.Helper()
	type started struct {
		e   *Exec
		err error
	}
	ch := make(chan started, 1)
	go func() {
		e, err := ts.Run(context.Background(), id, Spec{Cmd: "seq 1 200000"}, RunOptions{})
		ch <- started{e, err}
	}()
	m := a.exec()
	a.execd(m.TID)
	s := <-ch
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.e
}

func waitDone(t *testing.T, e *Exec) store.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return r
}

func output(t *testing.T, e *Exec) string {
	t.Helper()
	b, err := e.Output(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A legacy agent (v1: no stream.v1, no ack.v1, like jkstack 1.5's
// exec-agent) may send its last exec_data after exec_done: its output pump
// and its exit report run independently. The exec stays open until the
// output went quiet, so the result, the synchronous reply and the stored
// output hold every byte. Before the fix the result was final at
// exec_done and the tail missed the reply.
func TestLegacyDataAfterDone(t *testing.T) {
	reg := prometheus.NewRegistry()
	// A quiet window long enough for a busy machine: the test feeds the
	// tail frames without pauses, the window only has to cover the gaps.
	ts := newTestSvc(t, nil, func(o *Options) { o.LateData, o.LateDataMax, o.Registry = 2*time.Second, time.Minute, reg })
	a := ts.connectScript(t, "v1")
	e := runOn(t, ts, a, "v1")
	a.data(e.TaskID(), "head\n")
	a.done(e.TaskID(), protocol.ExecDone{Code: 0})
	var tail strings.Builder
	for i := range 5 {
		s := fmt.Sprintf("tail %d\n", i)
		tail.WriteString(s)
		a.data(e.TaskID(), s)
	}
	r := waitDone(t, e)
	want := "head\n" + tail.String()
	if got := output(t, e); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if r.State != store.ResultOK || r.OutputBytes != int64(len(want)) || r.Dropped != 0 {
		t.Fatalf("result %+v", r)
	}
	if got := testutil.ToFloat64(ts.m.late.WithLabelValues(lateWaited)); got != float64(tail.Len()) {
		t.Errorf("waited late bytes %v, want %d", got, tail.Len())
	}
	b, _, err := ts.st.ReadOutput(context.Background(), e.TaskID(), "v1", 0, -1)
	if err != nil || string(b) != want {
		t.Fatalf("stored %q, %v", b, err)
	}
}

// Output later than the window is not lost: it is appended to the stored
// output and the result's counts, counted and logged.
func TestLegacyDataAfterResult(t *testing.T) {
	ts := newTestSvc(t, nil, func(o *Options) { o.LateData = 10 * time.Millisecond })
	a := ts.connectScript(t, "v1")
	e := runOn(t, ts, a, "v1")
	a.data(e.TaskID(), "head\n")
	a.done(e.TaskID(), protocol.ExecDone{Code: 0})
	waitDone(t, e)
	a.data(e.TaskID(), "very late\n")
	ctx := context.Background()
	eventually.True(t, "the late output stored", func() bool {
		b, _, err := ts.st.ReadOutput(ctx, e.TaskID(), "v1", 0, -1)
		return err == nil && string(b) == "head\nvery late\n"
	})
	eventually.True(t, "the result's byte count", func() bool {
		r, err := ts.st.GetResult(ctx, e.TaskID(), "v1")
		return err == nil && r.OutputBytes == int64(len("head\nvery late\n")) && r.State == store.ResultOK
	})
	if got := testutil.ToFloat64(ts.m.late.WithLabelValues(lateAppended)); got != float64(len("very late\n")) {
		t.Errorf("appended late bytes %v", got)
	}
	if got := output(t, e); got != "head\nvery late\n" {
		t.Errorf("output %q", got)
	}
}

// The settle window has an upper bound: output that never goes quiet does
// not hold the result forever.
func TestLegacySettleBound(t *testing.T) {
	ts := newTestSvc(t, nil, func(o *Options) { o.LateData, o.LateDataMax = time.Hour, 200*time.Millisecond })
	a := ts.connectScript(t, "v1")
	e := runOn(t, ts, a, "v1")
	a.done(e.TaskID(), protocol.ExecDone{Code: 3})
	if r := waitDone(t, e); r.State != store.ResultFailed || r.ExitCode != 3 {
		t.Fatalf("result %+v", r)
	}
}

// An agent that promises ordered output (stream.v1) is answered at its
// exec_done; what it reports missing is in the result's msg and dropped
// count and in the metrics.
func TestAgentReportsIncompleteOutput(t *testing.T) {
	ts := newTestSvc(t, nil, func(o *Options) { o.LateData = time.Hour })
	a := ts.connectScript(t, "v2", protocol.CapStream)
	e := runOn(t, ts, a, "v2")
	a.data(e.TaskID(), "bye\n")
	a.done(e.TaskID(), protocol.ExecDone{Code: 0, Cut: true, Dropped: 7, Msg: "output cut: background processes (pid 9) kept the output open"})
	r := waitDone(t, e) // LateData of an hour: no settle wait for stream.v1
	if r.State != store.ResultOK || !strings.Contains(r.Msg, "output cut") || r.Dropped != 7 || r.OutputBytes != 4+7 {
		t.Fatalf("result %+v", r)
	}
	if testutil.ToFloat64(ts.m.agentCut) != 1 || testutil.ToFloat64(ts.m.agentDrops) != 7 {
		t.Errorf("metrics cut %v dropped %v", testutil.ToFloat64(ts.m.agentCut), testutil.ToFloat64(ts.m.agentDrops))
	}
}

// An output append the store did but reported as failed (its answer lost)
// is retried without storing the bytes twice.
func TestOutputRetryStoresOnce(t *testing.T) {
	ts := newTestSvc(t, nil, func(o *Options) { o.FlushBytes = 1 })
	ts.st.lost.Store(1)
	a := ts.connectScript(t, "v2", protocol.CapStream)
	e := runOn(t, ts, a, "v2")
	var want strings.Builder
	for i := range 20 {
		s := fmt.Sprintf("line %d\n", i)
		want.WriteString(s)
		a.data(e.TaskID(), s)
	}
	a.done(e.TaskID(), protocol.ExecDone{Code: 0})
	waitDone(t, e)
	// lost goes below 0 with the first append after the lost one: the retry.
	eventually.True(t, "the retried append", func() bool { return ts.st.lost.Load() < 0 })
	ctx := context.Background()
	eventually.True(t, "all output stored", func() bool {
		n, err := ts.st.OutputSize(ctx, e.TaskID(), "v2")
		return err == nil && n >= int64(want.Len())
	})
	b, _, err := ts.st.ReadOutput(ctx, e.TaskID(), "v2", 0, -1)
	if err != nil || string(b) != want.String() {
		t.Fatalf("stored %q, %v; want %q", b, err, want.String())
	}
}

func (a *scriptAgent) dataAt(tid string, off int64, s string) {
	a.send(&protocol.Msg{Type: protocol.TypeExecData, TID: tid, Payload: &protocol.ExecData{
		Data: base64.StdEncoding.EncodeToString([]byte(s)), Off: &off}})
}

// An agent that replays its journal (after a store failure closed its
// session, or after a server restart) sends output the server holds
// already: the exec_data offsets let the server skip those bytes, so the
// output holds each byte once; the skipped bytes are counted. A gap (bytes
// the agent dropped) is not filled.
func TestReplayedOutputSkippedByOffset(t *testing.T) {
	ts := newTestSvc(t, nil)
	a := ts.connectScript(t, "v2", protocol.CapStream)
	e := runOn(t, ts, a, "v2")
	a.dataAt(e.TaskID(), 0, "abc")
	a.dataAt(e.TaskID(), 0, "abc")    // all held
	a.dataAt(e.TaskID(), 3, "def")    // new
	a.dataAt(e.TaskID(), 2, "cdefgh") // "gh" new
	a.dataAt(e.TaskID(), 20, "zz")    // after a gap of 12 the agent dropped
	a.data(e.TaskID(), "!")           // no offset: appended as it comes
	a.done(e.TaskID(), protocol.ExecDone{Code: 0, Dropped: 12})
	r := waitDone(t, e)
	if got := output(t, e); got != "abcdefghzz!" {
		t.Errorf("output %q, want %q", got, "abcdefghzz!")
	}
	if r.OutputBytes != 11+12 {
		t.Errorf("output_bytes %d, want 23 (11 received, 12 the agent dropped)", r.OutputBytes)
	}
	if got := testutil.ToFloat64(ts.m.replayed); got != 3+4 {
		t.Errorf("replayed bytes counted %v, want 7", got)
	}
}

// After a restart (or past Retain) memory holds no exec for a pid: Find
// rebuilds a finished one from the store, with its result and output, so
// 1.5's status and pty routes keep answering.
func TestFindFromStore(t *testing.T) {
	ts := newTestSvc(t, nil)
	a := ts.connectScript(t, "v2", protocol.CapStream)
	e := runOn(t, ts, a, "v2")
	a.data(e.TaskID(), "hello\n")
	a.done(e.TaskID(), protocol.ExecDone{Code: 3})
	want := waitDone(t, e)
	eventually.True(t, "the output stored", func() bool {
		n, err := ts.st.OutputSize(context.Background(), e.TaskID(), "v2")
		return err == nil && n == 6
	})
	ts.mu.Lock()
	clear(ts.execs) // as after a restart
	ts.mu.Unlock()
	if got := ts.Lookup("v2", 42); got != nil {
		t.Fatal("Lookup found the exec memory no longer holds")
	}
	f, err := ts.Find(context.Background(), "v2", 42)
	if err != nil || f == nil {
		t.Fatalf("Find = %v, %v", f, err)
	}
	if f.TaskID() != e.TaskID() || !f.isDone() {
		t.Errorf("found task %s done %t, want %s done", f.TaskID(), f.isDone(), e.TaskID())
	}
	if r := f.Result(); r.ExitCode != want.ExitCode || r.State != want.State || r.PID != 42 {
		t.Errorf("result %+v, want code %d state %s pid 42", r, want.ExitCode, want.State)
	}
	if got := output(t, f); got != "hello\n" {
		t.Errorf("output %q", got)
	}
	if ts.Lookup("v2", 42) != f {
		t.Error("a finished exec found in the store is not kept for the next call")
	}
	if f, err := ts.Find(context.Background(), "v2", 43); f != nil || err != nil {
		t.Errorf("Find of an unknown pid = %v, %v", f, err)
	}
}
