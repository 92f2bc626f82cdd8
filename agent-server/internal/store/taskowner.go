package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TaskOwner is the cluster member that runs a task (tasks.owner_*): its
// member id and instance, the fencing token of its ownership, and the end
// of its lease on the task. A task nobody owns (created by a single server,
// or by a member of a version before v10) has an empty Member and Token 0.
//
// Token grows by one at every take of the task (1 at creation); a state
// change fenced by it (TaskStateChange.OwnerToken, UpdateTaskStateOwned)
// is refused with ErrConflict once another member has taken the task over,
// so a previous owner that wakes up cannot finish it.
type TaskOwner struct {
	Member   string
	Instance string
	Token    int64
	Until    time.Time // the lease: renewed with the member's (RenewTaskLeases)
}

// OwnedTask is a task as TasksToTakeOver lists it.
type OwnedTask struct {
	ID    string
	Kind  TaskKind
	State TaskState
	Owner TaskOwner
}

// TaskOwnerStore keeps the ownership of tasks by the members of a cluster.
// Both backends implement it (the store suite runs it on each); only
// MySQL/MariaDB serves a real cluster. Assert it on a Store.
type TaskOwnerStore interface {
	// TaskOwnerOf reads the owner of task id; ErrNotFound when there is
	// no such task.
	TaskOwnerOf(ctx context.Context, id string) (TaskOwner, error)
	// ClaimTask makes member o.Member (instance o.Instance) the owner of
	// task id until o.Until when nobody owns it yet and it is pending or
	// running (a task created unowned and started by a member), and
	// returns the owner with its token. A task owned already: ErrConflict
	// naming the owner; a final one: ErrConflict; none: ErrNotFound.
	ClaimTask(ctx context.Context, id string, o TaskOwner) (TaskOwner, error)
	// RenewTaskLeases moves owner_until to until on every pending or
	// running task the member instance owns, in one UPDATE, and returns
	// how many.
	RenewTaskLeases(ctx context.Context, member, instance string, until time.Time) (int64, error)
	// TasksToTakeOver lists the pending or running tasks of kinds that
	// some member owns and that member o may take over by now: their
	// lease ended, or they are owned by another instance of o's own member
	// id (a previous process of this very member, which took the id from
	// it). Tasks nobody owns are never listed: they may be run by a server
	// that does not own tasks (an older version).
	TasksToTakeOver(ctx context.Context, kinds []TaskKind, o TaskOwner, now time.Time) ([]OwnedTask, error)
	// TakeOverTask makes o the owner of task id with the next token when
	// the task is still as t listed it (owner token t.Owner.Token) and may
	// still be taken over by now (as TasksToTakeOver says), in one
	// conditional UPDATE: of several members trying at once, exactly one
	// wins. It returns the new owner and whether this call won; a task
	// that was not won is no error.
	TakeOverTask(ctx context.Context, t OwnedTask, o TaskOwner, now time.Time) (TaskOwner, bool, error)
	// UpdateTaskStateOwned is UpdateTaskState fenced by the owner token:
	// ErrConflict, naming the owner, when the task's token is not token
	// (another member took it over).
	UpdateTaskStateOwned(ctx context.Context, id string, token int64, state TaskState, at time.Time, msg string) error
}

// taskOwnerDDL is the schema step of task ownership (migrations, v10).
// Existing rows and the tasks of a single server stay unowned (no member, token 0,
// no lease), which nothing takes over.
var taskOwnerDDL = []string{
	"ALTER TABLE tasks ADD COLUMN owner_member VARCHAR(64) NOT NULL DEFAULT ''",
	"ALTER TABLE tasks ADD COLUMN owner_instance VARCHAR(32) NOT NULL DEFAULT ''",
	"ALTER TABLE tasks ADD COLUMN owner_token BIGINT NOT NULL DEFAULT 0",
	"ALTER TABLE tasks ADD COLUMN owner_until DATETIME(6) NULL",
	"CREATE INDEX tasks_owner ON tasks (owner_member, owner_instance)",
}

