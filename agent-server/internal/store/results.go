package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// taskExistsQ checks one task (prepared: hotWrites).
const taskExistsQ = "SELECT id FROM tasks WHERE id IN (?)"

const resultCols = "task_id, agent_id, exit_code, pid, started_at, ended_at, msg, output_head, output_tail, dropped, output_bytes, state"

// resultUpdate is the update part of the results upsert. A final stored
// state is kept against a non-final incoming one. state comes last: MySQL
// evaluates assignments left to right on the updated row.
func (s *sqlStore) resultUpdate() string { return s.resultUpd }

func (s *sqlStore) buildResultUpdate() string {
	ex := s.d.excluded
	const finals = "('ok', 'failed', 'timed_out', 'skipped')"
	keep := "(state IN " + finals + " AND " + ex("state") + " NOT IN " + finals + ")"
	var set []string
	for _, c := range strings.Split(resultCols, ", ")[2:] {
		set = append(set, c+" = CASE WHEN "+keep+" THEN "+c+" ELSE "+ex(c)+" END")
	}
	return s.d.upsert("task_id", "agent_id") + " " + strings.Join(set, ", ")
}

func (s *sqlStore) PutResults(ctx context.Context, rs []Result) error {
	defer s.observe("put_results")()
	op := fmt.Sprintf("put %d results", len(rs))
	if err := checkResults(rs); err != nil {
		return s.fail(op, err)
	}
	if len(rs) == 0 {
		return nil
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.putResultsTx(ctx, tx, rs) }); err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) PutResultsStates(ctx context.Context, rs []Result, cs []TaskStateChange) error {
	defer s.observe("put_results_states")()
	op := fmt.Sprintf("put %d results and %d task states", len(rs), len(cs))
	if err := checkResults(rs); err != nil {
		return s.fail(op, err)
	}
	for _, c := range cs {
		if !c.State.valid() {
			return s.fail(op, fmt.Errorf("%w: task %s state %q", ErrInvalid, c.ID, c.State))
		}
	}
	if len(rs) == 0 && len(cs) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if len(rs) > 0 {
			if err := s.putResultsTx(ctx, tx, rs); err != nil {
				return err
			}
		}
		for _, c := range cs {
			if err := s.setTaskStateTx(ctx, tx, c); err != nil && !errors.Is(err, ErrConflict) {
				return fmt.Errorf("set task %s %s: %w", c.ID, c.State, err)
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// checkResults validates results before they are stored.
func checkResults(rs []Result) error {
	for _, r := range rs {
		if r.TaskID == "" || r.AgentID == "" {
			return fmt.Errorf("%w: result without task or agent id", ErrInvalid)
		}
		if !r.State.valid() {
			return fmt.Errorf("%w: result state %q", ErrInvalid, r.State)
		}
		if err := checkLens("task id", r.TaskID, maxTaskIDLen, "agent id", r.AgentID, maxIDLen); err != nil {
			return err
		}
	}
	return nil
}

// putResultsTx is PutResults' write, in tx (rs checked, not empty).
func (s *sqlStore) putResultsTx(ctx context.Context, tx *sql.Tx, rs []Result) error {
	if err := s.tasksExist(ctx, tx, rs); err != nil {
		return err
	}
	if len(rs) == 1 {
		// The exec path's one row: the statement as prepared, not rebuilt.
		r := rs[0]
		_, err := s.execTx(ctx, tx, s.resultOneQ, r.TaskID, r.AgentID, r.ExitCode, r.PID,
			s.d.timeArg(utc(r.StartedAt)), s.d.timeArg(utc(r.EndedAt)), r.Msg,
			nullBytes(r.OutputHead), nullBytes(r.OutputTail), r.Dropped, r.OutputBytes, string(r.State))
		return err
	}
	return s.batchInsert(ctx, tx, "INSERT INTO results ("+resultCols+") VALUES ", s.resultUpdate(), 12, len(rs), func(i int) ([]any, int) {
		r := rs[i]
		return []any{r.TaskID, r.AgentID, r.ExitCode, r.PID,
			s.d.timeArg(utc(r.StartedAt)), s.d.timeArg(utc(r.EndedAt)), r.Msg,
			nullBytes(r.OutputHead), nullBytes(r.OutputTail), r.Dropped, r.OutputBytes, string(r.State),
		}, len(r.OutputHead) + len(r.OutputTail) + len(r.Msg) + 128
	})
}

// tasksExist checks that every task the results name exists. The MySQL
// schema has no foreign keys (mysqlschema creates tables in name order), so
// both backends check here.
func (s *sqlStore) tasksExist(ctx context.Context, tx *sql.Tx, rs []Result) error {
	if len(rs) == 1 {
		var id string
		err := s.queryRowTx(ctx, tx, taskExistsQ, rs[0].TaskID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("task %s: %w", rs[0].TaskID, ErrNotFound)
		}
		return err
	}
	ids := map[string]bool{}
	var args []any
	for _, r := range rs {
		if _, seen := ids[r.TaskID]; !seen {
			ids[r.TaskID] = false
			args = append(args, r.TaskID)
		}
	}
	for chunk := range slices.Chunk(args, maxBatchRows) {
		rows, err := s.queryTx(ctx, tx, "SELECT id FROM tasks WHERE id IN ("+placeholders(len(chunk))+")", chunk...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, a := range args {
		if !ids[a.(string)] {
			return fmt.Errorf("task %s: %w", a, ErrNotFound)
		}
	}
	return nil
}

func scanResult(sc scanner) (Result, error) {
	var r Result
	var state string
	err := sc.Scan(&r.TaskID, &r.AgentID, &r.ExitCode, &r.PID, dbTime{&r.StartedAt}, dbTime{&r.EndedAt}, &r.Msg,
		&r.OutputHead, &r.OutputTail, &r.Dropped, &r.OutputBytes, &state)
	r.State = ResultState(state)
	return r, err
}

func (s *sqlStore) GetResult(ctx context.Context, taskID, agentID string) (Result, error) {
	defer s.observe("get_result")()
	op := fmt.Sprintf("get result of agent %s in task %s", agentID, taskID)
	r, err := scanResult(s.r.QueryRowContext(ctx, "SELECT "+resultCols+" FROM results WHERE task_id = ? AND agent_id = ?", taskID, agentID))
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, s.fail(op, ErrNotFound)
	}
	if err != nil {
		return Result{}, s.fail(op, err)
	}
	return r, nil
}

// ResultByPID returns the result of agentID's command with that pid that
// started last: the pid the agent reported, as 1.5's status and pty routes
// name a command. ErrNotFound when there is none.
func (s *sqlStore) ResultByPID(ctx context.Context, agentID string, pid int) (Result, error) {
	defer s.observe("result_by_pid")()
	op := fmt.Sprintf("get result of agent %s with pid %d", agentID, pid)
	r, err := scanResult(s.r.QueryRowContext(ctx, "SELECT "+resultCols+" FROM results WHERE agent_id = ? AND pid = ? ORDER BY started_at DESC, task_id DESC LIMIT 1", agentID, pid))
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, s.fail(op, ErrNotFound)
	}
	if err != nil {
		return Result{}, s.fail(op, err)
	}
	return r, nil
}

func (s *sqlStore) ListResults(ctx context.Context, taskID string, f ResultFilter) ([]Result, int, error) {
	defer s.observe("list_results")()
	op := "list results of task " + taskID
	where := " WHERE task_id = ?"
	args := []any{taskID}
	if len(f.States) > 0 {
		where += " AND state IN (" + placeholders(len(f.States)) + ")"
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	out, total, err := listPage(ctx, s, f.Paging, resultCols, "results", where, "agent_id", args, scanResult)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	return out, total, nil
}

func (s *sqlStore) CountResults(ctx context.Context, taskID string) (Summary, error) {
	defer s.observe("count_results")()
	ts := []Task{{ID: taskID}}
	if err := s.summarise(ctx, ts); err != nil {
		return Summary{}, s.fail("count results of task "+taskID, err)
	}
	return ts[0].Summary, nil
}
