package mysqlschema

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Errors callers can branch on with errors.Is. Each returned error also names
// the table, file and statement concerned and what the operator must do.
var (
	// ErrLocked: another session held the migration lock for longer than the
	// lock timeout.
	ErrLocked = errors.New("mysqlschema: migration lock not acquired")
	// ErrStatement: a statement of a file failed; the table is now dirty.
	ErrStatement = errors.New("mysqlschema: statement failed")
	// ErrDirty: an earlier run failed or was interrupted and the run cannot
	// resume it safely.
	ErrDirty = errors.New("mysqlschema: table is dirty")
	// ErrNewer: the database holds a newer version than the files know
	// (an old binary against an upgraded database). Nothing is downgraded.
	ErrNewer = errors.New("mysqlschema: database is newer than the schema files")
	// ErrUnmanaged: the table exists but has no version record.
	ErrUnmanaged = errors.New("mysqlschema: table exists without a version record")
)

// DefaultLockTimeout is how long Migrate and Force wait for the migration
// lock unless WithLockTimeout says otherwise.
const DefaultLockTimeout = time.Minute

// bookkeepingTimeout bounds the writes that record a failure, which run even
// when the caller's context is already done.
const bookkeepingTimeout = 10 * time.Second

// Option configures Migrate and Force.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	lockTimeout time.Duration
}

// WithLogger sets the logger for progress messages (one line per file
// applied). The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithLockTimeout sets how long to wait for another migrating process to
// finish. It is rounded up to whole seconds (the unit of GET_LOCK); zero or
// less means do not wait at all.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = max(d, 0) }
}

