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
	// Checkpoints run on their own connection (sqlite_ckpt.go); the writer
	// does them itself only past ckptBackstop pages.
	w, err := sql.Open("sqlite", sqliteDSN(path, "_pragma=journal_mode(WAL)", "_txlock=immediate",
		fmt.Sprintf("_pragma=wal_autocheckpoint(%d)", ckptBackstop)))
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
	c, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	s, err := newSQLStore(w, r, sqliteDialect, cfg)
	if err != nil {
		c.Close()
		r.Close()
		w.Close()
		return nil, err
	}
	s.ckpt = newCheckpointer(c, cfg.Logger)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	cfg.Logger.Info("store opened", "driver", DriverSQLite, "path", path)
	return s, nil
}
