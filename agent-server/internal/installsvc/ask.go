package installsvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/store"
)

// Asking an agent about an install (install_status_req).
//
// An install whose result is not final may have no report coming:
// install_run may not have reached the agent (its connection or the
// server went down between storing the start and sending it). When the
// agent is back — reconnected to this server (Reconnected), or to a
// restarted server whose resumed task waits for the host (the task
// service calls Ask) — the server asks, and the agent answers with an
// install_done that is not journaled (onAnswer):
//
//   - done: the log is stored and, while the result is not final, the
//     outcome (a journaled report stored earlier wins: asking never undoes
//     a report);
//   - running (Done false): the actions so far are stored; the agent's
//     journaled report comes at the end;
//   - unknown: the agent holds no record of the install. The host's result
//     becomes failed with MsgUnknown (a report that still comes replaces
//     it), unless install_run went out on the connection the answer came
//     on (the agent may not have begun it yet; the deadline watcher bounds
//     that wait).
//
// An agent answers unknown for a tid only when asked about it: an answer
// nobody asked for changes nothing.

// MsgUnknown is the result of an install its agent has no record of.
const MsgUnknown = "the agent has no record of this install: install_run did not reach it before its connection or the server went down"

// Labels of agentserver_install_status_asked_total.
const (
	askSent    = "sent"
	askUnsent  = "send_failed"
	askUnknown = "unknown"
)

// askTTL is how long an unanswered question is remembered.
const askTTL = 10 * time.Minute

// Ask sends install_status_req about task taskID's install to the agent;
// the answer is stored when it comes. The agent must be online and
// announce install.v1.
func (s *Service) Ask(ctx context.Context, agentID, taskID string) error {
	sess, ok := s.o.Hub.Session(agentID)
	if !ok {
		return fmt.Errorf("ask agent %s about install %s: %w", agentID, taskID, hub.ErrAgentNotFound)
	}
	return s.ask(ctx, sess, taskID)
}

func (s *Service) ask(ctx context.Context, sess *hub.Session, taskID string) error {
	if !sess.HasCap(protocol.CapInstall) {
		return fmt.Errorf("ask agent %s about install %s: %w", sess.ID(), taskID, ErrNoCapability)
	}
	now := time.Now()
	s.mu.Lock()
	for k, at := range s.asking {
		if now.Sub(at) > askTTL {
			delete(s.asking, k)
		}
	}
	s.asking[runKey{sess.ID(), taskID}] = now
	s.mu.Unlock()
	if err := sess.Send(ctx, &protocol.Msg{Type: protocol.TypeInstallStatusReq, TID: taskID}); err != nil {
		s.asked.WithLabelValues(askUnsent).Inc()
		return fmt.Errorf("ask agent %s about install %s: %w", sess.ID(), taskID, err)
	}
	s.asked.WithLabelValues(askSent).Inc()
	s.log.Info("install: asked the agent what became of an install", "agent", sess.ID(), "task", taskID)
	return nil
}

// Reconnected asks an agent that connected about the installs this server
// sent it on an earlier connection and still waits for. It returns at
// once; the questions go out from a goroutine Close waits for.
func (s *Service) Reconnected(sess *hub.Session) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var tids []string
	for k, r := range s.runs {
		if k.agent == sess.ID() && r.sess != sess {
			tids = append(tids, k.task)
		}
	}
	if len(tids) == 0 {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for _, tid := range tids {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			err := s.ask(ctx, sess, tid)
			cancel()
			if err != nil {
				s.log.Warn("install: asking a reconnected agent", "agent", sess.ID(), "task", tid, "err", err)
				return
			}
		}
	}()
}

// onAnswer handles the install messages that are not journaled: answers
// to install_status_req, and the reports of an agent without ack.v1.
func (s *Service) onAnswer(sess *hub.Session, m *protocol.Msg) {
	var err error
	if st := m.InstallDone(); st != nil && st.Unknown {
		err = s.unknown(sess, m.TID)
	} else {
		err = s.onMessage(sess, m, false)
	}
	if err != nil {
		s.log.Warn("install: storing an agent message", "agent", sess.ID(), "tid", m.TID, "err", err)
	}
}

// unknown settles an install the agent says it has no record of.
func (s *Service) unknown(sess *hub.Session, tid string) error {
	agent := sess.ID()
	key := runKey{agent, tid}
	s.mu.Lock()
	_, asked := s.asking[key]
	delete(s.asking, key)
	r := s.runs[key]
	s.mu.Unlock()
	switch {
	case !asked:
		s.dropped.WithLabelValues(dropMalformed).Inc()
		s.log.Warn("install: an answer nobody asked for dropped", "agent", agent, "tid", tid)
		return nil
	case r != nil && r.sess == sess:
		return nil // install_run went out on this connection: it may not have begun
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	cur, err := s.o.Store.GetResult(ctx, tid, agent)
	if errors.Is(err, store.ErrNotFound) {
		s.dropped.WithLabelValues(dropUnknown).Inc()
		return nil
	}
	if err != nil {
		return err
	}
	if cur.State.Final() {
		return nil // reported meanwhile
	}
	cur.State, cur.ExitCode, cur.Msg, cur.EndedAt = store.ResultFailed, 1, MsgUnknown, time.Now().UTC()
	if err := s.o.Store.PutResults(ctx, []store.Result{cur}); err != nil {
		return err
	}
	s.asked.WithLabelValues(askUnknown).Inc()
	s.log.Warn("install: the agent has no record of an install; failed", "agent", agent, "task", tid)
	if r != nil {
		r.end(cur)
		s.forget(r)
	}
	return nil
}