func newOptions(opts []Option) *options {
	o := &options{logger: slog.New(slog.DiscardHandler), lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Report says what a Migrate call did.
type Report struct {
	// Tables has one entry per table of the fs.FS, in name order, up to and
	// including the table that failed.
	Tables []TableReport
}

// TableReport is what Migrate did to one table.
type TableReport struct {
	Table string
	From  int      // version before the run; 0 means not installed yet
	To    int      // version after the run
	Files []string // files run to completion, in order, as paths in the fs.FS
}

// Migrate brings every table described by fsys to its newest version: a
// fresh install for tables it has no record of, upgrades for the others.
// See the package documentation for the layout, the locking and what happens
// when a statement fails. The returned Report is non-nil whenever the layout
// was valid, also on error.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, opts ...Option) (*Report, error) {
	o := newOptions(opts)
	tables, err := readLayout(fsys)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	err = withLock(ctx, db, o, func(conn *sql.Conn) error {
		for _, t := range tables {
			tr, err := migrateTable(ctx, conn, o, t)
			if tr != nil {
				rep.Tables = append(rep.Tables, *tr)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return rep, err
}

// Versions returns the recorded version of every managed table. A table whose
// first install is under way or failed has version 0. A database Migrate has
// never run on gives an empty map.
func Versions(ctx context.Context, db *sql.DB) (map[string]int, error) {
	rows, err := db.QueryContext(ctx, "SELECT table_name, version FROM "+versionsTable)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1146 { // ER_NO_SUCH_TABLE
			return map[string]int{}, nil
		}
		return nil, fmt.Errorf("mysqlschema: read versions: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			name string
			v    int
		)
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("mysqlschema: read versions: %w", err)
		}
		out[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysqlschema: read versions: %w", err)
	}
	return out, nil
}

// Force records that table is at version and clears its dirty mark. It is the
// operator's tool after repairing a table by hand, and the way to adopt a
// table that was created before mysqlschema managed it. It takes the same
// lock as Migrate.
func Force(ctx context.Context, db *sql.DB, table string, version int, opts ...Option) error {
	if !tableNameRE.MatchString(table) {
		return fmt.Errorf("mysqlschema: force: table name %q must be 1-64 letters, digits, _ or $", table)
	}
	if version < 1 {
		return fmt.Errorf("mysqlschema: force %s: version %d must be at least 1", table, version)
	}
	o := newOptions(opts)
	return withLock(ctx, db, o, func(conn *sql.Conn) error {
		st, _, err := loadState(ctx, conn, table)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO `+versionsTable+
			` (table_name, version, dirty, file, statements_done, done_hash, error, updated_at)
			VALUES (?, ?, 0, '', 0, '', NULL, UTC_TIMESTAMP(6))
			ON DUPLICATE KEY UPDATE version = VALUES(version), dirty = 0, file = '',
			statements_done = 0, done_hash = '', error = NULL, updated_at = VALUES(updated_at)`,
			table, version); err != nil {
			return fmt.Errorf("mysqlschema: force %s: %w", table, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO `+logTable+
			` (table_name, from_version, to_version, file, first_statement, started_at, finished_at, ok)
			VALUES (?, ?, ?, '(force)', 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), 1)`,
			table, st.version, version); err != nil {
			return fmt.Errorf("mysqlschema: force %s: log: %w", table, err)
		}
		o.logger.InfoContext(ctx, "schema version forced", "table", table, "from", st.version, "to", version, "was_dirty", st.dirty)
		return nil
	})
}

// withLock runs fn on one dedicated connection holding the migration lock.
//
// GET_LOCK locks belong to the server session, that is to one connection:
// taken through the pool, the lock, the statements and RELEASE_LOCK could
// each land on a different connection, the release would not release, and a
// connection dying mid-run would drop the lock while statements went on
// elsewhere. So the lock, every migration statement and the release share one
// *sql.Conn; if that connection dies, both the lock and the run end with it.
func withLock(ctx context.Context, db *sql.DB, o *options, fn func(*sql.Conn) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mysqlschema: connect: %w", err)
	}
	defer conn.Close()

	var dbName sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return fmt.Errorf("mysqlschema: select database: %w", err)
	}
	if !dbName.Valid || dbName.String == "" {
		return errors.New("mysqlschema: the connection has no current database (put one in the DSN)")
	}
	name := lockName(dbName.String)
	secs := int64(math.Ceil(o.lockTimeout.Seconds()))
	o.logger.DebugContext(ctx, "acquiring migration lock", "lock", name, "timeout", o.lockTimeout)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, secs).Scan(&got); err != nil {
		return fmt.Errorf("mysqlschema: acquire lock %q: %w", name, err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("%w: lock %q is held by another session (SELECT IS_USED_LOCK('%s') gives its connection id) and was not released within %s",
			ErrLocked, name, name, time.Duration(secs)*time.Second)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		var released sql.NullInt64
		rerr := conn.QueryRowContext(rctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released)
		if rerr != nil || released.Int64 != 1 {
			// The session may still hold the lock: make sure it never goes
			// back to the pool, closing it ends the session and the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		if rerr != nil && err == nil {
			err = fmt.Errorf("mysqlschema: release lock %q: %w", name, rerr)
		}
	}()
	if err := ensureBookkeeping(ctx, conn); err != nil {
		return err
	}
	return fn(conn)
}

// lockName is the GET_LOCK name for a database. Lock names are server-wide
// and at most 64 characters.
func lockName(db string) string {
	name := "mysqlschema:" + db
	if len(name) > 64 {
		sum := sha256.Sum256([]byte(db))
		name = "mysqlschema:" + hex.EncodeToString(sum[:16])
	}
	return name
}

func ensureBookkeeping(ctx context.Context, conn *sql.Conn) error {
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS ` + versionsTable + ` (
			table_name      VARCHAR(64)  NOT NULL PRIMARY KEY,
			version         INT          NOT NULL,
			dirty           TINYINT(1)   NOT NULL DEFAULT 0,
			file            VARCHAR(512) NOT NULL DEFAULT '' COMMENT 'file under way when dirty',
			statements_done INT          NOT NULL DEFAULT 0 COMMENT 'statements of file that succeeded',
			done_hash       CHAR(64)     NOT NULL DEFAULT '' COMMENT 'sha256 of those statements',
			error           TEXT         NULL,
			updated_at      DATETIME(6)  NOT NULL COMMENT 'UTC'
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
		`CREATE TABLE IF NOT EXISTS ` + logTable + ` (
			id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
			table_name       VARCHAR(64)  NOT NULL,
			from_version     INT          NOT NULL,
			to_version       INT          NOT NULL,
			file             VARCHAR(512) NOT NULL,
			first_statement  INT          NOT NULL DEFAULT 1 COMMENT '> 1 when resuming',
			failed_statement INT          NULL,
			started_at       DATETIME(6)  NOT NULL COMMENT 'UTC',
			finished_at      DATETIME(6)  NULL,
			ok               TINYINT(1)   NULL COMMENT 'NULL: interrupted or running',
			error            TEXT         NULL,
			KEY table_id (table_name, id)
		) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	} {
		if _, err := conn.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("mysqlschema: create bookkeeping tables: %w", err)
		}
	}
	return nil
}

// state is a table's row in schema_versions.
type state struct {
	version int
	dirty   bool
	file    string
	done    int
	hash    string
	err     string
}

func loadState(ctx context.Context, conn *sql.Conn, table string) (state, bool, error) {
	var (
		st  state
		msg sql.NullString
	)
	err := conn.QueryRowContext(ctx, `SELECT version, dirty, file, statements_done, done_hash, error FROM `+
		versionsTable+` WHERE table_name = ?`, table).Scan(&st.version, &st.dirty, &st.file, &st.done, &st.hash, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, fmt.Errorf("mysqlschema: %s: read version: %w", table, err)
	}
	st.err = msg.String
	return st, true, nil
}

// step is one file to run, and the version it belongs to.
type step struct {
	file     sqlFile
	from, to int
	ends     bool // the version is reached when this file is done
}

// plan lists the files that take table t from version from to t.newest.
func plan(t *table, from int) []step {
	var steps []step
	if from == 0 {
		steps = append(steps, step{file: t.latest, to: t.newest})
		for v := 1; v <= t.newest; v++ {
			if d, ok := t.data[v]; ok {
				steps = append(steps, step{file: d, to: t.newest})
			}
		}
		steps[len(steps)-1].ends = true
		return steps
	}
	for v := from + 1; v <= t.newest; v++ {
		steps = append(steps, step{file: t.schema[v], from: v - 1, to: v})
		if d, ok := t.data[v]; ok {
			steps = append(steps, step{file: d, from: v - 1, to: v})
		}
		steps[len(steps)-1].ends = true
	}
	return steps
}

func migrateTable(ctx context.Context, conn *sql.Conn, o *options, t *table) (*TableReport, error) {
	st, found, err := loadState(ctx, conn, t.name)
	if err != nil {
		return nil, err
	}
	if !found {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables
			WHERE table_schema = DATABASE() AND table_name = ?`, t.name).Scan(&n); err != nil {
			return nil, fmt.Errorf("mysqlschema: %s: look for table: %w", t.name, err)
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: table %s exists but %s has no row for it: if it matches version N of the files, record that with Force(ctx, db, %q, N)",
				ErrUnmanaged, t.name, versionsTable, t.name)
		}
	}
	tr := &TableReport{Table: t.name, From: st.version, To: st.version}
	if st.version > t.newest {
		return tr, fmt.Errorf("%w: table %s is at version %d but the files only go to %d: this binary is older than the database; nothing was changed",
			ErrNewer, t.name, st.version, t.newest)
	}
	steps := plan(t, st.version)
	start, first := 0, 0
	if st.dirty {
		start = -1
		for i, s := range steps {
			if s.file.path == st.file {
				start = i
			}
		}
		if start < 0 {
			return tr, dirtyError(t.name, st, fmt.Sprintf("%s is not part of the files that lead from version %d to %d any more", st.file, st.version, t.newest))
		}
		stmts := steps[start].file.stmts
		if st.done > len(stmts) || prefixHash(stmts, st.done) != st.hash {
			return tr, dirtyError(t.name, st, fmt.Sprintf("statements 1-%d of %s were changed after they had been applied", st.done, st.file))
		}
		first = st.done
		o.logger.InfoContext(ctx, "resuming dirty table", "table", t.name, "file", st.file, "statement", first+1, "previous_error", st.err)
	}
	for i := start; i < len(steps); i++ {
		if err := runStep(ctx, conn, o, t.name, steps[i], first); err != nil {
			return tr, err
		}
		first = 0
		tr.Files = append(tr.Files, steps[i].file.path)
		if steps[i].ends {
			tr.To = steps[i].to
		}
	}
	return tr, nil
}

