package store

import (
	"context"
	"database/sql"
	"testing"

	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"
	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func sqliteTestConfig(t testing.TB) Config {
	return Config{Driver: DriverSQLite, DataDir: t.TempDir()}
}

// mysqlTestConfig points at a fresh database from mysqltest (skipped
// locally, failing in CI, when the server is absent).
func mysqlTestConfig(t testing.TB) Config {
	return mysqlDBConfig(t, mysqltest.Open(t))
}

// mysqlDBConfig is the store Config of the database db is bound to.
func mysqlDBConfig(t testing.TB, db *sql.DB) Config {
	t.Helper()
	var name string
	if err := db.QueryRowContext(context.Background(), "SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatalf("mysql database name: %v", err)
	}
	mc, err := mysql.ParseDSN(mysqltest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	mc.DBName = name
	return Config{Driver: DriverMySQL, DSN: mc.FormatDSN()}
}

func TestSQLite(t *testing.T) { runSuite(t, sqliteTestConfig) }

func TestMySQL(t *testing.T) { runSuite(t, mysqlTestConfig) }
