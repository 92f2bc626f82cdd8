package execsvc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// DefaultTimeout is the command timeout when Spec.Timeout is not positive.
const DefaultTimeout = 60 * time.Second

// CodeKilled is the exit code of a command killed with SIGKILL (128+9);
// legacy agents' -1 is stored as this.
const CodeKilled = 137

// Spec is a command to run on an agent.
type Spec struct {
	Cmd     string        `json:"cmd"`
	Args    []string      `json:"args,omitempty"`
	Auth    string        `json:"auth,omitempty"` // "", "su" or "sudo"
	User    string        `json:"user,omitempty"`
	Pass    string        `json:"-"` // sent to the agent only: never stored, logged or echoed
	WorkDir string        `json:"workdir,omitempty"`
	Env     []string      `json:"env,omitempty"` // "K=V"
	Timeout time.Duration `json:"timeout"`       // <= 0: DefaultTimeout
	DeferRM string        `json:"drm,omitempty"` // path the agent removes after the run
	Pipe    bool          `json:"pipe,omitempty"`
}

// Validate checks s; errors wrap ErrInvalid and name the field.
func (s *Spec) Validate() error {
	switch {
	case strings.TrimSpace(s.Cmd) == "":
		return fmt.Errorf("%w: missing parameter cmd", ErrInvalid)
	case s.Auth != "" && s.Auth != protocol.AuthSu && s.Auth != protocol.AuthSudo:
		return fmt.Errorf("%w: invalid parameter auth: must be one of su, sudo", ErrInvalid)
	case s.Auth != "" && s.User == "":
		return fmt.Errorf("%w: missing parameter user (needed with auth)", ErrInvalid)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%w: invalid parameter env: %q is not K=V", ErrInvalid, kv)
		}
	}
	// No OS takes NUL in an argument, a path or the environment: v1 agents
	// would fail with "invalid argument" as their own error.
	fields := []struct {
		name string
		vals []string
	}{{"cmd", []string{s.Cmd}}, {"args", s.Args}, {"workdir", []string{s.WorkDir}}, {"user", []string{s.User}}, {"env", s.Env}}
	for _, f := range fields {
		for _, v := range f.vals {
			if strings.IndexByte(v, 0) >= 0 {
				return fmt.Errorf("%w: invalid parameter %s: contains NUL", ErrInvalid, f.name)
			}
		}
	}
	return nil
}

// RunOptions tune one Run.
type RunOptions struct {
	// TaskID records the result under this existing task (fleet tasks,
	// which own their task's state). Empty: Run creates a task of Kind
	// and moves it to done (or failed) when the command ends.
	TaskID string
	// Kind of the created task; default store.KindExec.
	Kind store.TaskKind
	// CreatedBy names the caller (API token) in the created task.
	CreatedBy string
	// Detail is stored as the created task's spec; default: the Spec as
	// JSON (without Pass).
	Detail json.RawMessage
}

// Exec is one command on one agent. Its methods are safe for concurrent
// use.
type Exec struct {
	svc     *Service
	agentID string
	tid     string // = task id
	timeout time.Duration
	created time.Time
	ownTask bool
	adopted bool
	// legacy: the agent has neither stream.v1 nor ack.v1 (jkstack 1.5): its
	// output may trail its exec_done (see Options.LateData).
	legacy bool

	started     chan struct{} // closed at execd, or when the start failed
	startedOnce sync.Once
	done        chan struct{} // closed when the final result is stored (or lost for good)
	doneOnce    sync.Once
	kick        chan struct{} // wakes the writer

	mu        sync.Mutex
	res       store.Result // State, ExitCode, PID, StartedAt, EndedAt, Msg
	sess      *hub.Session // the session feeding it now
	acked     bool         // the agent keeps results until acked (ack.v1)
	killed    bool
	finalAt   time.Time
	changed   chan struct{}
	resDirty  bool
	taskState store.TaskState // to store, "" when none
	taskMsg   string
	startFail *hub.AgentError // why the agent refused the start (type 0 or execd ok false)
	head      []byte
	tail      ring
	total     int64
	stored    int64  // bytes the store holds
	inflight  []byte // being appended, at offset stored
	pend      []byte // waiting, at offset pendOff
	pendOff   int64
	storeFull bool             // the stored stream ends at stored
	ptyOff    map[string]int64 // pty cursor of each reader
	settle    *settle          // legacy exec_done received, waiting for trailing output
	reading   bool             // the reader goroutine runs: strays wait for it
	strays    []stray          // replies that came beside the stream, in order
	lastData  time.Time        // when output last arrived
	agentDrop int64            // output bytes the agent reported it did not send
}