func dirtyError(table string, st state, why string) error {
	if st.version == 0 {
		return fmt.Errorf("%w: table %s: its first install stopped in %s after statement %d (%s) and %s; "+
			"drop the table, DELETE FROM %s WHERE table_name = '%s', then run again",
			ErrDirty, table, st.file, st.done, orUnknown(st.err), why, versionsTable, table)
	}
	return fmt.Errorf("%w: table %s: an earlier run stopped in %s after statement %d (%s) and %s; "+
		"make the table match version %d by hand or finish %s by hand, then record the version with Force(ctx, db, %q, version)",
		ErrDirty, table, st.file, st.done, orUnknown(st.err), why, st.version, st.file, table)
}

func orUnknown(msg string) string {
	if msg == "" {
		return "interrupted, no error recorded"
	}
	return msg
}

// runStep runs the statements of one file from index first on, recording
// progress after every statement so that a failure can be resumed exactly.
func runStep(ctx context.Context, conn *sql.Conn, o *options, table string, s step, first int) error {
	stmts := s.file.stmts
	if _, err := conn.ExecContext(ctx, `INSERT INTO `+versionsTable+
		` (table_name, version, dirty, file, statements_done, done_hash, error, updated_at)
		VALUES (?, ?, 1, ?, ?, ?, NULL, UTC_TIMESTAMP(6))
		ON DUPLICATE KEY UPDATE dirty = 1, file = VALUES(file), statements_done = VALUES(statements_done),
		done_hash = VALUES(done_hash), error = NULL, updated_at = VALUES(updated_at)`,
		table, s.from, s.file.path, first, prefixHash(stmts, first)); err != nil {
		return fmt.Errorf("mysqlschema: %s: mark dirty: %w", table, err)
	}
	res, err := conn.ExecContext(ctx, `INSERT INTO `+logTable+
		` (table_name, from_version, to_version, file, first_statement, started_at) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))`,
		table, s.from, s.to, s.file.path, first+1)
	if err != nil {
		return fmt.Errorf("mysqlschema: %s: write log: %w", table, err)
	}
	logID, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("mysqlschema: %s: write log: %w", table, err)
	}
	began := time.Now()
	for j := first; j < len(stmts); j++ {
		if _, err := conn.ExecContext(ctx, stmts[j].text); err != nil {
			return recordFailure(ctx, conn, table, s, logID, j, err)
		}
		if _, err := conn.ExecContext(ctx, `UPDATE `+versionsTable+
			` SET statements_done = ?, done_hash = ?, updated_at = UTC_TIMESTAMP(6) WHERE table_name = ?`,
			j+1, prefixHash(stmts, j+1), table); err != nil {
			return fmt.Errorf("mysqlschema: %s: %s: record statement %d: %w", table, s.file.path, j+1, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `UPDATE `+logTable+` SET finished_at = UTC_TIMESTAMP(6), ok = 1 WHERE id = ?`, logID); err != nil {
		return fmt.Errorf("mysqlschema: %s: write log: %w", table, err)
	}
	if s.ends {
		if _, err := conn.ExecContext(ctx, `UPDATE `+versionsTable+
			` SET version = ?, dirty = 0, file = '', statements_done = 0, done_hash = '', error = NULL,
			updated_at = UTC_TIMESTAMP(6) WHERE table_name = ?`, s.to, table); err != nil {
			return fmt.Errorf("mysqlschema: %s: record version %d: %w", table, s.to, err)
		}
	}
	o.logger.InfoContext(ctx, "schema file applied", "table", table, "file", s.file.path,
		"from", s.from, "to", s.to, "statements", len(stmts)-first, "duration", time.Since(began))
	return nil
}

// recordFailure writes the failed statement to both bookkeeping tables and
// builds the error for the caller. It runs even when ctx is done (the
// statement may have failed because of that); if the connection is gone the
// table simply stays dirty with the last recorded progress.
func recordFailure(ctx context.Context, conn *sql.Conn, table string, s step, logID int64, j int, cause error) error {
	st := s.file.stmts[j]
	where := fmt.Sprintf("%s statement %d (line %d)", s.file.path, j+1, st.line)
	msg := where + ": " + cause.Error()
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	_, err1 := conn.ExecContext(bctx, `UPDATE `+versionsTable+` SET error = ?, updated_at = UTC_TIMESTAMP(6) WHERE table_name = ?`, msg, table)
	_, err2 := conn.ExecContext(bctx, `UPDATE `+logTable+
		` SET finished_at = UTC_TIMESTAMP(6), ok = 0, failed_statement = ?, error = ? WHERE id = ?`, j+1, cause.Error(), logID)
	applied := "none of its statements were applied"
	if j > 0 {
		applied = "statements 1-" + strconv.Itoa(j) + " were applied"
	}
	err := fmt.Errorf("%w: table %s: %s: %w; %s and the table is marked dirty at version %d: "+
		"fix statement %d (keep the statements before it unchanged) and run again to resume there, "+
		"or repair the table by hand and record its version with Force",
		ErrStatement, table, where, cause, applied, s.from, j+1)
	if rerr := errors.Join(err1, err2); rerr != nil {
		err = fmt.Errorf("%w (recording the failure failed too: %w)", err, rerr)
	}
	return err
}

// prefixHash identifies the first n statements of a file, so that a resumed
// run can tell whether the part already applied is still the same.
func prefixHash(stmts []statement, n int) string {
	h := sha256.New()
	for _, s := range stmts[:n] {
		h.Write([]byte(s.text))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
