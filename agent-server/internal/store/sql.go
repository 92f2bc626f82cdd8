package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// dialect holds what differs between the SQL backends; the queries are
// otherwise shared (both take ? placeholders).
type dialect struct {
	name string
	// upsert starts the update part of an upsert conflicting on keys.
	upsert func(keys ...string) string
	// excluded is the would-be-inserted value of col inside that update.
	excluded func(col string) string
	// timeArg encodes a time; the zero time is NULL.
	timeArg func(time.Time) any
	// classify maps a driver error to ErrConflict or ErrNotFound (a
	// missing parent row), or returns nil.
	classify func(error) error
	// txOptions for write transactions (nil: the driver's default).
	txOptions *sql.TxOptions
	// retryable reports a transaction worth running again (deadlock); may be nil.
	retryable func(error) bool
}

// sqlStore implements Store on database/sql for both backends.
type sqlStore struct {
	w   *sql.DB // writes, and reads inside write transactions
	r   *sql.DB // reads (the same pool as w for MySQL)
	d   dialect
	cfg Config
	lat *prometheus.HistogramVec // nil without a Registerer

	// Prepared once: the reads of every auth.v1 / ack.v1 handshake.
	secretQ, ackQ *sql.Stmt
	// hotWrites prepared, by their SQL text; not changed after open.
	wcache map[string]*sql.Stmt
	cold   atomic.Int64 // execTx/queryTx/execW calls that ran unprepared (tests)
}

// Batch bounds of multi-row statements: SQLite allows 32766 variables per
// statement, MySQL packets are 16 MiB by default.
const (
	maxBatchRows  = 500
	maxBatchBytes = 4 << 20
	maxChunk      = 1 << 20 // output chunk size
)

func newSQLStore(w, r *sql.DB, d dialect, cfg Config) (*sqlStore, error) {
	s := &sqlStore{w: w, r: r, d: d, cfg: cfg}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		s.lat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "agent_server_store_duration_seconds",
			Help:        "Latency of store operations, by operation.",
			ConstLabels: prometheus.Labels{"driver": d.name},
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"})
		if err := cfg.Registerer.Register(s.lat); err != nil {
			s.closeStmts()
			return nil, fmt.Errorf("store: register metrics: %w", err)
		}
	}
	return s, nil
}

// observe times an operation: defer s.observe("op")().
func (s *sqlStore) observe(op string) func() {
	if s.lat == nil {
		return func() {}
	}
	start := time.Now()
	return func() { s.lat.WithLabelValues(op).Observe(time.Since(start).Seconds()) }
}

// fail wraps a driver error with the operation and, when it is one callers
// branch on, the matching sentinel.
func (s *sqlStore) fail(op string, err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if sentinel := s.d.classify(err); sentinel != nil {
		return fmt.Errorf("store: %s: %w (%v)", op, sentinel, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// tx runs fn in a transaction, again (up to txAttempts times, after a short
// random pause) when the database picked it as a deadlock victim; fn must
// be safe to re-run.
func (s *sqlStore) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tx1(ctx, fn)
		if err == nil || attempt == txAttempts || s.d.retryable == nil || !s.d.retryable(err) {
			return err
		}
		s.cfg.Logger.Debug("store: transaction retried", "attempt", attempt, "err", err)
		pause := time.NewTimer(time.Duration(mrand.Int64N(int64(attempt) * int64(5*time.Millisecond))))
		select {
		case <-ctx.Done():
			pause.Stop()
			return err
		case <-pause.C:
		}
	}
}

const txAttempts = 6

func (s *sqlStore) tx1(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, s.d.txOptions)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) now() time.Time { return s.cfg.Now() }

// utc normalises a time to what the store keeps.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// dbTime scans both backends' time encodings (SQLite: unix microseconds;
// MySQL: DATETIME(6)) and NULL.
type dbTime struct{ t *time.Time }

func (d dbTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*d.t = time.Time{}
	case int64:
		*d.t = time.UnixMicro(v).UTC()
	case time.Time:
		*d.t = v.UTC()
	default:
		return fmt.Errorf("store: time column holds %T", v)
	}
	return nil
}

// Length limits (in characters) of the MySQL columns, enforced for both
// backends so that they accept the same input.
const (
	maxIDLen     = 128 // agent ids
	maxTaskIDLen = 64
	maxTextLen   = 255
)