// stray is a reply that came outside the exec's stream (see feedStray).
type stray struct {
	sess *hub.Session
	m    *protocol.Msg
}

// maxStrays bounds the replies held for the reader; beyond it they are fed
// at once (their order against the stream's last replies is then not
// guaranteed, and a log line says so).
const maxStrays = 1024

// settle is a legacy agent's exec_done, held until its output went quiet.
type settle struct {
	state store.ResultState
	code  int
	msg   string
	at    time.Time
}

func (s *Service) newExec(agentID, tid string, timeout time.Duration, adopted bool) *Exec {
	e := &Exec{
		svc: s, agentID: agentID, tid: tid, timeout: timeout, created: time.Now(), adopted: adopted,
		started: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	e.tail.size = s.o.TailSize
	e.res = store.Result{TaskID: tid, AgentID: agentID, State: store.ResultPending}
	return e
}

// Run sends spec to the agent, records the task and result, and returns
// once the agent reported the start (execd) — or ctx ended first, in which
// case the exec goes on and is still recorded. The command itself is not
// bound by ctx: it ends at its timeout, by Kill, or with the agent.
//
// Errors: wrapping ErrInvalid, hub.ErrAgentNotFound, hub.ErrAgentGone,
// ErrStartFailed together with the agent's *hub.AgentError (a type 0 reply
// or execd ok false; the agent's msg is in the result too), ErrClosed,
// ctx's error, or a store error. The Exec is returned with the error whenever a result was
// recorded, so the caller can report its task id.
func (s *Service) Run(ctx context.Context, agentID string, spec Spec, o RunOptions) (*Exec, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultTimeout
	}
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("run on agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	now := s.o.Now()
	taskID := o.TaskID
	if taskID == "" {
		kind := o.Kind
		if kind == "" {
			kind = store.KindExec
		}
		detail := o.Detail
		if detail == nil {
			detail, _ = json.Marshal(spec) // Pass has json:"-"
		}
		t, err := s.st.CreateTask(ctx, store.Task{Kind: kind, Spec: detail, State: store.TaskRunning, CreatedBy: o.CreatedBy, CreatedAt: now, StartedAt: now})
		if err != nil {
			return nil, fmt.Errorf("run on agent %s: create task: %w", agentID, err)
		}
		taskID = t.ID
	}
	e := s.newExec(agentID, taskID, spec.Timeout, false)
	e.ownTask = o.TaskID == ""
	e.sess = sess
	e.acked = sess.HasCap(protocol.CapAck)
	e.legacy = !e.acked && !sess.HasCap(protocol.CapStream)
	e.res.State = store.ResultRunning
	e.res.StartedAt = now
	e.resDirty = true
	if e.ownTask {
		// Stored before the exec is sent, not by the next group commit: if
		// the server dies before that commit, the agent's journal replay
		// must find this row to complete the task (adopt), and the row is
		// what ties the task to this agent. Fleet tasks write their
		// per-agent rows when they are submitted.
		if err := s.st.PutResults(ctx, []store.Result{e.snapshotLocked()}); err != nil {
			return nil, fmt.Errorf("run on agent %s: record task %s: %w", agentID, taskID, err)
		}
		e.resDirty = false
	}
	if err := s.register(e); err != nil {
		return nil, err
	}
	pass := spec.Pass
	if pass != "" && !strings.HasPrefix(pass, "$0$") && !strings.HasPrefix(pass, "$1$") {
		pass = protocol.EncodePass(pass)
	}
	msg := &protocol.Msg{Type: protocol.TypeExec, TID: taskID, Payload: &protocol.Exec{
		Cmd: spec.Cmd, Args: spec.Args, Timeout: int((spec.Timeout + time.Second - 1) / time.Second),
		Auth: spec.Auth, User: spec.User, Pass: pass, WorkDir: spec.WorkDir, Env: spec.Env,
		DeferRM: spec.DeferRM, Pipe: spec.Pipe && sess.HasCap(protocol.CapStream),
	}}
	st, err := sess.Stream(ctx, msg)
	s.wg.Add(1)
	go e.writer()
	if err != nil {
		e.end(store.ResultFailed, 0, "not sent to the agent: "+err.Error(), store.TaskFailed)
		return e, fmt.Errorf("run on agent %s: %w", agentID, err)
	}
	e.mu.Lock()
	e.reading = true
	e.mu.Unlock()
	s.wg.Add(1)
	go e.reader(sess, st)
	select {
	case <-e.started:
	case <-ctx.Done():
		return e, fmt.Errorf("run on agent %s: waiting for the start: %w", agentID, ctx.Err())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.res.PID == 0 && e.res.State.Final() {
		if e.startFail != nil {
			return e, fmt.Errorf("run on agent %s: %w: %w", agentID, ErrStartFailed, e.startFail)
		}
		return e, fmt.Errorf("run on agent %s: %w: %s", agentID, ErrStartFailed, e.res.Msg)
	}
	if e.res.State == store.ResultLost {
		return e, fmt.Errorf("run on agent %s: %w", agentID, hub.ErrAgentGone)
	}
	return e, nil
}

const agentErrPrefix = "agent error: "

// failStart records why the agent refused the start, unless the exec
// has ended already.
func (e *Exec) failStart(err *hub.AgentError) {
	e.mu.Lock()
	if e.finalAt.IsZero() && e.startFail == nil {
		e.startFail = err
	}
	e.mu.Unlock()
}

// feedStray applies a reply that came outside the exec's stream: after the
// stream's terminal reply (a legacy agent's exec_data after exec_done), or
// after a stream overflow. While the reader still works through the
// stream's queue it is handed over, so output keeps its order.
func (e *Exec) feedStray(sess *hub.Session, m *protocol.Msg) {
	e.mu.Lock()
	if e.reading && len(e.strays) < maxStrays {
		e.strays = append(e.strays, stray{sess, m})
		e.mu.Unlock()
		return
	}
	reading := e.reading
	e.mu.Unlock()
	if reading && e.svc.limit.Allow() {
		e.svc.log.Warn("execsvc: too many replies beside the stream, fed out of order", "agent", e.agentID, "task", e.tid)
	}
	e.feed(sess, m)
}

// endReading feeds the strays that came while the reader ran, then lets
// later ones through directly.
func (e *Exec) endReading() {
	for {
		e.mu.Lock()
		batch := e.strays
		e.strays = nil
		if len(batch) == 0 {
			e.reading = false
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		for _, s := range batch {
			e.feed(s.sess, s.m)
		}
	}
}

// reader consumes the live reply stream.
func (e *Exec) reader(sess *hub.Session, st *hub.Stream) {
	defer e.svc.wg.Done()
	defer e.endReading()
	defer st.Close()
	for {
		m, err := st.Recv(e.svc.ctx)
		var ae *hub.AgentError
		switch {
		case err == nil:
			e.feed(sess, m)
			continue
		case errors.As(err, &ae):
			e.feed(sess, m)
		case errors.Is(err, hub.ErrAgentGone):
			e.disconnected(sess)
		}
		// io.EOF: terminal reply fed; overflow: the handlers take over;
		// service closing: the stored state stays.
		return
	}
}

// disconnected handles the end of the session that was feeding the exec.
func (e *Exec) disconnected(sess *hub.Session) {
	e.mu.Lock()
	if e.sess != sess || !e.finalAt.IsZero() {
		e.mu.Unlock()
		return
	}
	if e.settle != nil {
		// The exec_done is in: only trailing output could still come.
		e.mu.Unlock()
		e.finishSettle()
		return
	}
	if e.acked {
		e.res.State = store.ResultLost
		e.res.Msg = "agent disconnected; waiting for its journaled result (ack.v1)"
		e.resDirty = true
		e.notifyLocked()
		e.mu.Unlock()
		e.startedOnce.Do(func() { close(e.started) })
		e.wake()
		return
	}
	e.mu.Unlock()
	e.end(store.ResultLost, 0, "agent disconnected mid-run: the agent keeps no results (no ack.v1), output and exit code are lost", store.TaskFailed)
}

// feed applies one reply from the agent. It never blocks on the store.
func (e *Exec) feed(sess *hub.Session, m *protocol.Msg) {
	switch m.Type {
	case protocol.TypeError:
		e.failStart(sess.AgentError(m.TID, m.ErrMsg, m.ErrKind))
		e.end(store.ResultFailed, 0, agentErrPrefix+m.ErrMsg, store.TaskFailed)
	case protocol.TypeExecd:
		if m.Execd() == nil {
			return
		}
		if !m.Execd().OK {
			msg := m.Execd().Msg
			if msg == "" {
				msg = "the agent could not start the command"
			}
			e.failStart(sess.AgentError(m.TID, msg, m.Execd().Kind))
			e.end(store.ResultFailed, 0, msg, store.TaskFailed)
			return
		}
		e.mu.Lock()
		e.sess = sess
		if !e.res.State.Final() {
			e.res.State = store.ResultRunning
			e.res.Msg = ""
		}
		e.res.PID = m.Execd().Pid
		if !m.Execd().Time.IsZero() {
			e.res.StartedAt = m.Execd().Time.UTC()
		}
		e.resDirty = true
		e.notifyLocked()
		e.mu.Unlock()
		e.startedOnce.Do(func() { close(e.started) })
		e.wake()
	case protocol.TypeExecData:
		if m.ExecData() == nil {
			return
		}
		b, err := base64.StdEncoding.DecodeString(m.ExecData().Data)
		if err != nil {
			if e.svc.limit.Allow() {
				e.svc.log.Warn("execsvc: bad exec_data from agent", "agent", e.agentID, "task", e.tid, "err", err)
			}
			return
		}
		e.mu.Lock()
		outcome := ""
		switch {
		case e.finalAt.IsZero():
			if e.settle != nil {
				outcome = lateWaited
			}
		case e.legacy:
			// Later than the settle window: the reply went out without it,
			// the stored output and the result's counts still get it.
			outcome = lateAppended
			e.resDirty = true
		default:
			outcome = lateDropped
		}
		if outcome != lateDropped {
			e.sess = sess
			e.lastData = time.Now()
			if e.res.State == store.ResultLost && e.finalAt.IsZero() {
				e.res.State, e.res.Msg, e.resDirty = store.ResultRunning, "", true
			}
			e.appendLocked(b)
			e.notifyLocked()
		}
		big := len(e.pend) >= e.svc.o.FlushBytes
		e.mu.Unlock()
		if outcome != "" {
			e.svc.m.late.WithLabelValues(outcome).Add(float64(len(b)))
		}
		switch outcome {
		case lateAppended:
			if e.svc.limit.Allow() {
				e.svc.log.Warn("execsvc: output after the result was final (legacy agent): appended to the stored output, not in the reply",
					"agent", e.agentID, "task", e.tid, "bytes", len(b), "late_data", e.svc.o.LateData, "late_data_max", e.svc.o.LateDataMax)
			}
			e.flushLater()
		case lateDropped:
			if e.svc.limit.Allow() {
				e.svc.log.Warn("execsvc: output after exec_done from an agent that sends none: dropped", "agent", e.agentID, "task", e.tid, "bytes", len(b))
			}
		default:
			if big {
				e.wake()
			} else {
				e.wakeLazy()
			}
		}
	case protocol.TypeExecDone:
		if m.ExecDone() == nil {
			return
		}
		e.mu.Lock()
		e.sess = sess
		killed, elapsed := e.killed, time.Since(e.created)
		if !m.ExecDone().Time.IsZero() && !e.res.StartedAt.IsZero() {
			elapsed = m.ExecDone().Time.Sub(e.res.StartedAt)
		}
		if !m.ExecDone().Time.IsZero() {
			e.res.EndedAt = m.ExecDone().Time.UTC()
		}
		e.mu.Unlock()
		if m.ExecDone().Restarted {
			// The agent ended the task itself (a restart found the command
			// orphaned): its code and message say how, nothing to infer.
			if !e.isDone() {
				e.svc.m.orphaned.WithLabelValues(orphanReported).Inc()
				e.svc.log.Warn("execsvc: the agent restarted mid-run and ended the task", "agent", e.agentID, "task", e.tid, "code", m.ExecDone().Code, "msg", m.ExecDone().Msg)
			}
			e.end(store.ResultFailed, m.ExecDone().Code, m.ExecDone().Msg, store.TaskFailed)
			return
		}
		code, state, msg := m.ExecDone().Code, store.ResultOK, ""
		switch {
		case code == -1 || code == CodeKilled && killed:
			code, state, msg = CodeKilled, store.ResultFailed, "killed"
			if !killed && elapsed >= e.timeout-time.Second {
				state, msg = store.ResultTimedOut, fmt.Sprintf("timed out after %s", e.timeout)
			}
		case code == CodeKilled && elapsed >= e.timeout-time.Second:
			state, msg = store.ResultTimedOut, fmt.Sprintf("timed out after %s", e.timeout)
		case code != 0:
			state = store.ResultFailed
		}
		if d := m.ExecDone(); d.Cut || d.Dropped > 0 || d.Msg != "" {
			// The agent could not read or send all of the output: never a
			// silent success.
			why := d.Msg
			if why == "" {
				why = fmt.Sprintf("output incomplete (agent: cut %t, %d bytes dropped)", d.Cut, d.Dropped)
			}
			msg = strings.TrimPrefix(msg+"; "+why, "; ")
			if d.Cut {
				e.svc.m.agentCut.Inc()
			}
			e.svc.m.agentDrops.Add(float64(max(d.Dropped, 0)))
			e.svc.log.Warn("execsvc: agent reports incomplete output", "agent", e.agentID, "task", e.tid, "cut", d.Cut, "dropped", d.Dropped, "msg", d.Msg)
			e.mu.Lock()
			e.agentDrop = max(d.Dropped, 0)
			e.mu.Unlock()
		}
		e.mu.Lock()
		hold := e.legacy && !e.adopted && e.finalAt.IsZero()
		if hold && e.settle == nil {
			e.settle = &settle{state: state, code: code, msg: msg, at: time.Now()}
		}
		e.mu.Unlock()
		if hold {
			// Its output may still be on the way: the writer ends the exec
			// once it went quiet (Options.LateData).
			e.wake()
			return
		}
		e.end(state, code, msg, store.TaskDone)
	}
}

// settleDue returns when a held legacy exec_done becomes final: LateData
// after the last output (or the exec_done), at most LateDataMax after the
// exec_done.
func (e *Exec) settleDue() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.settle
	if st == nil || !e.finalAt.IsZero() {
		return time.Time{}, false
	}
	last := st.at
	if e.lastData.After(last) {
		last = e.lastData
	}
	return minTime(last.Add(e.svc.o.LateData), st.at.Add(e.svc.o.LateDataMax)), true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// finishSettle makes a held legacy exec_done final.
func (e *Exec) finishSettle() {
	e.mu.Lock()
	st := e.settle
	e.settle = nil
	e.mu.Unlock()
	if st == nil {
		return
	}
	e.svc.m.settle.Observe(time.Since(st.at).Seconds())
	e.end(st.state, st.code, st.msg, store.TaskDone)
}

// end makes the result final (or lost for good) and wakes everyone.
func (e *Exec) end(state store.ResultState, code int, msg string, task store.TaskState) {
	e.mu.Lock()
	if !e.finalAt.IsZero() {
		e.mu.Unlock()
		return
	}
	e.finalAt = time.Now()
	e.res.State, e.res.ExitCode, e.res.Msg = state, code, msg
	if e.res.EndedAt.IsZero() && state != store.ResultLost {
		e.res.EndedAt = e.svc.o.Now().UTC()
	}
	e.resDirty = true
	if e.ownTask {
		e.taskState, e.taskMsg = task, msg
		if task == store.TaskFailed && msg == "" {
			e.taskMsg = string(state)
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	e.startedOnce.Do(func() { close(e.started) })
	e.wake()
}

// closeDone signals waiters that the outcome is known (and stored, unless
// the store failed).
func (e *Exec) closeDone() {
	e.doneOnce.Do(func() {
		close(e.done)
		e.mu.Lock()
		e.notifyLocked()
		e.mu.Unlock()
	})
}

func (e *Exec) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *Exec) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// wakeLazy is a wake for small output: the writer arms its batch timer.
func (e *Exec) wakeLazy() { e.wake() }

// appendLocked takes new output (e.mu held).
func (e *Exec) appendLocked(b []byte) {
	e.total += int64(len(b))
	if n := e.svc.o.HeadSize - len(e.head); n > 0 {
		e.head = append(e.head, b[:min(n, len(b))]...)
	}
	e.tail.write(b)
	if e.storeFull {
		return
	}
	if len(e.pend)+len(b) > e.svc.o.MaxPending {
		e.storeFull = true
		e.pend = nil
		e.svc.log.Warn("execsvc: store too slow, output no longer stored (head and tail are kept)", "agent", e.agentID, "task", e.tid)
		return
	}
	if len(e.pend) == 0 {
		e.pendOff = e.stored + int64(len(e.inflight))
	}
	e.pend = append(e.pend, b...)
}

// writer decides when the exec's state goes to the store: at once for
// state changes and big output, after Options.FlushDelay for small output.
// It also makes a legacy agent's held exec_done final once its output went
// quiet. The service's flusher does the writes.
func (e *Exec) writer() {
	s := e.svc
	defer s.wg.Done()
	deadline := time.NewTimer(e.timeout + s.o.Grace)
	defer deadline.Stop()
	var batch, quiet *time.Timer
	var batchC, quietC <-chan time.Time
	defer func() {
		if batch != nil {
			batch.Stop()
		}
		if quiet != nil {
			quiet.Stop()
		}
	}()
	for {
		select {
		case <-e.kick:
		case <-batchC:
			batchC = nil
			e.flushLater()
		case <-quietC:
			quietC = nil
		case <-deadline.C:
			e.expire()
		case <-s.ctx.Done():
			e.finishSettle()
			_ = e.flush()
			e.closeDone()
			return
		}
		if due, ok := e.settleDue(); ok && quietC == nil {
			if wait := time.Until(due); wait <= 0 {
				e.finishSettle()
			} else if quiet == nil {
				quiet = time.NewTimer(wait)
				quietC = quiet.C
			} else {
				quiet.Reset(wait)
				quietC = quiet.C
			}
		}
		e.mu.Lock()
		urgent := e.resDirty || e.taskState != "" || len(e.pend) >= s.o.FlushBytes
		waiting := len(e.pend) > 0
		final := !e.finalAt.IsZero()
		e.mu.Unlock()
		if urgent {
			e.flushLater()
		} else if waiting && batchC == nil {
			if batch == nil {
				batch = time.NewTimer(s.o.FlushDelay)
			} else {
				batch.Reset(s.o.FlushDelay)
			}
			batchC = batch.C
		}
		if final {
			// The flusher closes Done once the final state is stored (or
			// its write failed: the outcome is known, the write is retried).
			// Output that still comes (legacy agents) is flushed by feed.
			e.flushLater()
			return
		}
	}
}

// expire ends an exec the agent did not finish in time.
func (e *Exec) expire() {
	e.mu.Lock()
	state, sess, pid, held := e.res.State, e.sess, e.res.PID, e.settle != nil
	e.mu.Unlock()
	if held {
		e.finishSettle()
		return
	}
	if state == store.ResultLost {
		e.end(store.ResultLost, 0, "agent did not report back before the deadline; its journaled result may still arrive", store.TaskFailed)
		return
	}
	if sess != nil {
		ctx, cancel := context.WithTimeout(e.svc.ctx, time.Second)
		_ = sess.Send(ctx, &protocol.Msg{Type: protocol.TypeExecKill, Payload: &protocol.ExecKill{Pid: pid}})
		cancel()
	}
	e.end(store.ResultTimedOut, CodeKilled, fmt.Sprintf("no result from the agent within the timeout (%s) and %s grace; kill sent", e.timeout, e.svc.o.Grace), store.TaskDone)
}

// flush stores the pending output, result and task state with the
// service's next group commit and waits for it.
func (e *Exec) flush() error { return e.svc.fl.flushWait(e) }

// flushLater asks for the next group commit without waiting; the flusher
// closes Done once it stored the final state.
func (e *Exec) flushLater() { e.svc.fl.add(e) }

// snapshotLocked is the result as it stands (e.mu held).
func (e *Exec) snapshotLocked() store.Result {
	r := e.res
	r.OutputHead = append([]byte(nil), e.head...)
	r.OutputTail = e.tail.bytes()
	r.OutputBytes = e.total
	kept := e.stored + int64(len(e.inflight)) + int64(len(e.pend))
	r.Dropped = max(0, e.total-kept-int64(len(r.OutputTail))) + e.agentDrop
	r.OutputBytes += e.agentDrop
	return r
}

// TaskID returns the task id (also the exec's tid on the wire).
func (e *Exec) TaskID() string { return e.tid }

// AgentID returns the agent's id.
func (e *Exec) AgentID() string { return e.agentID }

// PID returns the agent-side pid (0 before execd).
func (e *Exec) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.res.PID
}

// Timeout returns the command's timeout.
func (e *Exec) Timeout() time.Duration { return e.timeout }

// Result returns the result as it stands: state, pid, times, exit code,
// output head and tail with the dropped and total byte counts.
func (e *Exec) Result() store.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snapshotLocked()
}

// Done is closed when the result is final, or lost for good.
func (e *Exec) Done() <-chan struct{} { return e.done }

// isDone reports whether the outcome is known (not waiting for storage).
func (e *Exec) isDone() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.finalAt.IsZero()
}

func (e *Exec) retired(now time.Time, retain time.Duration) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.finalAt.IsZero() && now.Sub(e.finalAt) > retain
}

