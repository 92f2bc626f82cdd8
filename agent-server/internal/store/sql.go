package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
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

	// The upserts' update parts and the one-row result upsert, built once.
	resultUpd, metricUpd, resultOneQ string

	ckpt *checkpointer // SQLite: checkpoints off the write path; nil for MySQL
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
	s.resultUpd, s.metricUpd = s.buildResultUpdate(), s.buildMetricUpdate()
	s.resultOneQ = "INSERT INTO results (" + resultCols + ") VALUES " + rowsPlaceholders(1, 12) + " " + s.resultUpd
	if err := s.prepare(); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		// agent_server_, not agentserver_: the name of the first release.
		r := stat.New(cfg.Registerer, "agent_server").With(prometheus.Labels{"driver": d.name}).Owned() // unregistered by Close
		s.lat = r.HistogramVec("store_duration_seconds", "Latency of store operations, by operation.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}, "op")
		if err := r.Err(); err != nil {
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
	err = tx.Commit()
	s.wrote()
	return err
}

// wrote tells the checkpointer (SQLite) that the WAL may have grown.
func (s *sqlStore) wrote() {
	if s.ckpt != nil {
		s.ckpt.noteWrite()
	}
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
	out, err := queryAll(ctx, s, "SELECT "+cols+" FROM "+table+where+" ORDER BY "+order+" LIMIT ? OFFSET ?", append(args, limit, offset), scan)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// found is the error of an UPDATE or DELETE of one row: its own, or
// ErrNotFound when it changed no row.
func found(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// deleteAgents deletes the rows of table (keyed by agent_id) of the agents
// ids, maxBatchRows at a time.
func deleteAgents(ctx context.Context, tx *sql.Tx, table string, ids []string) error {
	for chunk := range slices.Chunk(ids, maxBatchRows) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE agent_id IN ("+placeholders(len(chunk))+")", args...); err != nil {
			return err
		}
	}
	return nil
}

// queryAll runs q on the reader pool and scans every row with scan; no
// rows is an empty slice. Errors are returned unwrapped, for the caller's
// s.fail.
func queryAll[T any](ctx context.Context, s *sqlStore, q string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
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
	var errs []error
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	errs = append(errs, s.closeStmts())
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

// ---- prepared statements

// hotWrites are the statements of the per-exec and per-push write paths
// (one task, one result, one metric, one audit entry), prepared on the writer pool when the
// store opens: SQLite parses a statement on every unprepared call, which
// was most of the cost of these one-row writes (a result upsert with its
// CASE per column: 115 µs). They cannot be prepared on first use: that
// happens inside a transaction, and SQLite's writer pool has one
// connection, which the transaction holds.
func (s *sqlStore) hotWrites() []string {
	return []string{
		s.resultOneQ,
		"INSERT INTO metrics (agent_id, category, at, data) VALUES " + rowsPlaceholders(1, 4) + " " + s.metricUpdate(),
		taskExistsQ,
		insertTaskQ, setTaskPendingQ, setTaskRunningQ, setTaskFinalQ, insertAuditQ,
		insertOwnedTaskQ, setTaskPendingQ + fencedQ, setTaskRunningQ + fencedQ, setTaskFinalQ + fencedQ,
	}
}

// wstmt returns q prepared on the writer pool if it is one of hotWrites,
// else nil.
func (s *sqlStore) wstmt(q string) *sql.Stmt { return s.wcache[q] }

// hot is the context of a hot statement inside a transaction. On SQLite it
// drops ctx's cancellation, which modernc.org/sqlite would watch with a
// goroutine per statement: a one-row statement under the write lock that
// BEGIN IMMEDIATE took already cannot wait. The transaction itself still
// ends with ctx (database/sql rolls it back). MySQL keeps ctx: a row lock
// can wait there.
func (s *sqlStore) hot(ctx context.Context) context.Context {
	if s.d.name == DriverSQLite {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// execTx runs q in tx: prepared when it is one of hotWrites, else as it is.
func (s *sqlStore) execTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := s.wstmt(q); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(s.hot(ctx), args...)
	}
	s.cold.Add(1)
	return tx.ExecContext(ctx, q, args...)
}

// queryTx runs the query q in tx: prepared when it is one of hotWrites.
func (s *sqlStore) queryTx(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := s.wstmt(q); st != nil {
		return tx.StmtContext(ctx, st).QueryContext(s.hot(ctx), args...)
	}
	s.cold.Add(1)
	return tx.QueryContext(ctx, q, args...)
}

// queryRowTx runs the one-row query q in tx: prepared when it is one of
// hotWrites.
func (s *sqlStore) queryRowTx(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := s.wstmt(q); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(s.hot(ctx), args...)
	}
	s.cold.Add(1)
	return tx.QueryRowContext(ctx, q, args...)
}

// execW runs q on the writer pool outside a transaction: prepared when it
// is one of hotWrites.
func (s *sqlStore) execW(ctx context.Context, q string, args ...any) (sql.Result, error) {
	defer s.wrote()
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
