package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/store"
)

// Resume picks up the tasks a previous process left running (see the
// package doc). Call it once, after the hub serves.
func (s *Service) Resume(ctx context.Context) error {
	for _, kind := range []store.TaskKind{store.KindFleet, store.KindLayout, store.KindUpgrade} {
		var tasks []store.Task
		for page := 1; ; page++ {
			ts, total, err := s.st.ListTasks(ctx, store.TaskFilter{Kind: kind, States: []store.TaskState{store.TaskPending, store.TaskRunning}, Paging: store.Paging{Page: page, Size: store.MaxPageSize}})
			if err != nil {
				return fmt.Errorf("resume: list tasks: %w", err)
			}
			tasks = append(tasks, ts...)
			if len(ts) == 0 || len(tasks) >= total {
				break
			}
		}
		for _, t := range tasks {
			if s.lookup(t.ID) != nil {
				continue
			}
			s.resumeTask(ctx, t, 0)
		}
	}
	return nil
}

// resumeTask picks up task t, left running by a previous process (token
// 0) or taken over from another cluster member (its owner token now):
// fleet tasks are resumed, layouts and upgrades ended. A failure ends
// the task failed.
func (s *Service) resumeTask(ctx context.Context, t store.Task, token int64) {
	if token > 0 {
		s.own(t.ID, token)
		defer func() {
			if s.lookup(t.ID) == nil { // not resumed, or ended already
				s.disown(t.ID, token)
			}
		}()
	}
	var err error
	switch t.Kind {
	case store.KindFleet:
		err = s.resumeFleet(ctx, t)
	case store.KindUpgrade:
		err = s.abandonUpgrade(ctx, t)
	default:
		err = s.abandonLayout(ctx, t)
	}
	if err != nil {
		s.log.Error("tasks: resume", "task", t.ID, "err", err)
		s.setState(t.ID, store.TaskFailed, "could not resume after a restart: "+err.Error())
	}
}

func (s *Service) resumeFleet(ctx context.Context, t store.Task) error {
	var spec fleetSpec
	if err := json.Unmarshal(t.Spec, &spec); err != nil {
		return fmt.Errorf("bad spec: %w", err)
	}
	cmd, err := spec.command()
	if err != nil {
		return err
	}
	rs, err := s.allResults(ctx, t.ID)
	if err != nil {
		return err
	}
	byAgent := make(map[string]store.Result, len(rs))
	for _, r := range rs {
		byAgent[r.AgentID] = r
	}
	fr := &fleetRun{s: s, id: t.ID, spec: spec, cmd: cmd, createdBy: t.CreatedBy, waitUntil: time.Now().Add(max(s.o.ResumeWait, time.Until(t.StartedAt.Add(time.Duration(spec.WaitOffline)))))}
	for i, id := range spec.Agents {
		r, ok := byAgent[id]
		switch {
		case !ok || r.State == store.ResultPending:
			fr.todo = append(fr.todo, i)
		case r.State == store.ResultRunning || r.State == store.ResultLost && !r.StartedAt.IsZero():
			fr.doubt = append(fr.doubt, i)
			fr.prior.done++
		case r.State.Final():
			fr.prior.done++
			if r.State != store.ResultOK && r.State != store.ResultSkipped {
				fr.prior.failures++
			}
		default: // lost before it started (offline at start): stays lost
		}
	}
	s.log.Info("tasks: resuming a fleet task", "task", t.ID, "to_launch", len(fr.todo), "awaiting_results", len(fr.doubt))
	return s.start(t.ID, store.KindFleet, fr.run)
}

// awaitJournaled waits for the result of a command started before a
// restart: the agent replays it through the exec service after it
// reconnects. A cancel kills the command.
func (f *fleetRun) awaitJournaled(ctx context.Context, r *run, id string) {
	s := f.s
	res, err := s.st.GetResult(ctx, f.id, id)
	if err != nil {
		return
	}
	timeout := f.cmd.Timeout
	deadline := time.Now().Add(s.o.ResumeWait)
	if !res.StartedAt.IsZero() {
		deadline = later(deadline, res.StartedAt.Add(timeout+s.o.ResumeWait))
	}
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	killed := false
	lister, canList := s.x.(agentTasks)
	canList = canList && f.spec.Install == nil // ps lists commands, not installs
	wasOnline := false
	for {
		res, err = s.st.GetResult(context.WithoutCancel(ctx), f.id, id)
		if err == nil && res.State.Final() {
			ev := Event{Type: EventState, Agent: id, State: string(res.State), Msg: res.Msg}
			code := res.ExitCode
			ev.ExitCode = &code
			r.events.publish(ev)
			return
		}
		// Once the agent is back, its ps says whether the result can still
		// come: the agent replays its journal before it answers, so a task
		// it does not list and whose result is not stored by then has none.
		// An install is asked about instead: the install service stores
		// the answer (an install the agent has no record of fails), and
		// the loop publishes it.
		_, online := s.x.Online(id)
		if online && !wasOnline && err == nil {
			if canList && f.gone(ctx, r, lister, id) {
				return
			}
			if f.spec.Install != nil && s.o.Install != nil {
				actx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if err := s.o.Install.AskInstall(actx, id, f.id); err != nil {
					s.log.Info("tasks: cannot ask the agent about an install started before the restart", "task", f.id, "agent", id, "err", err)
				}
				cancel()
			}
		}
		wasOnline = online
		if time.Now().After(deadline) {
			msg := "server restarted mid-run and the agent did not report its journaled result in time"
			s.putResults(store.Result{TaskID: f.id, AgentID: id, State: store.ResultLost, Msg: msg, StartedAt: res.StartedAt, PID: res.PID})
			r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultLost), Msg: msg})
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			if !cancelled(ctx) {
				return
			}
			if !killed && f.spec.Install == nil { // an install is not killed: it runs to its end
				killed = true
				kctx, cancel := context.WithTimeout(context.Background(), s.o.KillWait)
				if err := s.x.Kill(kctx, id, f.id); err != nil {
					s.log.Warn("tasks: kill a resumed command", "task", f.id, "agent", id, "err", err)
				}
				cancel()
				deadline = time.Now().Add(s.o.KillWait)
			}
			select {
			case <-t.C:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// gone asks the agent whether it still runs the command and, when it does
// not and no result arrived, ends its result as failed. It reports whether
// the result is final now.
func (f *fleetRun) gone(ctx context.Context, r *run, lister agentTasks, id string) bool {
	s := f.s
	lctx, cancel := context.WithTimeout(ctx, s.o.KillWait+30*time.Second)
	running, err := lister.AgentTasks(lctx, id)
	cancel()
	if err != nil {
		s.log.Info("tasks: cannot ask the agent whether a resumed command runs", "task", f.id, "agent", id, "err", err)
		return false
	}
	if running[f.id] {
		return false
	}
	cur, err := s.st.GetResult(context.WithoutCancel(ctx), f.id, id)
	if err != nil || cur.State.Final() {
		return false // the replayed result is stored: the loop publishes it
	}
	s.log.Warn("tasks: the agent no longer runs a command started before the restart; ended", "task", f.id, "agent", id, "pid", cur.PID)
	msg := execsvc.MsgNoLongerRuns
	code := protocol.CodeUnknown
	cur.State, cur.ExitCode, cur.Msg, cur.EndedAt = store.ResultFailed, code, msg, time.Now().UTC()
	s.putResults(cur) // the output stored so far stays
	r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultFailed), Msg: msg, ExitCode: &code})
	return true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