// Changed returns a channel closed at the next change (output, state).
// Live readers wait on it, then ReadOutput from their offset.
func (e *Exec) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// Wait waits until the exec is done (its final result stored) or ctx
// ends, and returns the result as it stands.
func (e *Exec) Wait(ctx context.Context) (store.Result, error) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return e.Result(), ctx.Err()
	}
	return e.Result(), nil
}

// Settling reports whether a legacy agent's exec_done has arrived and the
// result is held for the output that may still follow it (Options.LateData,
// at most Options.LateDataMax).
func (e *Exec) Settling() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.settle != nil
}

// Kill asks the agent to kill the command's process group. With
// stream.v1 it kills by task id and reports ErrNoSuchTask when the agent
// has no such task; otherwise it sends the v1 exec_kill by pid (no reply).
// The exec then ends with its own exec_done, stored as failed "killed".
func (e *Exec) Kill(ctx context.Context) error {
	e.mu.Lock()
	pid := e.res.PID
	e.killed = true
	e.mu.Unlock()
	return e.svc.killTask(ctx, e.agentID, e.tid, pid)
}

func (s *Service) killTask(ctx context.Context, agentID, taskID string, pid int) error {
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return fmt.Errorf("kill on agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if !sess.HasCap(protocol.CapStream) {
		if pid == 0 {
			return fmt.Errorf("kill task %s on agent %s: %w (no pid yet)", taskID, agentID, ErrNoSuchTask)
		}
		if err := sess.Send(ctx, &protocol.Msg{Type: protocol.TypeExecKill, Payload: &protocol.ExecKill{Pid: pid}}); err != nil {
			return fmt.Errorf("kill pid %d on agent %s: %w", pid, agentID, err)
		}
		return nil
	}
	rep, err := sess.Call(ctx, &protocol.Msg{Type: protocol.TypeExecKill, Payload: &protocol.ExecKill{Pid: pid, TaskID: taskID}})
	if err != nil {
		return fmt.Errorf("kill task %s on agent %s: %w", taskID, agentID, err)
	}
	if rep.Type != protocol.TypeExecKillRep || rep.ExecKillRep() == nil {
		return fmt.Errorf("kill task %s on agent %s: unexpected reply type %d", taskID, agentID, rep.Type)
	}
	if !rep.ExecKillRep().OK {
		if rep.ExecKillRep().Msg == protocol.MsgNoSuchTask {
			return fmt.Errorf("kill task %s on agent %s: %w", taskID, agentID, ErrNoSuchTask)
		}
		return sess.AgentError(rep.TID, rep.ExecKillRep().Msg, rep.ExecKillRep().Kind)
	}
	return nil
}