// checkLens takes (name, value, limit) triples.
func checkLens(triples ...any) error {
	for i := 0; i+2 < len(triples); i += 3 {
		name, v, limit := triples[i].(string), triples[i+1].(string), triples[i+2].(int)
		if n := utf8.RuneCountInString(v); n > limit {
			return fmt.Errorf("%w: %s longer than %d characters", ErrInvalid, name, limit)
		}
	}
	return nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// rowsPlaceholders gives "(?,?),(?,?)" for rows rows of cols columns.
func rowsPlaceholders(rows, cols int) string {
	one := "(" + placeholders(cols) + ")"
	return strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// ---- agents

const agentCols = "id, type, version, ip, mac, host_name, os, platform, platform_version, kernel_version, arch, cpu, cpu_core, memory, labels, facts, first_seen, last_seen, connected_at"

func (s *sqlStore) UpsertAgent(ctx context.Context, a Agent) error {
	defer s.observe("upsert_agent")()
	const op = "upsert agent"
	if a.ID == "" {
		return s.fail(op, fmt.Errorf("%w: empty agent id", ErrInvalid))
	}
	if err := checkLens(
		"agent id", a.ID, maxIDLen, "type", a.Type, maxTextLen, "version", a.Version, maxTextLen, "ip", a.IP, maxTextLen,
		"mac", a.MAC, maxTextLen, "host_name", a.HostName, maxTextLen, "os", a.OS, maxTextLen, "platform", a.Platform, maxTextLen,
		"platform_version", a.PlatformVersion, maxTextLen, "kernel_version", a.KernelVersion, maxTextLen,
		"arch", a.Arch, maxTextLen, "cpu", a.CPU, maxTextLen); err != nil {
		return s.fail(op, err)
	}
	if err := ValidateLabels(a.Labels); err != nil {
		return s.fail(op+" "+a.ID, err)
	}
	if err := checkJSON("facts", a.Facts); err != nil {
		return s.fail(op+" "+a.ID, err)
	}
	now := s.now()
	last := firstNonZero(a.LastSeen, a.ConnectedAt, now)
	first := firstNonZero(a.FirstSeen, a.ConnectedAt, last)
	var labels any
	if a.Labels != nil {
		b, err := json.Marshal(a.Labels)
		if err != nil {
			return s.fail(op, err)
		}
		labels = b
	}
	ex := s.d.excluded
	var set []string
	for _, c := range []string{"type", "version", "ip", "mac", "host_name", "os", "platform", "platform_version", "kernel_version", "arch", "cpu", "cpu_core", "memory", "last_seen", "connected_at"} {
		set = append(set, c+" = "+ex(c))
	}
	set = append(set, "labels = COALESCE("+ex("labels")+", labels)", "facts = COALESCE("+ex("facts")+", facts)")
	q := "INSERT INTO agents (" + agentCols + ") VALUES (" + placeholders(19) + ") " + s.d.upsert("id") + " " + strings.Join(set, ", ")
	args := []any{a.ID, a.Type, a.Version, a.IP, a.MAC, a.HostName, a.OS, a.Platform, a.PlatformVersion, a.KernelVersion,
		a.Arch, a.CPU, a.CPUCore, int64(a.Memory), labels, nullBytes(a.Facts),
		s.d.timeArg(utc(first)), s.d.timeArg(utc(last)), s.d.timeArg(utc(a.ConnectedAt))}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		if a.Labels != nil {
			return replaceLabels(ctx, tx, a.ID, a.Labels)
		}
		return nil
	})
	if err != nil {
		return s.fail(op+" "+a.ID, err)
	}
	return nil
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func replaceLabels(ctx context.Context, tx *sql.Tx, id string, labels map[string]string) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM agent_labels WHERE agent_id = ?", id); err != nil {
		return err
	}
	if len(labels) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(labels))
	for k, v := range labels {
		args = append(args, id, k, v)
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO agent_labels (agent_id, k, v) VALUES "+rowsPlaceholders(len(labels), 3), args...)
	return err
}

