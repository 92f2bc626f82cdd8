package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// SQLiteFile is the database file name under Config.DataDir.
const SQLiteFile = "agent-server.db"

// SQLite extended result codes (sqlite3.h).
const (
	sqliteConstraint           = 19
	sqliteConstraintForeignKey = 787
)

var sqliteDialect = dialect{
	name: DriverSQLite,
	upsert: func(keys ...string) string {
		return "ON CONFLICT (" + strings.Join(keys, ", ") + ") DO UPDATE SET"
	},
	excluded: func(col string) string { return "excluded." + col },
	timeArg: func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UnixMicro()
	},
	classify: func(err error) error {
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqliteConstraint {
			return nil
		}
		if se.Code() == sqliteConstraintForeignKey || strings.Contains(se.Error(), "FOREIGN KEY") {
			return ErrNotFound
		}
		return ErrConflict
	},
}

// sqliteSchema lists the migrations; PRAGMA user_version counts those
// applied. Append, never edit. Times are INTEGER Unix microseconds.
var sqliteSchema = []string{
	`CREATE TABLE agents (
		id TEXT PRIMARY KEY,
		type TEXT NOT NULL DEFAULT '',
		version TEXT NOT NULL DEFAULT '',
		ip TEXT NOT NULL DEFAULT '',
		mac TEXT NOT NULL DEFAULT '',
		host_name TEXT NOT NULL DEFAULT '',
		os TEXT NOT NULL DEFAULT '',
		platform TEXT NOT NULL DEFAULT '',
		platform_version TEXT NOT NULL DEFAULT '',
		kernel_version TEXT NOT NULL DEFAULT '',
		arch TEXT NOT NULL DEFAULT '',
		cpu TEXT NOT NULL DEFAULT '',
		cpu_core INTEGER NOT NULL DEFAULT 0,
		memory INTEGER NOT NULL DEFAULT 0,
		labels BLOB,
		facts BLOB,
		first_seen INTEGER NOT NULL,
		last_seen INTEGER NOT NULL,
		connected_at INTEGER
	);
	CREATE INDEX agents_type ON agents (type);
	CREATE INDEX agents_os ON agents (os, platform);
	CREATE TABLE agent_labels (
		agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
		k TEXT NOT NULL,
		v TEXT NOT NULL,
		PRIMARY KEY (agent_id, k)
	) WITHOUT ROWID;
	CREATE INDEX agent_labels_kv ON agent_labels (k, v);
	CREATE TABLE tasks (
		id TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		spec BLOB,
		state TEXT NOT NULL,
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		started_at INTEGER,
		finished_at INTEGER,
		msg TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX tasks_created ON tasks (created_at);
	CREATE INDEX tasks_state ON tasks (state);
	CREATE TABLE results (
		task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
		agent_id TEXT NOT NULL,
		state TEXT NOT NULL,
		exit_code INTEGER NOT NULL DEFAULT 0,
		pid INTEGER NOT NULL DEFAULT 0,
		started_at INTEGER,
		ended_at INTEGER,
		msg TEXT NOT NULL DEFAULT '',
		output_head BLOB,
		output_tail BLOB,
		dropped INTEGER NOT NULL DEFAULT 0,
		output_bytes INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (task_id, agent_id)
	) WITHOUT ROWID;
	CREATE INDEX results_state ON results (task_id, state);
	CREATE TABLE outputs (
		task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
		agent_id TEXT NOT NULL,
		pos INTEGER NOT NULL,
		data BLOB NOT NULL,
		PRIMARY KEY (task_id, agent_id, pos)
	);
	CREATE TABLE audit (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		at INTEGER NOT NULL,
		actor TEXT NOT NULL DEFAULT '',
		action TEXT NOT NULL DEFAULT '',
		target TEXT NOT NULL DEFAULT '',
		request_id TEXT NOT NULL DEFAULT '',
		detail BLOB,
		result TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_at ON audit (at);
	CREATE INDEX audit_actor ON audit (actor, at);
	CREATE INDEX audit_action ON audit (action, at);
	CREATE TABLE metrics (
		agent_id TEXT NOT NULL,
		category TEXT NOT NULL,
		at INTEGER NOT NULL,
		data BLOB,
		PRIMARY KEY (agent_id, category)
	) WITHOUT ROWID;
	CREATE TABLE usage_history (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		agent_id TEXT NOT NULL,
		at INTEGER NOT NULL,
		data BLOB
	);
	CREATE INDEX usage_agent_at ON usage_history (agent_id, at);
	CREATE INDEX usage_at ON usage_history (at);`,
	// v2: agent secrets (hashes) and journal high-water marks, so agents'
	// secrets and acknowledged results survive a server restart.
	`CREATE TABLE agent_secrets (
		agent_id TEXT PRIMARY KEY,
		hash BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE journal_acks (
		agent_id TEXT NOT NULL,
		journal TEXT NOT NULL,
		seq INTEGER NOT NULL,
		PRIMARY KEY (agent_id, journal)
	) WITHOUT ROWID;`,
	// v3: API tokens created at runtime (only the SHA-256 of the secret),
	// and the agent, remote address and HTTP status of audit entries.
	`CREATE TABLE api_tokens (
		name TEXT PRIMARY KEY,
		hash BLOB NOT NULL UNIQUE,
		scopes TEXT NOT NULL,
		selector TEXT NOT NULL DEFAULT '',
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		expires_at INTEGER,
		revoked_at INTEGER,
		revoked_by TEXT NOT NULL DEFAULT ''
	) WITHOUT ROWID;
	ALTER TABLE audit ADD COLUMN agent TEXT NOT NULL DEFAULT '';
	ALTER TABLE audit ADD COLUMN remote TEXT NOT NULL DEFAULT '';
	ALTER TABLE audit ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX audit_agent ON audit (agent, at);`,
}