// KillPID kills a command by pid when the server has no exec for it (a
// task started before a restart): with stream.v1 the agent's ps finds its
// task. Use Exec.Kill when Lookup finds the exec.
func (s *Service) KillPID(ctx context.Context, agentID string, pid int) error {
	if e := s.Lookup(agentID, pid); e != nil {
		return e.Kill(ctx)
	}
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return fmt.Errorf("kill on agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if !sess.HasCap(protocol.CapStream) {
		return fmt.Errorf("kill pid %d on agent %s: %w", pid, agentID, ErrNoSuchTask)
	}
	tasks, err := s.Ps(ctx, agentID)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.Pid == pid {
			if e := s.lookup(agentID, t.TaskID); e != nil {
				return e.Kill(ctx)
			}
			return s.killTask(ctx, agentID, t.TaskID, pid)
		}
	}
	return fmt.Errorf("kill pid %d on agent %s: %w", pid, agentID, ErrNoSuchTask)
}

// Ps lists the agent's running exec tasks: from the agent with stream.v1,
// else from the server's own records.
func (s *Service) Ps(ctx context.Context, agentID string) ([]protocol.PsTask, error) {
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("ps on agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if sess.HasCap(protocol.CapStream) {
		rep, err := sess.Call(ctx, &protocol.Msg{Type: protocol.TypePsReq})
		if err != nil {
			return nil, fmt.Errorf("ps on agent %s: %w", agentID, err)
		}
		if rep.Type != protocol.TypePsRep || rep.Ps() == nil {
			return nil, fmt.Errorf("ps on agent %s: unexpected reply type %d", agentID, rep.Type)
		}
		return rep.Ps().Tasks, nil
	}
	out := []protocol.PsTask{}
	for _, e := range s.Running(agentID) {
		r := e.Result()
		out = append(out, protocol.PsTask{TaskID: e.tid, Pid: r.PID, Begin: r.StartedAt})
	}
	return out, nil
}

