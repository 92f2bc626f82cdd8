package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// migrate is the one migration path of both backends: it brings a
// database at version from to len(migrations), one step at a time. apply
// runs one step's statements (in the backend's dialect) and records the
// step's version, atomically where the backend allows.
func migrate(ctx context.Context, log *slog.Logger, driver string, from int, apply func(v int, stmts []string) error) error {
	if from > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this server knows (%d)", from, len(migrations))
	}
	for v := from; v < len(migrations); v++ {
		if err := apply(v+1, migrations[v].statements(driver)); err != nil {
			return fmt.Errorf("migrate to v%d: %w", v+1, err)
		}
		log.Info("store schema migrated", "driver", driver, "version", v+1)
	}
	return nil
}

// migrateSQLite migrates on one connection of db with foreign keys off (a
// rebuild drops and renames tables); each step is a transaction that also
// sets PRAGMA user_version.
func migrateSQLite(ctx context.Context, db *sql.DB, cfg Config) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var version int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version >= len(migrations) { // up to date, or newer (migrate says so)
		return migrate(ctx, cfg.Logger, DriverSQLite, version, nil)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return err
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON"); ferr != nil && err == nil {
			err = ferr
		}
	}()
	return migrate(ctx, cfg.Logger, DriverSQLite, version, func(v int, stmts []string) error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("%w in %s", err, firstLine(q))
			}
		}
		// PRAGMA takes no placeholders; v is ours.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

func firstLine(q string) string {
	q, _, _ = strings.Cut(strings.TrimSpace(q), "\n")
	return q
}

// mysqlLock serialises the servers of a cluster that start together.
const mysqlLock = "agentfleet_store_migrate"

// migrateMySQL migrates under a named lock. MySQL commits DDL at once, so
// a step cannot be a transaction: store_version records each step as it
// completes, and a step that fails half-way leaves its earlier statements
// applied, named in the error, for the operator to undo before a retry.
//
// Databases migrated before store_version existed (by jkframe/mysqlschema,
// table by table) are recognised by their tables and adopted at the
// matching version; see mysqlLegacyVersion.
func migrateMySQL(ctx context.Context, db *sql.DB, cfg Config) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", mysqlLock).Scan(&got); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("migration lock %s: another server held it for 60 s", mysqlLock)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", mysqlLock) //nolint:errcheck // the session's end releases it too
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS store_version (version INT NOT NULL) "+mysqlTableOptions); err != nil {
		return fmt.Errorf("create store_version: %w", err)
	}
	var version int
	err = conn.QueryRowContext(ctx, "SELECT version FROM store_version").Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		if version, err = mysqlLegacyVersion(ctx, conn); err != nil {
			return err
		}
		if _, err = conn.ExecContext(ctx, "INSERT INTO store_version (version) VALUES (?)", version); err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
		if version > 0 {
			cfg.Logger.Info("store schema adopted", "driver", DriverMySQL, "version", version)
		}
	} else if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	return migrate(ctx, cfg.Logger, DriverMySQL, version, func(v int, stmts []string) error {
		for i, q := range stmts {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%w in %s (%d earlier statements of the step are applied: undo them before retrying)", err, firstLine(q), i)
			}
		}
		_, err := conn.ExecContext(ctx, "UPDATE store_version SET version = ?", v)
		return err
	})
}

// mysqlLegacyVersion is the version of a database that has no store_version
// row: 0 when it has none of the store's tables, else the step whose tables
// it has (migrated by jkframe/mysqlschema before v4, the same tables and
// columns step by step).
func mysqlLegacyVersion(ctx context.Context, conn *sql.Conn) (int, error) {
	has := func(table, column string) (bool, error) {
		q := "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
		args := []any{table}
		if column != "" {
			q += " AND COLUMN_NAME = ?"
			args = append(args, column)
		}
		var n int
		err := conn.QueryRowContext(ctx, q, args...).Scan(&n)
		return n > 0, err
	}
	// The table each step created first.
	version := 0
	for _, table := range []string{"agents", "agent_secrets", "api_tokens"} {
		ok, err := has(table, "")
		if err != nil {
			return 0, fmt.Errorf("inspect schema: %w", err)
		}
		if !ok {
			break
		}
		version++
	}
	if version == 3 {
		// v3 also added audit's agent column (audit v2 in mysqlschema).
		if ok, err := has("audit", "agent"); err != nil {
			return 0, fmt.Errorf("inspect schema: %w", err)
		} else if !ok {
			return 0, fmt.Errorf("schema: table api_tokens exists but audit has no column agent: finish the older server's migration (jkframe/mysqlschema) first")
		}
	}
	// The per-table bookkeeping of mysqlschema must not show a failed run.
	var dirty int
	err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'schema_versions'").Scan(&dirty)
	if err == nil && dirty > 0 {
		err = conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_versions WHERE dirty <> 0").Scan(&dirty)
		if err == nil && dirty > 0 {
			return 0, fmt.Errorf("schema: schema_versions shows a failed migration (dirty): finish the older server's migration (jkframe/mysqlschema) first")
		}
	}
	if err != nil {
		return 0, fmt.Errorf("inspect schema: %w", err)
	}
	return version, nil
}
