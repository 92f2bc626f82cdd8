package execsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

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
		// The running result row is stored with the task, before the exec
		// is sent, not by the next group commit: if the server dies before
		// that commit, the agent's journal replay must find this row to
		// complete the task (adopt), and the row is what ties the task to
		// this agent. One transaction for both. Fleet tasks write their
		// per-agent rows when they are submitted.
		running := store.Result{AgentID: agentID, State: store.ResultRunning, StartedAt: now}
		t, err := s.st.CreateTaskResults(ctx, store.Task{Kind: kind, Spec: detail, State: store.TaskRunning, CreatedBy: o.CreatedBy, CreatedAt: now, StartedAt: now}, []store.Result{running})
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
	e.resDirty = !e.ownTask
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
		return e, fmt.Errorf("run on agent %s: %w", agentID, fault.New(fault.Unavailable, ErrStartFailed, "%s", e.res.Msg))
	}
	if e.res.State == store.ResultLost {
		return e, fmt.Errorf("run on agent %s: %w", agentID, hub.ErrAgentGone)
	}
	return e, nil
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
	return e.env.killTask(ctx, e.agentID, e.tid, pid)
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
			return s.env.killTask(ctx, agentID, t.TaskID, pid)
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