// checkTaskOwner checks an owner to write; an empty one is valid only
// when optional.
func checkTaskOwner(o TaskOwner, optional bool) error {
	if o == (TaskOwner{}) && optional {
		return nil
	}
	if o.Member == "" || o.Instance == "" || o.Until.IsZero() {
		return fmt.Errorf("%w: task owner without member, instance or lease", ErrInvalid)
	}
	return checkLens("owner member", o.Member, MaxClusterMemberID, "owner instance", o.Instance, maxInstanceLen)
}

// takeable is the condition "member (?) instance (?) may take this task
// over by the clock (?)" (args: now, member, instance).
const takeable = "state IN ('pending', 'running') AND owner_member <> '' " +
	"AND (owner_until < ? OR (owner_member = ? AND owner_instance <> ?))"

func (s *sqlStore) TaskOwnerOf(ctx context.Context, id string) (TaskOwner, error) {
	defer s.observe("task_owner")()
	o, err := s.taskOwner(ctx, id)
	if err != nil {
		return TaskOwner{}, s.fail("read the owner of task "+id, err)
	}
	return o, nil
}

func (s *sqlStore) taskOwner(ctx context.Context, id string) (TaskOwner, error) {
	var o TaskOwner
	// On the writer: read after the write that set it.
	err := s.w.QueryRowContext(ctx, "SELECT owner_member, owner_instance, owner_token, owner_until FROM tasks WHERE id = ?", id).
		Scan(&o.Member, &o.Instance, &o.Token, dbTime{&o.Until})
	if errors.Is(err, sql.ErrNoRows) {
		return TaskOwner{}, ErrNotFound
	}
	return o, err
}

// LiveTaskOwner returns the member that owns task id and its advertised
// address when that member's row in cluster_members is live by now (its
// lease has not ended), whatever the instance: a member restarted on the
// same data dir takes its tasks back at once and keeps the files its
// layouts pulled. ok is false when the task does not exist, nobody owns
// it, or its owner is not live (its tasks await a takeover).
func (s *sqlStore) LiveTaskOwner(ctx context.Context, cluster, id string, now time.Time) (member, advertise string, ok bool, err error) {
	defer s.observe("live_task_owner")()
	err = s.r.QueryRowContext(ctx, "SELECT t.owner_member, m.advertise FROM tasks t "+
		"JOIN cluster_members m ON m.cluster_name = ? AND m.member_id = t.owner_member AND m.lease_until >= ? "+
		"WHERE t.id = ? AND t.owner_member <> ''", cluster, s.d.timeArg(utc(now)), id).Scan(&member, &advertise)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, s.fail("read the live owner of task "+id, err)
	}
	return member, advertise, true, nil
}

func (s *sqlStore) ClaimTask(ctx context.Context, id string, o TaskOwner) (TaskOwner, error) {
	defer s.observe("claim_task")()
	op := "claim task " + id + " for member " + o.Member
	if err := checkTaskOwner(o, false); err != nil {
		return TaskOwner{}, s.fail(op, err)
	}
	res, err := s.w.ExecContext(ctx, "UPDATE tasks SET owner_member = ?, owner_instance = ?, owner_token = owner_token + 1, owner_until = ? "+
		"WHERE id = ? AND owner_member = '' AND state IN ('pending', 'running')",
		o.Member, o.Instance, s.d.timeArg(utc(o.Until)), id)
	err = found(res, err)
	got, rerr := s.taskOwner(ctx, id)
	switch {
	case errors.Is(rerr, ErrNotFound):
		return TaskOwner{}, s.fail(op, ErrNotFound)
	case rerr != nil:
		return TaskOwner{}, s.fail(op, rerr)
	case errors.Is(err, ErrNotFound) && got.Member != "":
		return got, s.fail(op, fmt.Errorf("%w: task %s is owned by member %s", ErrConflict, id, got.Member))
	case errors.Is(err, ErrNotFound):
		return TaskOwner{}, s.fail(op, fmt.Errorf("%w: task %s has ended", ErrConflict, id))
	case err != nil:
		return TaskOwner{}, s.fail(op, err)
	}
	return got, nil
}

