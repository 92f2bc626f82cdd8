package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

const taskCols = "id, kind, spec, state, created_by, created_at, started_at, finished_at, msg"

// newTaskID returns 12 hex digits of Unix milliseconds then 8 random hex
// digits: unique and ordered by creation time.
func newTaskID(now time.Time) (string, error) {
	var b [10]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (s *sqlStore) CreateTask(ctx context.Context, t Task) (Task, error) {
	defer s.observe("create_task")()
	return s.createTask(ctx, t, nil)
}

func (s *sqlStore) CreateTaskResults(ctx context.Context, t Task, rs []Result) (Task, error) {
	defer s.observe("create_task_results")()
	return s.createTask(ctx, t, rs)
}

// createTask stores t and, in the same transaction, rs (their TaskID set
// to t's).
func (s *sqlStore) createTask(ctx context.Context, t Task, rs []Result) (Task, error) {
	const op = "create task"
	if t.State == "" {
		t.State = TaskPending
	}
	switch {
	case !t.Kind.valid():
		return Task{}, s.fail(op, fmt.Errorf("%w: task kind %q", ErrInvalid, t.Kind))
	case !t.State.valid():
		return Task{}, s.fail(op, fmt.Errorf("%w: task state %q", ErrInvalid, t.State))
	}
	if err := checkLens("task id", t.ID, maxTaskIDLen, "created_by", t.CreatedBy, maxTextLen); err != nil {
		return Task{}, s.fail(op, err)
	}
	if err := checkJSON("task spec", t.Spec); err != nil {
		return Task{}, s.fail(op, err)
	}
	if err := checkTaskOwner(t.Owner, true); err != nil {
		return Task{}, s.fail(op, err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	t.CreatedAt, t.StartedAt, t.FinishedAt = utc(t.CreatedAt), utc(t.StartedAt), utc(t.FinishedAt)
	if t.ID == "" {
		id, err := newTaskID(t.CreatedAt)
		if err != nil {
			return Task{}, s.fail(op, err)
		}
		t.ID = id
	}
	t.Summary = Summary{}
	args := []any{t.ID, string(t.Kind), nullBytes(t.Spec), string(t.State), t.CreatedBy,
		s.d.timeArg(t.CreatedAt), s.d.timeArg(t.StartedAt), s.d.timeArg(t.FinishedAt), t.Msg}
	insertQ := insertTaskQ
	if t.Owner.Member != "" {
		t.Owner.Token, t.Owner.Until = 1, utc(t.Owner.Until)
		insertQ = insertOwnedTaskQ
		args = append(args, t.Owner.Member, t.Owner.Instance, t.Owner.Token, s.d.timeArg(t.Owner.Until))
	}
	if len(rs) == 0 {
		if _, err := s.execW(ctx, insertQ, args...); err != nil {
			return Task{}, s.fail(op+" "+t.ID, err)
		}
		return t, nil
	}
	rs = slices.Clone(rs)
	for i := range rs {
		rs[i].TaskID = t.ID
	}
	if err := checkResults(rs); err != nil {
		return Task{}, s.fail(op+" "+t.ID, err)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.execTx(ctx, tx, insertQ, args...); err != nil {
			return err
		}
		return s.putResultsTx(ctx, tx, rs)
	})
	if err != nil {
		return Task{}, s.fail(op+" "+t.ID, err)
	}
	return t, nil
}

func scanTask(sc scanner) (Task, error) {
	var t Task
	var spec []byte
	var kind, state string
	if err := sc.Scan(&t.ID, &kind, &spec, &state, &t.CreatedBy, dbTime{&t.CreatedAt}, dbTime{&t.StartedAt}, dbTime{&t.FinishedAt}, &t.Msg); err != nil {
		return Task{}, err
	}
	t.Kind, t.State = TaskKind(kind), TaskState(state)
	if len(spec) > 0 {
		t.Spec = json.RawMessage(spec)
	}
	return t, nil
}

func (s *sqlStore) GetTask(ctx context.Context, id string) (Task, error) {
	defer s.observe("get_task")()
	op := "get task " + id
	t, err := scanTask(s.r.QueryRowContext(ctx, "SELECT "+taskCols+" FROM tasks WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Task{}, s.fail(op, ErrNotFound)
	}
	if err != nil {
		return Task{}, s.fail(op, err)
	}
	ts := []Task{t}
	if err := s.summarise(ctx, ts); err != nil {
		return Task{}, s.fail(op, err)
	}
	return ts[0], nil
}

// summarise fills the Summary of each task with one grouped query.
func (s *sqlStore) summarise(ctx context.Context, ts []Task) error {
	if len(ts) == 0 {
		return nil
	}
	idx := make(map[string]int, len(ts))
	args := make([]any, len(ts))
	for i, t := range ts {
		idx[t.ID] = i
		args[i] = t.ID
	}
	rows, err := s.r.QueryContext(ctx, "SELECT task_id, state, COUNT(*) FROM results WHERE task_id IN ("+placeholders(len(ts))+") GROUP BY task_id, state", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, state string
		var n int
		if err := rows.Scan(&id, &state, &n); err != nil {
			return err
		}
		if i, ok := idx[id]; ok {
			ts[i].Summary.add(ResultState(state), n)
		}
	}
	return rows.Err()
}

func (s *sqlStore) ListTasks(ctx context.Context, f TaskFilter) ([]Task, int, error) {
	defer s.observe("list_tasks")()
	const op = "list tasks"
	var conds []string
	var args []any
	kinds := f.Kinds
	if f.Kind != "" {
		kinds = append(slices.Clip(kinds), f.Kind)
	}
	if len(kinds) > 0 {
		conds = append(conds, "kind IN ("+placeholders(len(kinds))+")")
		for _, k := range kinds {
			args = append(args, string(k))
		}
	}
	if f.CreatedBy != "" {
		conds = append(conds, "created_by = ?")
		args = append(args, f.CreatedBy)
	}
	if len(f.States) > 0 {
		conds = append(conds, "state IN ("+placeholders(len(f.States))+")")
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	out, total, err := listPage(ctx, s, f.Paging, taskCols, "tasks", where, "created_at DESC, id DESC", args, scanTask)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	if err := s.summarise(ctx, out); err != nil {
		return nil, 0, s.fail(op, err)
	}
	return out, total, nil
}

// The task writes of UpdateTaskState and CreateTask (prepared: hotWrites).
const (
	insertTaskQ     = "INSERT INTO tasks (" + taskCols + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
	setTaskPendingQ = "UPDATE tasks SET state = ? WHERE id = ? AND state = 'pending'"
	setTaskRunningQ = "UPDATE tasks SET state = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND state IN ('pending', 'running')"
	setTaskFinalQ   = "UPDATE tasks SET state = ?, finished_at = ?, msg = ? WHERE id = ? AND state IN ('pending', 'running')"
	// insertOwnedTaskQ is insertTaskQ with the owner of a task created on a
	// cluster member; fencedQ is the condition added to the three updates
	// above for a change fenced by an owner token.
	insertOwnedTaskQ = "INSERT INTO tasks (" + taskCols + ", owner_member, owner_instance, owner_token, owner_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	fencedQ          = " AND owner_token = ?"
)

func (s *sqlStore) UpdateTaskState(ctx context.Context, id string, state TaskState, at time.Time, msg string) error {
	defer s.observe("update_task_state")()
	op := fmt.Sprintf("set task %s %s", id, state)
	if !state.valid() {
		return s.fail(op, fmt.Errorf("%w: task state %q", ErrInvalid, state))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.setTaskStateTx(ctx, tx, TaskStateChange{ID: id, State: state, At: at, Msg: msg})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// setTaskStateTx is UpdateTaskState's write, in tx (c.State valid).
func (s *sqlStore) setTaskStateTx(ctx context.Context, tx *sql.Tx, c TaskStateChange) error {
	at := c.At
	if at.IsZero() {
		at = s.now()
	}
	ts := s.d.timeArg(utc(at))
	var q string
	var args []any
	switch {
	case c.State == TaskPending:
		q, args = setTaskPendingQ, []any{string(c.State), c.ID}
	case c.State == TaskRunning:
		q, args = setTaskRunningQ, []any{string(c.State), ts, c.ID}
	case c.State.Final():
		q, args = setTaskFinalQ, []any{string(c.State), ts, c.Msg, c.ID}
	default:
		return fmt.Errorf("%w: task state %q", ErrInvalid, c.State)
	}
	if c.OwnerToken != 0 {
		q, args = q+fencedQ, append(args, c.OwnerToken)
	}
	res, err := s.execTx(ctx, tx, q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n > 0 {
		return nil
	}
	var cur, member string
	var token int64
	err = tx.QueryRowContext(ctx, "SELECT state, owner_member, owner_token FROM tasks WHERE id = ?", c.ID).Scan(&cur, &member, &token)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if c.OwnerToken != 0 && token != c.OwnerToken {
		return fmt.Errorf("%w: task is owned by member %s now (owner token %d, not %d)", ErrConflict, member, token, c.OwnerToken)
	}
	return fmt.Errorf("%w: task is %s", ErrConflict, cur)
}

func (s *sqlStore) DeleteTask(ctx context.Context, id string) error {
	defer s.observe("delete_task")()
	return s.deleteCascade(ctx, "delete task "+id, "DELETE FROM tasks WHERE id = ?", id,
		[]string{"DELETE FROM outputs WHERE task_id = ?", "DELETE FROM install_actions WHERE task_id = ?", "DELETE FROM results WHERE task_id = ?"})
}