func (s *sqlStore) TouchAgents(ctx context.Context, ids []string, t time.Time) error {
	defer s.observe("touch_agents")()
	if len(ids) == 0 {
		return nil
	}
	at := s.d.timeArg(utc(t))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(ids, maxBatchRows) {
			args := make([]any, 0, len(chunk)+2)
			args = append(args, at, at)
			for _, id := range chunk {
				args = append(args, id)
			}
			q := "UPDATE agents SET last_seen = ? WHERE last_seen < ? AND id IN (" + placeholders(len(chunk)) + ")"
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(fmt.Sprintf("touch %d agents", len(ids)), err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

// listPage counts the rows of table matching where and reads one page of
// them in order, scanning each with scan. Errors are returned unwrapped, for
// the caller's s.fail.
func listPage[T any](ctx context.Context, s *sqlStore, p Paging, cols, table, where, order string, args []any, scan func(scanner) (T, error)) ([]T, int, error) {
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit, offset := p.limitOffset()
	if offset >= total {
		return []T{}, total, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+cols+" FROM "+table+where+" ORDER BY "+order+" LIMIT ? OFFSET ?", append(args, limit, offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, v)
	}
	return out, total, rows.Err()
}

func scanAgent(sc scanner) (Agent, error) {
	var a Agent
	var labels, facts []byte
	var mem int64
	err := sc.Scan(&a.ID, &a.Type, &a.Version, &a.IP, &a.MAC, &a.HostName, &a.OS, &a.Platform, &a.PlatformVersion,
		&a.KernelVersion, &a.Arch, &a.CPU, &a.CPUCore, &mem, &labels, &facts,
		dbTime{&a.FirstSeen}, dbTime{&a.LastSeen}, dbTime{&a.ConnectedAt})
	if err != nil {
		return Agent{}, err
	}
	a.Memory = uint64(mem)
	if len(labels) > 0 {
		if err := json.Unmarshal(labels, &a.Labels); err != nil {
			return Agent{}, fmt.Errorf("agent %s labels: %w", a.ID, err)
		}
	}
	if len(facts) > 0 {
		a.Facts = json.RawMessage(facts)
	}
	return a, nil
}

func (s *sqlStore) GetAgent(ctx context.Context, id string) (Agent, error) {
	defer s.observe("get_agent")()
	a, err := scanAgent(s.r.QueryRowContext(ctx, "SELECT "+agentCols+" FROM agents WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, s.fail("get agent "+id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, s.fail("get agent "+id, err)
	}
	return a, nil
}

// likeEscape makes s a LIKE pattern matching itself (escape character '!').
func likeEscape(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}

func agentWhere(f AgentFilter) (string, []any, error) {
	var conds []string
	var args []any
	for _, eq := range []struct{ col, v string }{{"type", f.Type}, {"os", f.OS}, {"platform", f.Platform}} {
		if eq.v != "" {
			conds = append(conds, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	if f.Keyword != "" {
		p := "%" + likeEscape(strings.ToLower(f.Keyword)) + "%"
		conds = append(conds, "(LOWER(id) LIKE ? ESCAPE '!' OR LOWER(ip) LIKE ? ESCAPE '!' OR LOWER(mac) LIKE ? ESCAPE '!' OR LOWER(host_name) LIKE ? ESCAPE '!')")
		args = append(args, p, p, p, p)
	}
	if len(f.IDs) > MaxFilterIDs {
		return "", nil, fmt.Errorf("%w: more than %d ids", ErrInvalid, MaxFilterIDs)
	}
	if len(f.IDs) > 0 {
		conds = append(conds, "id IN ("+placeholders(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(f.Labels) > MaxLabels {
		return "", nil, fmt.Errorf("%w: more than %d label terms", ErrInvalid, MaxLabels)
	}
	for _, m := range f.Labels {
		const sub = "EXISTS (SELECT 1 FROM agent_labels l WHERE l.agent_id = agents.id AND l.k = ?"
		switch m.Op {
		case LabelEq:
			conds = append(conds, sub+" AND l.v = ?)")
			args = append(args, m.Key, m.Value)
		case LabelNotEq:
			conds = append(conds, "NOT "+sub+" AND l.v = ?)")
			args = append(args, m.Key, m.Value)
		case LabelExists:
			conds = append(conds, sub+")")
			args = append(args, m.Key)
		case LabelNotExists:
			conds = append(conds, "NOT "+sub+")")
			args = append(args, m.Key)
		default:
			return "", nil, fmt.Errorf("%w: label operator %d", ErrInvalid, m.Op)
		}
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

func (s *sqlStore) ListAgents(ctx context.Context, f AgentFilter) ([]Agent, int, error) {
	defer s.observe("list_agents")()
	const op = "list agents"
	where, args, err := agentWhere(f)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	order, err := AgentOrder(f.Sort)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	out, total, err := listPage(ctx, s, f.Paging, agentCols, "agents", where, order, args, scanAgent)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	return out, total, nil
}

func (s *sqlStore) SetAgentLabels(ctx context.Context, id string, labels map[string]string) error {
	defer s.observe("set_agent_labels")()
	op := "set labels of agent " + id
	if err := ValidateLabels(labels); err != nil {
		return s.fail(op, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return s.fail(op, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE agents SET labels = ? WHERE id = ?", b, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return replaceLabels(ctx, tx, id, labels)
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) DeleteAgent(ctx context.Context, id string) error {
	defer s.observe("delete_agent")()
	return s.deleteCascade(ctx, "delete agent "+id, "DELETE FROM agents WHERE id = ?", id, []string{
		"DELETE FROM agent_labels WHERE agent_id = ?",
		"DELETE FROM metrics WHERE agent_id = ?",
		"DELETE FROM usage_history WHERE agent_id = ?",
		"DELETE FROM agent_secrets WHERE agent_id = ?",
		"DELETE FROM journal_acks WHERE agent_id = ?",
	})
}

// deleteCascade runs the child deletes, then the parent's, in one
// transaction; ErrNotFound when the parent row did not exist.
func (s *sqlStore) deleteCascade(ctx context.Context, op, parent, id string, children []string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range children {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, parent, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// ---- tasks

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
	_, err := s.execW(ctx, insertTaskQ,
		t.ID, string(t.Kind), nullBytes(t.Spec), string(t.State), t.CreatedBy,
		s.d.timeArg(t.CreatedAt), s.d.timeArg(t.StartedAt), s.d.timeArg(t.FinishedAt), t.Msg)
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
	if f.Kind != "" {
		conds = append(conds, "kind = ?")
		args = append(args, string(f.Kind))
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
)

func (s *sqlStore) UpdateTaskState(ctx context.Context, id string, state TaskState, at time.Time, msg string) error {
	defer s.observe("update_task_state")()
	op := fmt.Sprintf("set task %s %s", id, state)
	if at.IsZero() {
		at = s.now()
	}
	ts := s.d.timeArg(utc(at))
	var q string
	var args []any
	switch {
	case state == TaskPending:
		q, args = setTaskPendingQ, []any{string(state), id}
	case state == TaskRunning:
		q, args = setTaskRunningQ, []any{string(state), ts, id}
	case state.Final():
		q, args = setTaskFinalQ, []any{string(state), ts, msg, id}
	default:
		return s.fail(op, fmt.Errorf("%w: task state %q", ErrInvalid, state))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.execTx(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n > 0 {
			return nil
		}
		var cur string
		err = tx.QueryRowContext(ctx, "SELECT state FROM tasks WHERE id = ?", id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: task is %s", ErrConflict, cur)
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) DeleteTask(ctx context.Context, id string) error {
	defer s.observe("delete_task")()
	return s.deleteCascade(ctx, "delete task "+id, "DELETE FROM tasks WHERE id = ?", id,
		[]string{"DELETE FROM outputs WHERE task_id = ?", "DELETE FROM results WHERE task_id = ?"})
}

// ---- results

const resultCols = "task_id, agent_id, exit_code, pid, started_at, ended_at, msg, output_head, output_tail, dropped, output_bytes, state"

// resultUpdate is the update part of the results upsert. A final stored
// state is kept against a non-final incoming one. state comes last: MySQL
// evaluates assignments left to right on the updated row.
func (s *sqlStore) resultUpdate() string {
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
	for _, r := range rs {
		if r.TaskID == "" || r.AgentID == "" {
			return s.fail(op, fmt.Errorf("%w: result without task or agent id", ErrInvalid))
		}
		if !r.State.valid() {
			return s.fail(op, fmt.Errorf("%w: result state %q", ErrInvalid, r.State))
		}
		if err := checkLens("task id", r.TaskID, maxTaskIDLen, "agent id", r.AgentID, maxIDLen); err != nil {
			return s.fail(op, err)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.tasksExist(ctx, tx, rs); err != nil {
			return err
		}
		return s.batchInsert(ctx, tx, "INSERT INTO results ("+resultCols+") VALUES ", s.resultUpdate(), 12, len(rs), func(i int) ([]any, int) {
			r := rs[i]
			return []any{r.TaskID, r.AgentID, r.ExitCode, r.PID,
				s.d.timeArg(utc(r.StartedAt)), s.d.timeArg(utc(r.EndedAt)), r.Msg,
				nullBytes(r.OutputHead), nullBytes(r.OutputTail), r.Dropped, r.OutputBytes, string(r.State),
			}, len(r.OutputHead) + len(r.OutputTail) + len(r.Msg) + 128
		})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// tasksExist checks that every task the results name exists. The MySQL
// schema has no foreign keys (mysqlschema creates tables in name order), so
// both backends check here.
func (s *sqlStore) tasksExist(ctx context.Context, tx *sql.Tx, rs []Result) error {
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

// ---- output

// streamSize returns the stored size of an output stream.
func streamSize(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, taskID, agentID string) (int64, error) {
	var pos, n int64
	err := q.QueryRowContext(ctx, "SELECT pos, LENGTH(data) FROM outputs WHERE task_id = ? AND agent_id = ? ORDER BY pos DESC LIMIT 1", taskID, agentID).Scan(&pos, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos + n, err
}

func (s *sqlStore) AppendOutput(ctx context.Context, taskID, agentID string, p []byte) (int, error) {
	return s.appendOutput(ctx, taskID, agentID, -1, p)
}

func (s *sqlStore) AppendOutputAt(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error) {
	if off < 0 {
		return 0, s.fail(fmt.Sprintf("append output of agent %s in task %s", agentID, taskID), fmt.Errorf("%w: negative offset %d", ErrInvalid, off))
	}
	return s.appendOutput(ctx, taskID, agentID, off, p)
}

// appendOutput appends p at the stream's end (off < 0) or as the bytes
// from off, skipping those the stream holds already.
func (s *sqlStore) appendOutput(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error) {
	defer s.observe("append_output")()
	op := fmt.Sprintf("append output of agent %s in task %s", agentID, taskID)
	if len(p) == 0 {
		return 0, nil
	}
	kept := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		size, err := streamSize(ctx, tx, taskID, agentID)
		if err != nil {
			return err
		}
		if size == 0 {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM tasks WHERE id = ?", taskID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("task %s: %w", taskID, ErrNotFound)
			} else if err != nil {
				return err
			}
		}
		have := int64(0) // bytes of p the stream holds already
		if off >= 0 {
			if off > size {
				return fmt.Errorf("%w: offset %d is beyond the stored %d bytes", ErrInvalid, off, size)
			}
			have = min(size-off, int64(len(p)))
		}
		rest := p[have:]
		keep := int64(len(rest))
		if s.cfg.OutputCap >= 0 {
			keep = min(keep, max(s.cfg.OutputCap-size, 0))
		}
		for o := int64(0); o < keep; o += maxChunk {
			chunk := rest[o:min(o+maxChunk, keep)]
			if _, err := tx.ExecContext(ctx, "INSERT INTO outputs (task_id, agent_id, pos, data) VALUES (?, ?, ?, ?)",
				taskID, agentID, size+o, chunk); err != nil {
				return err
			}
		}
		kept = int(have + keep)
		return nil
	})
	if err != nil {
		return 0, s.fail(op, err)
	}
	return kept, nil
}

func (s *sqlStore) taskExists(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, "SELECT 1 FROM tasks WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s *sqlStore) OutputSize(ctx context.Context, taskID, agentID string) (int64, error) {
	defer s.observe("output_size")()
	n, err := streamSize(ctx, s.r, taskID, agentID)
	if err != nil {
		return 0, s.fail(fmt.Sprintf("output size of agent %s in task %s", agentID, taskID), err)
	}
	return n, nil
}

func (s *sqlStore) ReadOutput(ctx context.Context, taskID, agentID string, offset, length int64) ([]byte, int64, error) {
	defer s.observe("read_output")()
	op := fmt.Sprintf("read output of agent %s in task %s", agentID, taskID)
	if offset < 0 {
		return nil, 0, s.fail(op, fmt.Errorf("%w: negative offset %d", ErrInvalid, offset))
	}
	total, err := streamSize(ctx, s.r, taskID, agentID)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	if total == 0 {
		if ok, err := s.taskExists(ctx, taskID); err != nil {
			return nil, 0, s.fail(op, err)
		} else if !ok {
			return nil, 0, s.fail(op, ErrNotFound)
		}
	}
	end := total
	if length >= 0 && length < total-offset {
		end = offset + length
	}
	if offset >= end {
		return []byte{}, total, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT pos, data FROM outputs WHERE task_id = ? AND agent_id = ? AND pos < ?
		AND pos >= (SELECT COALESCE(MAX(pos), 0) FROM outputs WHERE task_id = ? AND agent_id = ? AND pos <= ?) ORDER BY pos`,
		taskID, agentID, end, taskID, agentID, offset)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	defer rows.Close()
	out := make([]byte, 0, end-offset)
	for rows.Next() {
		var pos int64
		var data []byte
		if err := rows.Scan(&pos, &data); err != nil {
			return nil, 0, s.fail(op, err)
		}
		lo := max(offset-pos, 0)
		hi := min(end-pos, int64(len(data)))
		if lo < hi {
			out = append(out, data[lo:hi]...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.fail(op, err)
	}
	if int64(len(out)) != end-offset {
		return nil, 0, s.fail(op, fmt.Errorf("stream has a gap: read %d bytes of %d", len(out), end-offset))
	}
	return out, total, nil
}

// ---- audit

const auditCols = "id, at, actor, action, target, agent, remote, status, request_id, detail, result"

func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	defer s.observe("append_audit")()
	op := "append audit " + e.Action
	if err := checkLens("actor", e.Actor, maxTextLen, "action", e.Action, maxTextLen, "request_id", e.RequestID, maxTextLen,
		"agent", e.Agent, maxIDLen, "remote", e.Remote, maxTextLen); err != nil {
		return 0, s.fail(op, err)
	}
	if err := checkJSON("audit detail", e.Detail); err != nil {
		return 0, s.fail(op, err)
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	res, err := s.w.ExecContext(ctx, "INSERT INTO audit (at, actor, action, target, agent, remote, status, request_id, detail, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		s.d.timeArg(utc(e.Time)), e.Actor, e.Action, e.Target, e.Agent, e.Remote, e.Status, e.RequestID, nullBytes(e.Detail), e.Result)
	if err != nil {
		return 0, s.fail(op, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, s.fail(op, err)
	}
	return id, nil
}

func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error) {
	defer s.observe("list_audit")()
	const op = "list audit"
	where, args := s.auditWhere(f, nil)
	out, total, err := listPage(ctx, s, f.Paging, auditCols, "audit", where, "at DESC, id DESC", args, scanAudit)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	return out, total, nil
}

func (s *sqlStore) ScanAudit(ctx context.Context, f AuditFilter, afterID int64, limit int) ([]AuditEntry, error) {
	defer s.observe("scan_audit")()
	const op = "scan audit"
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	where, args := s.auditWhere(f, []string{"id > ?"})
	rows, err := s.r.QueryContext(ctx, "SELECT "+auditCols+" FROM audit"+where+" ORDER BY id LIMIT ?", append([]any{afterID}, append(args, limit)...)...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// auditWhere builds the WHERE clause of f after the conditions in conds
// (whose arguments the caller puts first).
func (s *sqlStore) auditWhere(f AuditFilter, conds []string) (string, []any) {
	var args []any
	for _, eq := range []struct{ col, v string }{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}, {"agent", f.Agent}} {
		if eq.v != "" {
			conds = append(conds, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "at >= ?")
		args = append(args, s.d.timeArg(utc(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "at < ?")
		args = append(args, s.d.timeArg(utc(f.Until)))
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func scanAudit(sc scanner) (AuditEntry, error) {
	var e AuditEntry
	var detail []byte
	if err := sc.Scan(&e.ID, dbTime{&e.Time}, &e.Actor, &e.Action, &e.Target, &e.Agent, &e.Remote, &e.Status, &e.RequestID, &detail, &e.Result); err != nil {
		return e, err
	}
	if len(detail) > 0 {
		e.Detail = json.RawMessage(detail)
	}
	return e, nil
}

// ---- metrics

func checkMetric(m Metric, usage bool) error {
	if m.AgentID == "" {
		return fmt.Errorf("%w: metric without agent id", ErrInvalid)
	}
	if err := checkLens("agent id", m.AgentID, maxIDLen); err != nil {
		return err
	}
	if !usage && !validCategory(m.Category) {
		return fmt.Errorf("%w: metric category %q", ErrInvalid, m.Category)
	}
	if m.Time.IsZero() {
		return fmt.Errorf("%w: metric without time", ErrInvalid)
	}
	return checkJSON("metric data", m.Data)
}

func (s *sqlStore) PutMetrics(ctx context.Context, ms []Metric) error {
	defer s.observe("put_metrics")()
	op := fmt.Sprintf("put %d metrics", len(ms))
	for _, m := range ms {
		if err := checkMetric(m, false); err != nil {
			return s.fail(op, err)
		}
	}
	update := s.metricUpdate()
	if len(ms) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.batchInsert(ctx, tx, "INSERT INTO metrics (agent_id, category, at, data) VALUES ", update, 4, len(ms), func(i int) ([]any, int) {
			m := ms[i]
			return []any{m.AgentID, m.Category, s.d.timeArg(utc(m.Time)), nullBytes(m.Data)}, len(m.Data)
		})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// metricUpdate is the update part of the metrics upsert: the newer report
// wins.
func (s *sqlStore) metricUpdate() string {
	ex := s.d.excluded
	newer := ex("at") + " >= at"
	// data before at: MySQL evaluates assignments left to right.
	return s.d.upsert("agent_id", "category") + " data = CASE WHEN " + newer + " THEN " + ex("data") + " ELSE data END, at = CASE WHEN " + newer + " THEN " + ex("at") + " ELSE at END"
}

// batchInsert runs multi-row inserts of n rows; row(i) gives the i-th row's
// arguments and approximate size in bytes. A one-row statement of the hot
// paths (one result, one metric) runs prepared (hotWrites).
func (s *sqlStore) batchInsert(ctx context.Context, tx *sql.Tx, head, tail string, cols, n int, row func(int) ([]any, int)) error {
	args := make([]any, 0, cols*min(n, maxBatchRows))
	rows, size := 0, 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		_, err := s.execTx(ctx, tx, head+rowsPlaceholders(rows, cols)+" "+tail, args...)
		args, rows, size = args[:0], 0, 0
		return err
	}
	for i := range n {
		a, sz := row(i)
		args = append(args, a...)
		rows++
		size += sz
		if rows == maxBatchRows || size >= maxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (s *sqlStore) GetMetric(ctx context.Context, agentID, category string) (Metric, error) {
	defer s.observe("get_metric")()
	op := fmt.Sprintf("get %s metric of agent %s", category, agentID)
	m := Metric{AgentID: agentID, Category: category}
	var data []byte
	err := s.r.QueryRowContext(ctx, "SELECT at, data FROM metrics WHERE agent_id = ? AND category = ?", agentID, category).Scan(dbTime{&m.Time}, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return Metric{}, s.fail(op, ErrNotFound)
	}
	if err != nil {
		return Metric{}, s.fail(op, err)
	}
	if len(data) > 0 {
		m.Data = json.RawMessage(data)
	}
	return m, nil
}

func (s *sqlStore) GetMetrics(ctx context.Context, agentID string) ([]Metric, error) {
	defer s.observe("get_metrics")()
	op := "get metrics of agent " + agentID
	rows, err := s.r.QueryContext(ctx, "SELECT category, at, data FROM metrics WHERE agent_id = ? ORDER BY category", agentID)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []Metric{}
	for rows.Next() {
		m := Metric{AgentID: agentID}
		var data []byte
		if err := rows.Scan(&m.Category, dbTime{&m.Time}, &data); err != nil {
			return nil, s.fail(op, err)
		}
		if len(data) > 0 {
			m.Data = json.RawMessage(data)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

func (s *sqlStore) AddUsage(ctx context.Context, ms []Metric) error {
	defer s.observe("add_usage")()
	op := fmt.Sprintf("add %d usage samples", len(ms))
	for _, m := range ms {
		if err := checkMetric(m, true); err != nil {
			return s.fail(op, err)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.batchInsert(ctx, tx, "INSERT INTO usage_history (agent_id, at, data) VALUES ", "", 3, len(ms), func(i int) ([]any, int) {
			m := ms[i]
			return []any{m.AgentID, s.d.timeArg(utc(m.Time)), nullBytes(m.Data)}, len(m.Data)
		})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) UsageHistory(ctx context.Context, agentID string, since time.Time) ([]Metric, error) {
	defer s.observe("usage_history")()
	op := "usage history of agent " + agentID
	q, args := "SELECT at, data FROM usage_history WHERE agent_id = ?", []any{agentID}
	if !since.IsZero() {
		q += " AND at >= ?"
		args = append(args, s.d.timeArg(utc(since)))
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY at DESC, id DESC LIMIT ?", append(args, MaxUsageHistory)...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []Metric{}
	for rows.Next() {
		m := Metric{AgentID: agentID, Category: CategoryUsage}
		var data []byte
		if err := rows.Scan(dbTime{&m.Time}, &data); err != nil {
			return nil, s.fail(op, err)
		}
		if len(data) > 0 {
			m.Data = json.RawMessage(data)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	slices.Reverse(out)
	return out, nil
}

func (s *sqlStore) PruneUsage(ctx context.Context, olderThan time.Time) (int64, error) {
	defer s.observe("prune_usage")()
	res, err := s.w.ExecContext(ctx, "DELETE FROM usage_history WHERE at < ?", s.d.timeArg(utc(olderThan)))
	if err != nil {
		return 0, s.fail("prune usage", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("prune usage", err)
	}
	return n, nil
}

// ---- lifecycle

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return s.fail("ping", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return s.fail("ping", err)
		}
	}
	return nil
}

func (s *sqlStore) Close() error {
	errs := []error{s.closeStmts()}
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if s.lat != nil {
		s.cfg.Registerer.Unregister(s.lat)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// SecretHash returns the stored hash of the agent's secret, nil when it has
// none.
func (s *sqlStore) SecretHash(ctx context.Context, agentID string) ([]byte, error) {
	defer s.observe("secret_hash")()
	var h []byte
	err := s.secretQ.QueryRowContext(ctx, agentID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read secret of agent "+agentID, err)
	}
	return h, nil
}

// SetSecretHash stores the hash of the agent's secret; nil forgets it (an
// operator resetting an agent that lost its state file).
func (s *sqlStore) SetSecretHash(ctx context.Context, agentID string, hash []byte) error {
	defer s.observe("set_secret_hash")()
	op := "store secret of agent " + agentID
	if err := checkLens("agent id", agentID, maxIDLen); err != nil {
		return s.fail(op, err)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if hash == nil {
			_, err := tx.ExecContext(ctx, "DELETE FROM agent_secrets WHERE agent_id = ?", agentID)
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO agent_secrets (agent_id, hash) VALUES (?, ?) "+
			s.d.upsert("agent_id")+" hash = "+s.d.excluded("hash"), agentID, hash)
		return err
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// JournalAck returns the highest sequence number stored for the agent's
// journal, 0 for a journal never seen.
func (s *sqlStore) JournalAck(ctx context.Context, agentID, journal string) (uint64, error) {
	defer s.observe("journal_ack")()
	var seq int64
	err := s.ackQ.QueryRowContext(ctx, agentID, journal).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("read journal ack of agent "+agentID, err)
	}
	return uint64(seq), nil
}

// SetJournalAck records seq as the high-water mark of the agent's journal.
// It never moves the mark back.
func (s *sqlStore) SetJournalAck(ctx context.Context, agentID, journal string, seq uint64) error {
	defer s.observe("set_journal_ack")()
	op := "store journal ack of agent " + agentID
	if err := checkLens("agent id", agentID, maxIDLen, "journal", journal, maxTextLen); err != nil {
		return s.fail(op, err)
	}
	if seq > math.MaxInt64 {
		return s.fail(op, fmt.Errorf("%w: sequence number %d out of range", ErrInvalid, seq))
	}
	ex := s.d.excluded("seq")
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO journal_acks (agent_id, journal, seq) VALUES (?, ?, ?) "+
			s.d.upsert("agent_id", "journal")+" seq = CASE WHEN "+ex+" > seq THEN "+ex+" ELSE seq END",
			agentID, journal, int64(seq))
		return err
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// ---- batches

// agentArgs checks a and returns its row for an INSERT INTO agents
// (agentCols), with its approximate size in bytes. It applies the rules of
// UpsertAgent.
func (s *sqlStore) agentArgs(a Agent, now time.Time) ([]any, int, error) {
	if a.ID == "" {
		return nil, 0, fmt.Errorf("%w: empty agent id", ErrInvalid)
	}
	if err := checkLens(
		"agent id", a.ID, maxIDLen, "type", a.Type, maxTextLen, "version", a.Version, maxTextLen, "ip", a.IP, maxTextLen,
		"mac", a.MAC, maxTextLen, "host_name", a.HostName, maxTextLen, "os", a.OS, maxTextLen, "platform", a.Platform, maxTextLen,
		"platform_version", a.PlatformVersion, maxTextLen, "kernel_version", a.KernelVersion, maxTextLen,
		"arch", a.Arch, maxTextLen, "cpu", a.CPU, maxTextLen); err != nil {
		return nil, 0, err
	}
	if err := ValidateLabels(a.Labels); err != nil {
		return nil, 0, err
	}
	if err := checkJSON("facts", a.Facts); err != nil {
		return nil, 0, err
	}
	last := firstNonZero(a.LastSeen, a.ConnectedAt, now)
	first := firstNonZero(a.FirstSeen, a.ConnectedAt, last)
	var labels any
	size := 128 + len(a.ID) + len(a.Type) + len(a.Version) + len(a.IP) + len(a.MAC) + len(a.HostName) + len(a.OS) +
		len(a.Platform) + len(a.PlatformVersion) + len(a.KernelVersion) + len(a.Arch) + len(a.CPU) + len(a.Facts)
	if a.Labels != nil {
		b, err := json.Marshal(a.Labels)
		if err != nil {
			return nil, 0, err
		}
		labels = b
		size += len(b)
	}
	return []any{a.ID, a.Type, a.Version, a.IP, a.MAC, a.HostName, a.OS, a.Platform, a.PlatformVersion, a.KernelVersion,
		a.Arch, a.CPU, a.CPUCore, int64(a.Memory), labels, nullBytes(a.Facts),
		s.d.timeArg(utc(first)), s.d.timeArg(utc(last)), s.d.timeArg(utc(a.ConnectedAt))}, size, nil
}

// agentUpsertTail is the update part of the agents upsert: FirstSeen kept,
// nil labels and facts keep the stored ones, the rest replaced.
func (s *sqlStore) agentUpsertTail() string {
	ex := s.d.excluded
	var set []string
	for _, c := range []string{"type", "version", "ip", "mac", "host_name", "os", "platform", "platform_version", "kernel_version", "arch", "cpu", "cpu_core", "memory", "last_seen", "connected_at"} {
		set = append(set, c+" = "+ex(c))
	}
	set = append(set, "labels = COALESCE("+ex("labels")+", labels)", "facts = COALESCE("+ex("facts")+", facts)")
	return s.d.upsert("id") + " " + strings.Join(set, ", ")
}

func (s *sqlStore) UpsertAgents(ctx context.Context, as []Agent) error {
	defer s.observe("upsert_agents")()
	op := fmt.Sprintf("upsert %d agents", len(as))
	if len(as) == 0 {
		return nil
	}
	now := s.now()
	rows := make([][]any, len(as))
	sizes := make([]int, len(as))
	// The labels each agent ends with, for those whose labels are replaced:
	// the last non-nil set listed.
	labels := map[string]map[string]string{}
	for i, a := range as {
		row, size, err := s.agentArgs(a, now)
		if err != nil {
			return s.fail(op+": agent "+a.ID, err)
		}
		rows[i], sizes[i] = row, size
		if a.Labels != nil {
			labels[a.ID] = a.Labels
		}
	}
	ids := slices.Sorted(maps.Keys(labels))
	var labelRows [][3]string
	for _, id := range ids {
		for _, k := range slices.Sorted(maps.Keys(labels[id])) {
			labelRows = append(labelRows, [3]string{id, k, labels[id][k]})
		}
	}
	tail := s.agentUpsertTail()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := s.batchInsert(ctx, tx, "INSERT INTO agents ("+agentCols+") VALUES ", tail, 19, len(rows),
			func(i int) ([]any, int) { return rows[i], sizes[i] })
		if err != nil {
			return err
		}
		for chunk := range slices.Chunk(ids, maxBatchRows) {
			args := make([]any, len(chunk))
			for i, id := range chunk {
				args[i] = id
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM agent_labels WHERE agent_id IN ("+placeholders(len(chunk))+")", args...); err != nil {
				return err
			}
		}
		return s.batchInsert(ctx, tx, "INSERT INTO agent_labels (agent_id, k, v) VALUES ", "", 3, len(labelRows),
			func(i int) ([]any, int) {
				r := labelRows[i]
				return []any{r[0], r[1], r[2]}, len(r[0]) + len(r[1]) + len(r[2])
			})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) SetSecretHashes(ctx context.Context, hashes map[string][]byte) error {
	defer s.observe("set_secret_hashes")()
	op := fmt.Sprintf("store secrets of %d agents", len(hashes))
	if len(hashes) == 0 {
		return nil
	}
	var set, forget []string
	for _, id := range slices.Sorted(maps.Keys(hashes)) {
		if err := checkLens("agent id", id, maxIDLen); err != nil {
			return s.fail(op, err)
		}
		if hashes[id] == nil {
			forget = append(forget, id)
		} else {
			set = append(set, id)
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(forget, maxBatchRows) {
			args := make([]any, len(chunk))
			for i, id := range chunk {
				args[i] = id
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM agent_secrets WHERE agent_id IN ("+placeholders(len(chunk))+")", args...); err != nil {
				return err
			}
		}
		return s.batchInsert(ctx, tx, "INSERT INTO agent_secrets (agent_id, hash) VALUES ",
			s.d.upsert("agent_id")+" hash = "+s.d.excluded("hash"), 2, len(set),
			func(i int) ([]any, int) { return []any{set[i], hashes[set[i]]}, len(set[i]) + len(hashes[set[i]]) })
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// ---- prepared statements

// hotWrites are the statements of the per-exec and per-push write paths
// (one task, one result, one metric), prepared on the writer pool when the
// store opens: SQLite parses a statement on every unprepared call, which
// was most of the cost of these one-row writes (a result upsert with its
// CASE per column: 115 µs). They cannot be prepared on first use: that
// happens inside a transaction, and SQLite's writer pool has one
// connection, which the transaction holds.
func (s *sqlStore) hotWrites() []string {
	return []string{
		"INSERT INTO results (" + resultCols + ") VALUES " + rowsPlaceholders(1, 12) + " " + s.resultUpdate(),
		"INSERT INTO metrics (agent_id, category, at, data) VALUES " + rowsPlaceholders(1, 4) + " " + s.metricUpdate(),
		"SELECT id FROM tasks WHERE id IN (" + placeholders(1) + ")",
		insertTaskQ, setTaskPendingQ, setTaskRunningQ, setTaskFinalQ,
	}
}

// wstmt returns q prepared on the writer pool if it is one of hotWrites,
// else nil.
func (s *sqlStore) wstmt(q string) *sql.Stmt { return s.wcache[q] }

// execTx runs q in tx: prepared when it is one of hotWrites, else as it is.
func (s *sqlStore) execTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := s.wstmt(q); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	s.cold.Add(1)
	return tx.ExecContext(ctx, q, args...)
}

// queryTx runs the query q in tx: prepared when it is one of hotWrites.
func (s *sqlStore) queryTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := s.wstmt(q); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	s.cold.Add(1)
	return tx.QueryContext(ctx, q, args...)
}

// execW runs q on the writer pool outside a transaction: prepared when it
// is one of hotWrites.
func (s *sqlStore) execW(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := s.wstmt(q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	s.cold.Add(1)
	return s.w.ExecContext(ctx, q, args...)
}

// prepare prepares the statements run on every handshake, so that the
// database does not parse them each time (database/sql prepares each one
// once per pooled connection).
func (s *sqlStore) prepare() error {
	ctx := context.Background()
	var err error
	if s.secretQ, err = s.r.PrepareContext(ctx, "SELECT hash FROM agent_secrets WHERE agent_id = ?"); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	if s.ackQ, err = s.r.PrepareContext(ctx, "SELECT seq FROM journal_acks WHERE agent_id = ? AND journal = ?"); err != nil {
		s.closeStmts()
		return fmt.Errorf("store: prepare: %w", err)
	}
	s.wcache = map[string]*sql.Stmt{}
	for _, q := range s.hotWrites() {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			s.closeStmts()
			return fmt.Errorf("store: prepare %.40q…: %w", q, err)
		}
		s.wcache[q] = st
	}
	return nil
}

func (s *sqlStore) closeStmts() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.secretQ, s.ackQ} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, st := range s.wcache {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
