package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL server error numbers.
const (
	mysqlDupEntry        = 1062
	mysqlLockWaitTimeout = 1205
	mysqlDeadlock        = 1213
	mysqlNoReferenced    = 1452
)

var mysqlDialect = dialect{
	name: DriverMySQL,
	upsert: func(...string) string {
		return "ON DUPLICATE KEY UPDATE"
	},
	excluded: func(col string) string { return "VALUES(" + col + ")" },
	timeArg: func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	},
	classify: func(err error) error {
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			return nil
		}
		switch me.Number {
		case mysqlDupEntry:
			return ErrConflict
		case mysqlNoReferenced:
			return ErrNotFound
		}
		return nil
	},
	// READ COMMITTED: no gap locks, so concurrent upserts of new agents and
	// their labels do not deadlock each other; every transaction here is a
	// short read-modify-write that needs no repeatable reads.
	txOptions: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	retryable: func(err error) bool {
		var me *mysql.MySQLError
		return errors.As(err, &me) && (me.Number == mysqlDeadlock || me.Number == mysqlLockWaitTimeout)
	},
}

// mysqlConfig parses dsn and forces what the store relies on.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: mysql DSN: %v", ErrInvalid, err)
	}
	if mc.DBName == "" {
		return nil, fmt.Errorf("%w: mysql DSN names no database", ErrInvalid)
	}
	mc.ParseTime = true         // DATETIME(6) scans into time.Time
	mc.Loc = time.UTC           // and is read and written as UTC
	mc.ClientFoundRows = true   // UPDATE reports matched rows, as SQLite does
	mc.InterpolateParams = true // one round trip per statement, no 65535-placeholder limit
	return mc, nil
}

func openMySQL(ctx context.Context, cfg Config) (Store, error) {
	mc, err := mysqlConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("store: mysql: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	where := mc.Addr + "/" + mc.DBName
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: mysql %s: %w", where, err)
	}
	if err := migrateMySQL(ctx, db, cfg); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: mysql %s: %w", where, err)
	}
	s, err := newSQLStore(db, db, mysqlDialect, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	cfg.Logger.Info("store opened", "driver", DriverMySQL, "database", where)
	return s, nil
}