// sqliteDSN turns a path (or a file: URI without parameters) into a
// modernc.org/sqlite DSN with our settings; extra parameters are appended.
func sqliteDSN(path string, extra ...string) string {
	if !strings.HasPrefix(path, "file:") {
		path = "file:" + path
	}
	params := []string{
		"_pragma=busy_timeout(10000)",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
	}
	params = append(params, extra...)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + strings.Join(params, "&")
}

func openSQLite(ctx context.Context, cfg Config) (Store, error) {
	path := cfg.DSN
	if path == "" {
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("store: sqlite: %w: neither DSN nor DataDir set", ErrInvalid)
		}
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("store: sqlite: data dir: %w", err)
		}
		path = filepath.Join(cfg.DataDir, SQLiteFile)
	}
	// One writer connection: SQLite allows a single writer, and queuing in
	// database/sql is cheaper and fairer than busy-waiting on file locks.
	// BEGIN IMMEDIATE takes the write lock up front, so a transaction never
	// fails half-way when another process holds the file.
	w, err := sql.Open("sqlite", sqliteDSN(path, "_pragma=journal_mode(WAL)", "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrateSQLite(ctx, w, cfg); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, "_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s, err := newSQLStore(w, r, sqliteDialect, cfg)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	cfg.Logger.Info("store opened", "driver", DriverSQLite, "path", path)
	return s, nil
}

func migrateSQLite(ctx context.Context, db *sql.DB, cfg Config) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(sqliteSchema) {
		return fmt.Errorf("schema version %d is newer than this server knows (%d)", version, len(sqliteSchema))
	}
	for v := version; v < len(sqliteSchema); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to v%d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, sqliteSchema[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migrate to v%d: %w", v+1, err)
		}
		// PRAGMA takes no placeholders; v is ours.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("migrate to v%d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to v%d: %w", v+1, err)
		}
		cfg.Logger.Info("store schema migrated", "driver", DriverSQLite, "version", v+1)
	}
	return nil
}
