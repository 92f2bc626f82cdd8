package execsvc

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// agentErrPrefix starts the result message of an agent's type 0 reply.
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
	if reading && e.env.limit.Allow() {
		e.env.log.Warn("execsvc: too many replies beside the stream, fed out of order", "agent", e.agentID, "task", e.tid)
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
	defer e.env.wg.Done()
	defer e.endReading()
	defer st.Close()
	for {
		m, err := st.Recv(e.env.ctx)
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
			if e.env.limit.Allow() {
				e.env.log.Warn("execsvc: bad exec_data from agent", "agent", e.agentID, "task", e.tid, "err", err)
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
			b = e.skipHeldLocked(m.ExecData().Off, b)
		}
		if outcome != lateDropped && len(b) > 0 {
			e.sess = sess
			e.lastData = time.Now()
			if e.res.State == store.ResultLost && e.finalAt.IsZero() {
				e.res.State, e.res.Msg, e.resDirty = store.ResultRunning, "", true
			}
			e.appendLocked(b)
			e.notifyLocked()
		}
		big := len(e.pend) >= e.env.cfg.FlushBytes
		e.mu.Unlock()
		if outcome != "" {
			e.env.m.late.WithLabelValues(outcome).Add(float64(len(b)))
		}
		switch outcome {
		case lateAppended:
			if e.env.limit.Allow() {
				e.env.log.Warn("execsvc: output after the result was final (legacy agent): appended to the stored output, not in the reply",
					"agent", e.agentID, "task", e.tid, "bytes", len(b), "late_data", e.env.cfg.LateData, "late_data_max", e.env.cfg.LateDataMax)
			}
			e.flushLater()
		case lateDropped:
			if e.env.limit.Allow() {
				e.env.log.Warn("execsvc: output after exec_done from an agent that sends none: dropped", "agent", e.agentID, "task", e.tid, "bytes", len(b))
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
				e.env.m.orphaned.WithLabelValues(orphanReported).Inc()
				e.env.log.Warn("execsvc: the agent restarted mid-run and ended the task", "agent", e.agentID, "task", e.tid, "code", m.ExecDone().Code, "msg", m.ExecDone().Msg)
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
				e.env.m.agentCut.Inc()
			}
			e.env.m.agentDrops.Add(float64(max(d.Dropped, 0)))
			e.env.log.Warn("execsvc: agent reports incomplete output", "agent", e.agentID, "task", e.tid, "cut", d.Cut, "dropped", d.Dropped, "msg", d.Msg)
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

// skipHeldLocked returns the part of an exec_data's bytes b, at the
// agent's offset off (nil: the agent sends none), that the exec does not
// hold yet: a journal replay after a store failure, or after a server
// restart from what the store holds, repeats bytes already received.
// Skipped bytes are counted (agentserver_exec_replayed_bytes_total). A
// gap (off past the end: bytes the agent dropped, which its exec_done
// counts) is not filled.
func (e *Exec) skipHeldLocked(off *int64, b []byte) []byte {
	if off == nil || *off < 0 {
		return b
	}
	end := *off + int64(len(b))
	skip := min(max(e.agentEnd-*off, 0), int64(len(b)))
	e.agentEnd = max(e.agentEnd, end)
	if skip > 0 {
		e.env.m.replayed.Add(float64(skip))
	}
	return b[skip:]
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
	return minTime(last.Add(e.env.cfg.LateData), st.at.Add(e.env.cfg.LateDataMax)), true
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
	e.env.m.settle.Observe(time.Since(st.at).Seconds())
	e.end(st.state, st.code, st.msg, store.TaskDone)
}
