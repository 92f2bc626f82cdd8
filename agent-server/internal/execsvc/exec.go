package execsvc

import (
	"context"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// Exec is one command on one agent. Its methods are safe for concurrent
// use.
//
// Its state comes in groups: what it is (identity, fixed), the channels
// that signal its progress, and under mu the outcome, the output and the
// replies that trail the stream. What it works with — store, hub,
// group commit, clock, limits, metrics, log — is its env, shared by every
// exec of a Service.
type Exec struct {
	env *env
	identity
	signals

	mu sync.Mutex
	outcome
	outputBuf
	trailing
	ptyOff map[string]int64 // pty cursor of each reader
}

// identity is what an exec is, fixed when it is made.
type identity struct {
	agentID string
	tid     string // = task id
	timeout time.Duration
	created time.Time
	// ownTask: Run created the task, so the exec moves it to its final
	// state (fleet tasks own theirs).
	ownTask bool
	// adopted: rebuilt from the store for a replayed journal.
	adopted bool
	// legacy: the agent has neither stream.v1 nor ack.v1 (jkstack 1.5): its
	// output may trail its exec_done (see Options.LateData).
	legacy bool
}

// signals are the exec's progress, for waiters and its writer.
type signals struct {
	started     chan struct{} // closed at execd, or when the start failed
	startedOnce sync.Once
	done        chan struct{} // closed when the final result is stored (or lost for good)
	doneOnce    sync.Once
	kick        chan struct{} // wakes the writer
	changed     chan struct{} // closed and replaced at each change (mu)
}

// outcome is the result as it stands and what the next group commit
// stores of it (Exec.mu).
type outcome struct {
	res       store.Result // State, ExitCode, PID, StartedAt, EndedAt, Msg
	sess      *hub.Session // the session feeding it now
	acked     bool         // the agent keeps results until acked (ack.v1)
	killed    bool
	finalAt   time.Time
	resDirty  bool
	taskState store.TaskState // to store, "" when none
	taskMsg   string
	startFail *hub.AgentError // why the agent refused the start (type 0 or execd ok false)
}

// outputBuf is the command's output as the server keeps it: both ends in
// memory, the stream in the store, what is on its way there (Exec.mu).
type outputBuf struct {
	head      []byte
	tail      ring
	total     int64
	stored    int64  // bytes the store holds
	inflight  []byte // being appended, at offset stored
	pend      []byte // waiting, at offset pendOff
	pendOff   int64
	storeFull bool      // the stored stream ends at stored
	lastData  time.Time // when output last arrived
	agentDrop int64     // output bytes the agent reported it did not send
	agentEnd  int64     // end of the output received, in the agent's offsets (ExecData.Off)
}

// trailing is what comes beside the reply stream (Exec.mu): replies the
// reader has yet to feed, and a legacy agent's exec_done held for the
// output that may follow it.
type trailing struct {
	settle  *settle // legacy exec_done received, waiting for trailing output
	reading bool    // the reader goroutine runs: strays wait for it
	strays  []stray // replies that came beside the stream, in order
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
		env:      s.env,
		identity: identity{agentID: agentID, tid: tid, timeout: timeout, created: time.Now(), adopted: adopted},
		signals:  signals{started: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1), changed: make(chan struct{})},
	}
	e.tail.size = s.env.cfg.TailSize
	e.res = store.Result{TaskID: tid, AgentID: agentID, State: store.ResultPending}
	return e
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
		e.res.EndedAt = e.env.now().UTC()
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
