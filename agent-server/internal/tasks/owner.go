package tasks

import (
	"context"
	"errors"
	"time"

	"github.com/agentfleet/agent-server/internal/store"
)

// Owner is the cluster member a Service runs tasks for (docs/cluster.md,
// "Task ownership and takeover").
//
// On a member, every task the service creates is owned by it (the store
// writes the owner with token 1, and the member's lease renewals move the
// task's lease along). TakeOver, run at the cadence of those renewals,
// takes over the pending and running tasks whose owner's lease has ended
// — one conditional UPDATE that raises the owner token, so exactly one
// member wins each — and resumes them as Resume does after a restart:
// final results kept, running ones awaited for the agent's journaled
// result, pending ones launched; layouts and upgrades are ended failed.
// Every state change of an owned task is fenced by its token, and a run
// whose task another member took over is stopped without writing
// anything more.
type Owner interface {
	// TaskOwner is what this member writes as the owner of a task: its
	// member id, instance and the end of its current lease.
	TaskOwner() store.TaskOwner
}

// errLostOwnership is the cause of a run stopped because another member
// took its task over: like a shutdown, it writes nothing more.
var errLostOwnership = errors.New("task taken over by another cluster member")

// halted reports whether a run must stop without writing anything: the
// service closes, or the task is another member's now.
func (s *Service) halted(ctx context.Context) bool {
	return s.ctx.Err() != nil || errors.Is(context.Cause(ctx), errLostOwnership)
}

// createTask stores a new task, owned by this member on a cluster.
func (s *Service) createTask(ctx context.Context, t store.Task) (store.Task, error) {
	if s.o.Owner != nil {
		t.Owner = s.o.Owner.TaskOwner()
	}
	t, err := s.st.CreateTask(ctx, t)
	if err == nil && t.Owner.Token > 0 {
		s.own(t.ID, t.Owner.Token)
	}
	return t, err
}

func (s *Service) own(id string, token int64) {
	s.mu.Lock()
	s.owned[id] = token
	s.mu.Unlock()
}

// disown forgets the token of a task that does not run here (any more).
func (s *Service) disown(id string, token int64) {
	s.mu.Lock()
	if s.owned[id] == token {
		delete(s.owned, id)
	}
	s.mu.Unlock()
}

// ownerToken is the owner token this member holds task id with; 0 when
// it does not own it (a single server, or a task run elsewhere).
func (s *Service) ownerToken(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned[id]
}

// takeOverKinds are the kinds of tasks a member takes over.
var takeOverKinds = []store.TaskKind{store.KindFleet, store.KindLayout, store.KindUpgrade}

// TakeOver stops the local runs of tasks another member has taken over,
// then takes over and resumes the tasks whose owner's lease has ended (or
// that a previous process of this very member owned). Call it once the
// member has joined, then at every lease renewal; it does nothing on a
// single server. It returns how many tasks it took over.
func (s *Service) TakeOver(ctx context.Context) (int, error) {
	if s.o.Owner == nil {
		return 0, nil
	}
	if err := s.checkOwned(ctx); err != nil {
		return 0, err
	}
	me := s.o.Owner.TaskOwner()
	now := time.Now()
	list, err := s.ost.TasksToTakeOver(ctx, takeOverKinds, me, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ot := range list {
		if s.lookup(ot.ID) != nil {
			continue // runs here: this member's renewals lag; it is not taken from itself
		}
		o, won, err := s.ost.TakeOverTask(ctx, ot, me, now)
		if err != nil {
			return n, err
		}
		if !won {
			continue // another member was first
		}
		t, err := s.st.GetTask(ctx, ot.ID)
		if err != nil {
			return n, err
		}
		if t.State.Final() {
			// Cancelled on another member between the listing and the take
			// (a cancel of a task whose owner's lease ended is stored
			// there): nothing to resume.
			s.log.Info("tasks: took over a task that has ended; not resumed", "task", t.ID, "state", t.State)
			continue
		}
		n++
		s.log.Info("tasks: took over a task", "task", t.ID, "kind", t.Kind, "from_member", ot.Owner.Member, "lease_ended", ot.Owner.Until, "owner_token", o.Token)
		s.resumeTask(ctx, t, o.Token)
	}
	return n, nil
}

// checkOwned stops the runs whose task another member has taken over (this
// member's lease lapsed: a pause, or the database out of reach).
func (s *Service) checkOwned(ctx context.Context) error {
	s.mu.Lock()
	owned := make(map[string]int64, len(s.owned))
	for id, tok := range s.owned {
		owned[id] = tok
	}
	s.mu.Unlock()
	for id, tok := range owned {
		o, err := s.ost.TaskOwnerOf(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted: its run ends with its own errors
		}
		if err != nil {
			return err
		}
		if o.Token == tok {
			s.noticeCancel(ctx, id)
			continue
		}
		s.log.Warn("tasks: another member took this task over; its run here stops", "task", id, "member", o.Member, "owner_token", o.Token)
		s.disown(id, tok)
		if r := s.lookup(id); r != nil {
			r.cancel(errLostOwnership)
		}
	}
	return nil
}

// noticeCancel stops the run of a task this member owns when the task was
// cancelled in the store by another member (one that saw no live owner:
// this member's lease had lapsed, or its owner was cached as unknown).
// Cancels reach the owner over HTTP otherwise (the route is forwarded).
func (s *Service) noticeCancel(ctx context.Context, id string) {
	r := s.lookup(id)
	if r == nil {
		return
	}
	t, err := s.st.GetTask(ctx, id)
	if err != nil || t.State != store.TaskCancelled {
		return
	}
	s.log.Info("tasks: the task was cancelled on another member; its run here stops", "task", id)
	r.cancel(errCancelled)
}
