package execsvc

import (
	"context"
	"fmt"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/store"
)

// writer decides when the exec's state goes to the store: at once for
// state changes and big output, after Options.FlushDelay for small output.
// It also makes a legacy agent's held exec_done final once its output went
// quiet. The service's flusher does the writes.
func (e *Exec) writer() {
	v := e.env
	defer v.wg.Done()
	deadline := time.NewTimer(e.timeout + v.cfg.Grace)
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
		case <-v.ctx.Done():
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
		urgent := e.resDirty || e.taskState != "" || len(e.pend) >= v.cfg.FlushBytes
		waiting := len(e.pend) > 0
		final := !e.finalAt.IsZero()
		e.mu.Unlock()
		if urgent {
			e.flushLater()
		} else if waiting && batchC == nil {
			if batch == nil {
				batch = time.NewTimer(v.cfg.FlushDelay)
			} else {
				batch.Reset(v.cfg.FlushDelay)
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
		ctx, cancel := context.WithTimeout(e.env.ctx, time.Second)
		_ = sess.Send(ctx, &protocol.Msg{Type: protocol.TypeExecKill, Payload: &protocol.ExecKill{Pid: pid}})
		cancel()
	}
	e.end(store.ResultTimedOut, CodeKilled, fmt.Sprintf("no result from the agent within the timeout (%s) and %s grace; kill sent", e.timeout, e.env.cfg.Grace), store.TaskDone)
}

// flush stores the pending output, result and task state with the
// service's next group commit and waits for it.
func (e *Exec) flush() error { return e.env.commit.flushWait(e) }

// flushLater asks for the next group commit without waiting; the flusher
// closes Done once it stored the final state.
func (e *Exec) flushLater() { e.env.commit.add(e) }