// ReadOutput returns output bytes from offset off (at most max): from the
// store, from memory not yet stored, or from the tail. Bytes that were
// dropped are skipped: next-off-len(data) is then the gap. At the end it
// returns no data and next == off.
func (e *Exec) ReadOutput(ctx context.Context, off int64, max int) (data []byte, next int64, err error) {
	e.mu.Lock()
	if off < 0 {
		off = 0
	}
	stored := e.stored
	if off < stored {
		e.mu.Unlock()
		n := min(int64(max), stored-off)
		b, _, err := e.svc.st.ReadOutput(ctx, e.tid, e.agentID, off, n)
		if err != nil {
			return nil, off, fmt.Errorf("read output of task %s: %w", e.tid, err)
		}
		return b, off + int64(len(b)), nil
	}
	defer e.mu.Unlock()
	from := func(buf []byte, start int64) ([]byte, int64, bool) {
		if off >= start && off < start+int64(len(buf)) {
			b := buf[off-start:]
			b = b[:min(len(b), max)]
			return append([]byte(nil), b...), off + int64(len(b)), true
		}
		return nil, 0, false
	}
	if b, n, ok := from(e.inflight, stored); ok {
		return b, n, nil
	}
	if b, n, ok := from(e.pend, e.pendOff); ok && !e.storeFull {
		return b, n, nil
	}
	t := e.tail.bytes()
	tailStart := e.total - int64(len(t))
	if off < tailStart {
		off = tailStart
	}
	if b, n, ok := from(t, tailStart); ok {
		return b, n, nil
	}
	return nil, off, nil
}

