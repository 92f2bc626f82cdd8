package execsvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// reconcileTimeout bounds the ps that Reconnected sends.
const reconcileTimeout = 30 * time.Second

// MsgNoLongerRuns is the message of a task ended because its agent came
// back without it.
const MsgNoLongerRuns = "agent reconnected and no longer runs this task (it restarted without a record of it, or never received it): the command's exit status and any output after the disconnect are unknown"

// Reconnected looks, after an agent (re)connects, at the execs that wait
// for its journaled result (its previous connection dropped mid-run): it
// asks the agent's ps and ends those the agent no longer runs as failed
// with MsgNoLongerRuns and protocol.CodeUnknown, instead of waiting for a
// result that cannot come. The agent replays its journal before it reads
// the ps request, so every result it still had has arrived by the answer
// (and an exec-agent reports the tasks its previous process left before
// it answers ps: those end with the agent's own message). Agents without
// stream.v1 have no ps: their execs keep waiting until their deadline.
//
// Call it from the hub's OnConnect; it returns at once.
func (s *Service) Reconnected(sess *hub.Session) {
	if !sess.HasCap(protocol.CapStream) || !sess.HasCap(protocol.CapAck) {
		return
	}
	waiting := s.waitingFor(sess)
	if len(waiting) == 0 {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, reconcileTimeout)
		defer cancel()
		rep, err := sess.Call(ctx, &protocol.Msg{Type: protocol.TypePsReq})
		if err == nil && (rep.Type != protocol.TypePsRep || rep.Ps() == nil) {
			s.log.Warn("execsvc: ps after a reconnect: unexpected reply", "agent", sess.ID(), "type", rep.Type.String())
			return
		}
		if err != nil {
			s.log.Warn("execsvc: ps after a reconnect", "agent", sess.ID(), "err", err)
			return
		}
		running := make(map[string]bool, len(rep.Ps().Tasks))
		for _, t := range rep.Ps().Tasks {
			running[t.TaskID] = true
		}
		for _, e := range waiting {
			if running[e.tid] || e.isDone() {
				continue
			}
			s.log.Warn("execsvc: the agent no longer runs a task it was running before the reconnect; ended", "agent", e.agentID, "task", e.tid, "pid", e.PID())
			s.m.orphaned.WithLabelValues(orphanNotRunning).Inc()
			e.end(store.ResultFailed, protocol.CodeUnknown, MsgNoLongerRuns, store.TaskFailed)
		}
	}()
}

// waitingFor returns the execs of sess's agent that wait for its journaled
// result: fed by an earlier connection (which dropped, or was replaced).
func (s *Service) waitingFor(sess *hub.Session) []*Exec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Exec
	for k, e := range s.execs {
		if k.agent != sess.ID() {
			continue
		}
		e.mu.Lock()
		wait := e.acked && e.finalAt.IsZero() && e.sess != nil && e.sess != sess
		e.mu.Unlock()
		if wait {
			out = append(out, e)
		}
	}
	return out
}

// ErrNoPs: the agent cannot tell which tasks it runs in a way that
// accounts for its journal (it lacks stream.v1 or ack.v1).
var ErrNoPs = errors.New("agent has no ps with ack.v1")

// AgentTasks returns the ids of the tasks the agent runs, from its ps.
// The agent must speak stream.v1 and ack.v1: it replays its journal before
// it reads the request, so a task missing from the answer whose result
// is not stored by then will get none (see Reconnected).
func (s *Service) AgentTasks(ctx context.Context, agentID string) (map[string]bool, error) {
	sess, ok := s.hub.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("ps on agent %s: %w", agentID, hub.ErrAgentNotFound)
	}
	if !sess.HasCap(protocol.CapStream) || !sess.HasCap(protocol.CapAck) {
		return nil, fmt.Errorf("ps on agent %s: %w", agentID, ErrNoPs)
	}
	tasks, err := s.Ps(ctx, agentID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		out[t.TaskID] = true
	}
	return out, nil
}
