// Package mysqltest gives tests a throw-away MySQL/MariaDB database.
//
// The server is named by the environment variable TEST_MYSQL_DSN, a
// go-sql-driver/mysql DSN without a database name (default
// "root@tcp(127.0.0.1:3306)/"). Open creates a database test_<random> on it,
// returns a *sql.DB bound to that database and drops it when the test ends,
// so tests can run in parallel and leave nothing behind.
//
// When the server does not answer, the test is skipped with a message — unless
// CI=true or REQUIRE_MYSQL=1 is set, in which case it fails: CI must never
// pass silently without having talked to the database.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultDSN is the server used when TEST_MYSQL_DSN is not set.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/"

// connectTimeout bounds how long a missing server can hold up a test.
const connectTimeout = 5 * time.Second

// DSN returns the server DSN (without a database) from TEST_MYSQL_DSN or
// DefaultDSN. It fails the test when the variable is not a valid DSN.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = DefaultDSN
	}
	if _, err := mysql.ParseDSN(dsn); err != nil {
		t.Fatalf("mysqltest: TEST_MYSQL_DSN=%q is not a valid DSN: %v", dsn, err)
	}
	return dsn
}

// Open creates a fresh database named test_<random>, returns a *sql.DB on it
// (parseTime=true, multiStatements=true) and registers a cleanup that closes
// the pool and drops the database.
func Open(t testing.TB) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(DSN(t))
	if err != nil {
		t.Fatalf("mysqltest: %v", err) // unreachable: DSN validated it
	}
	cfg.ParseTime = true
	cfg.MultiStatements = true
	if cfg.Timeout == 0 {
		cfg.Timeout = connectTimeout
	}
	serverCfg := *cfg
	serverCfg.DBName = ""

	admin, err := sql.Open("mysql", serverCfg.FormatDSN())
	if err != nil {
		t.Fatalf("mysqltest: open %s: %v", serverCfg.Addr, err)
	}
	defer admin.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*connectTimeout)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		unavailable(t, serverCfg.Addr, err)
		return nil
	}

	name := "test_" + randomSuffix(t)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("mysqltest: create database %s on %s: %v", name, serverCfg.Addr, err)
	}

	cfg.DBName = name
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		dropDatabase(t, &serverCfg, name)
		t.Fatalf("mysqltest: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		db.Close()
		dropDatabase(t, &serverCfg, name)
	})
	return db
}

// unavailable fails (CI) or skips (developer machine) a test whose server
// does not answer.
func unavailable(t testing.TB, addr string, err error) {
	t.Helper()
	const how = "start it (make mysql, or .ci/mysql-up) or point TEST_MYSQL_DSN at a server"
	if os.Getenv("CI") == "true" || os.Getenv("REQUIRE_MYSQL") == "1" {
		t.Fatalf("mysqltest: MySQL/MariaDB at %s is required (CI=true or REQUIRE_MYSQL=1) but does not answer: %v; %s", addr, err, how)
	}
	t.Skipf("mysqltest: skipping, MySQL/MariaDB at %s does not answer: %v; %s (set REQUIRE_MYSQL=1 to fail instead)", addr, err, how)
}

func dropDatabase(t testing.TB, serverCfg *mysql.Config, name string) {
	t.Helper()
	admin, err := sql.Open("mysql", serverCfg.FormatDSN())
	if err != nil {
		t.Errorf("mysqltest: drop %s: %v", name, err)
		return
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		t.Errorf("mysqltest: drop database %s: %v", name, err)
	}
}

func randomSuffix(t testing.TB) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("mysqltest: random name: %v", err)
	}
	return hex.EncodeToString(b[:])
}

// QueryStrings runs q on db (any driver) and returns the one string column
// of its rows, failing the test on any error.
func QueryStrings(t testing.TB, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