// Pty returns the output produced since reader's previous Pty call (at
// most max bytes; the rest comes with the next call), as 1.5's pty
// polling, and the offset where the next call starts. Each reader (an API
// token) has its own cursor, so one reader never takes output from another.
func (e *Exec) Pty(ctx context.Context, reader string, max int) ([]byte, int64, error) {
	e.mu.Lock()
	off := e.ptyOff[reader]
	e.mu.Unlock()
	out, next, err := e.PtyAt(ctx, off, max)
	e.mu.Lock()
	if e.ptyOff == nil {
		e.ptyOff = map[string]int64{}
	}
	e.ptyOff[reader] = max64(e.ptyOff[reader], next)
	e.mu.Unlock()
	return out, next, err
}

// PtyAt returns the output from offset off (at most max bytes) and the
// offset after it, moving no cursor. Bytes that were dropped are skipped.
func (e *Exec) PtyAt(ctx context.Context, off int64, max int) ([]byte, int64, error) {
	var out []byte
	for len(out) < max {
		b, next, err := e.ReadOutput(ctx, off, max-len(out))
		if err != nil {
			return out, off, err
		}
		off = next
		if len(b) == 0 {
			break
		}
		out = append(out, b...)
	}
	return out, off, nil
}

// Output returns the whole output as far as it is kept, for a sync reply:
// a gap of dropped bytes appears as a one-line marker.
func (e *Exec) Output(ctx context.Context, limit int) ([]byte, error) {
	var out []byte
	var off int64
	for len(out) < limit {
		b, next, err := e.ReadOutput(ctx, off, limit-len(out))
		if err != nil {
			return out, err
		}
		if gap := next - off - int64(len(b)); gap > 0 {
			out = fmt.Appendf(out, "\n[... %d bytes dropped ...]\n", gap)
		}
		if len(b) == 0 {
			break
		}
		out = append(out, b...)
		off = next
	}
	return out, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// ring keeps the last size bytes written.
type ring struct {
	size int
	buf  []byte
}

func (r *ring) write(b []byte) {
	if len(b) >= r.size {
		r.buf = append(r.buf[:0], b[len(b)-r.size:]...)
		return
	}
	if len(r.buf)+len(b) > 2*r.size {
		r.buf = append(r.buf[:0], r.buf[len(r.buf)-(r.size-len(b)):]...)
	}
	r.buf = append(r.buf, b...)
}

func (r *ring) bytes() []byte {
	b := r.buf
	if len(b) > r.size {
		b = b[len(b)-r.size:]
	}
	return append([]byte(nil), b...)
}