func (s *sqlStore) RenewTaskLeases(ctx context.Context, member, instance string, until time.Time) (int64, error) {
	defer s.observe("renew_task_leases")()
	op := "renew the task leases of member " + member
	if member == "" || instance == "" {
		return 0, s.fail(op, fmt.Errorf("%w: no member or instance", ErrInvalid))
	}
	res, err := s.w.ExecContext(ctx, "UPDATE tasks SET owner_until = ? WHERE owner_member = ? AND owner_instance = ? AND state IN ('pending', 'running')",
		s.d.timeArg(utc(until)), member, instance)
	if err != nil {
		return 0, s.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail(op, err)
	}
	return n, nil
}

func (s *sqlStore) TasksToTakeOver(ctx context.Context, kinds []TaskKind, o TaskOwner, now time.Time) ([]OwnedTask, error) {
	defer s.observe("tasks_to_take_over")()
	const op = "list the tasks to take over"
	if len(kinds) == 0 {
		return nil, nil
	}
	args := []any{s.d.timeArg(utc(now)), o.Member, o.Instance}
	for _, k := range kinds {
		args = append(args, string(k))
	}
	out, err := queryAll(ctx, s, "SELECT id, kind, state, owner_member, owner_instance, owner_token, owner_until FROM tasks WHERE "+takeable+
		" AND kind IN ("+placeholders(len(kinds))+") ORDER BY created_at, id", args, func(sc scanner) (OwnedTask, error) {
		var t OwnedTask
		var kind, state string
		err := sc.Scan(&t.ID, &kind, &state, &t.Owner.Member, &t.Owner.Instance, &t.Owner.Token, dbTime{&t.Owner.Until})
		t.Kind, t.State = TaskKind(kind), TaskState(state)
		return t, err
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

func (s *sqlStore) TakeOverTask(ctx context.Context, t OwnedTask, o TaskOwner, now time.Time) (TaskOwner, bool, error) {
	defer s.observe("take_over_task")()
	op := "take over task " + t.ID + " for member " + o.Member
	if err := checkTaskOwner(o, false); err != nil {
		return TaskOwner{}, false, s.fail(op, err)
	}
	res, err := s.w.ExecContext(ctx, "UPDATE tasks SET owner_member = ?, owner_instance = ?, owner_token = owner_token + 1, owner_until = ? "+
		"WHERE id = ? AND owner_token = ? AND "+takeable,
		o.Member, o.Instance, s.d.timeArg(utc(o.Until)), t.ID, t.Owner.Token, s.d.timeArg(utc(now)), o.Member, o.Instance)
	if err = found(res, err); errors.Is(err, ErrNotFound) {
		return TaskOwner{}, false, nil // taken by another member, renewed, or ended meanwhile
	}
	if err != nil {
		return TaskOwner{}, false, s.fail(op, err)
	}
	o.Token, o.Until = t.Owner.Token+1, utc(o.Until)
	return o, true, nil
}

func (s *sqlStore) UpdateTaskStateOwned(ctx context.Context, id string, token int64, state TaskState, at time.Time, msg string) error {
	defer s.observe("update_task_state")()
	op := fmt.Sprintf("set task %s %s", id, state)
	if !state.valid() || token <= 0 {
		return s.fail(op, fmt.Errorf("%w: task state %q, owner token %d", ErrInvalid, state, token))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.setTaskStateTx(ctx, tx, TaskStateChange{ID: id, State: state, At: at, Msg: msg, OwnerToken: token})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}
