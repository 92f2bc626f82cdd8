package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/mysqlschema"
	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"
)

// seedLegacy writes one row in each table of a database at the schema
// before v4 (raw SQL, as the store of that time stored it).
func seedLegacy(t *testing.T, db *sql.DB, d dialect) {
	t.Helper()
	ctx := context.Background()
	at := d.timeArg(t0.UTC().Truncate(time.Microsecond))
	hash := sha256.Sum256([]byte("secret"))
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO agents (id, type, labels, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)", []any{"a1", "exec-agent", []byte(`{"env":"prod"}`), at, at}},
		{"INSERT INTO agent_labels (agent_id, k, v) VALUES (?, ?, ?)", []any{"a1", "env", "prod"}},
		{"INSERT INTO tasks (id, kind, spec, state, created_by, created_at, finished_at, msg) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{"t1", "exec", []byte(`{"cmd":"true"}`), "failed", "alice", at, at, "boom"}},
		{"INSERT INTO results (task_id, agent_id, state, exit_code, started_at, ended_at, msg, output_tail, output_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", []any{"t1", "a1", "failed", 2, at, at, "exit 2", []byte("lo"), 5}},
		{"INSERT INTO outputs (task_id, agent_id, pos, data) VALUES (?, ?, ?, ?)", []any{"t1", "a1", 0, []byte("hello")}},
		{"INSERT INTO audit (at, actor, action, target, agent, remote, status, request_id, detail, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", []any{at, "alice", "exec", "a1", "a1", "10.0.0.1", 200, "r1", []byte(`{"cmd":"true"}`), "ok"}},
		{"INSERT INTO metrics (agent_id, category, at, data) VALUES (?, ?, ?, ?)", []any{"a1", "cpu", at, []byte(`{"p":1}`)}},
		{"INSERT INTO usage_history (agent_id, at, data) VALUES (?, ?, ?)", []any{"a1", at, []byte(`{"cpu":1}`)}},
		{"INSERT INTO agent_secrets (agent_id, hash) VALUES (?, ?)", []any{"a1", []byte("h1")}},
		{"INSERT INTO journal_acks (agent_id, journal, seq) VALUES (?, ?, ?)", []any{"a1", "results", 7}},
		{"INSERT INTO api_tokens (name, hash, scopes, selector, created_by, created_at, revoked_by) VALUES (?, ?, ?, ?, ?, ?, ?)", []any{"ci", hash[:], "agents:read,tasks:read", "env=prod", "alice", at, ""}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
}

// checkUpgraded reads back what seedLegacy wrote through the store, and
// writes on top of it.
func checkUpgraded(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	a, err := s.GetAgent(ctx, "a1")
	if err != nil || a.Labels["env"] != "prod" || a.Type != "exec-agent" {
		t.Fatalf("agent %+v, %v", a, err)
	}
	if as, n, err := s.ListAgents(ctx, AgentFilter{Labels: mustSelector(t, "env=prod")}); err != nil || n != 1 || len(as) != 1 {
		t.Fatalf("agents by label: %d %v", n, err)
	}
	tk, err := s.GetTask(ctx, "t1")
	if err != nil || tk.Msg != "boom" || tk.State != TaskFailed || tk.CreatedBy != "alice" || tk.Summary.Failed != 1 || !tk.CreatedAt.Equal(t0.Truncate(time.Microsecond)) {
		t.Fatalf("task %+v, %v", tk, err)
	}
	r, err := s.GetResult(ctx, "t1", "a1")
	if err != nil || r.Msg != "exit 2" || r.ExitCode != 2 || string(r.OutputTail) != "lo" || r.OutputBytes != 5 {
		t.Fatalf("result %+v, %v", r, err)
	}
	if n, err := s.AppendOutput(ctx, "t1", "a1", []byte("!")); err != nil || n != 1 {
		t.Fatalf("append output: %d %v", n, err)
	}
	if b, size, err := s.ReadOutput(ctx, "t1", "a1", 0, -1); err != nil || string(b) != "hello!" || size != 6 {
		t.Fatalf("output %q %d %v", b, size, err)
	}
	es, n, err := s.ListAudit(ctx, AuditFilter{})
	if err != nil || n != 1 || es[0].Actor != "alice" || es[0].Remote != "10.0.0.1" || es[0].Status != 200 || es[0].Result != "ok" {
		t.Fatalf("audit %+v %d %v", es, n, err)
	}
	id, err := s.AppendAudit(ctx, AuditEntry{Actor: "bob", Action: "x"})
	if err != nil || id <= es[0].ID {
		t.Fatalf("new audit id %d after %d: %v", id, es[0].ID, err)
	}
	hash := sha256.Sum256([]byte("secret"))
	tok, err := s.APITokenByHash(ctx, hash[:])
	if err != nil || tok.Name != "ci" || len(tok.Scopes) != 2 || tok.Selector != "env=prod" {
		t.Fatalf("token %+v, %v", tok, err)
	}
	if _, err := s.CreateAPIToken(ctx, APIToken{Name: "other", Hash: hash[:], Scopes: []string{"agents:read"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("token with a taken hash: %v, want ErrConflict (unique index)", err)
	}
	if h, err := s.SecretHash(ctx, "a1"); err != nil || string(h) != "h1" {
		t.Fatalf("secret %q %v", h, err)
	}
	if seq, err := s.JournalAck(ctx, "a1", "results"); err != nil || seq != 7 {
		t.Fatalf("ack %d %v", seq, err)
	}
	if m, err := s.GetMetric(ctx, "a1", "cpu"); err != nil || string(m.Data) != `{"p":1}` {
		t.Fatalf("metric %+v %v", m, err)
	}
	if us, err := s.UsageHistory(ctx, "a1", time.Time{}); err != nil || len(us) != 1 {
		t.Fatalf("usage %+v %v", us, err)
	}
	// New rows in the rebuilt tables; a missing task is still ErrNotFound.
	nt, err := s.CreateTask(ctx, Task{Kind: KindExec})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutResults(ctx, []Result{{TaskID: nt.ID, AgentID: "a1", State: ResultOK}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutResults(ctx, []Result{{TaskID: "nope", AgentID: "a1", State: ResultOK}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("result of a missing task: %v", err)
	}
	if err := s.DeleteTask(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, size, err := s.ReadOutput(ctx, "t1", "a1", 0, -1); !errors.Is(err, ErrNotFound) || size != 0 {
		t.Fatalf("output of a deleted task: %d %v", size, err)
	}
	if err := s.DeleteAgent(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
}

// legacySQLiteDB writes a database as the SQLite schema of before v4 built
// it (user_version 3), with seedLegacy's rows, and returns its path.
func legacySQLiteDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, q := range legacySQLiteSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("legacy step %d: %v", i+1, err)
		}
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(legacySQLiteSchema))); err != nil {
		t.Fatal(err)
	}
	seedLegacy(t, db, sqliteDialect)
	return path
}

// TestUpgradeSQLiteFailure: a step that fails leaves the database as it
// was (the step is one transaction), and says which step and statement.
func TestUpgradeSQLiteFailure(t *testing.T) {
	ctx := context.Background()
	path := legacySQLiteDB(t)
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE audit__new (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Config{DSN: path})
	if err == nil || !strings.Contains(err.Error(), "migrate to v4") || !strings.Contains(err.Error(), "CREATE TABLE audit__new") {
		t.Fatalf("Open: %v", err)
	}
	var v, tasks, results int
	if err := db.QueryRowContext(ctx, "SELECT (SELECT user_version FROM pragma_user_version), (SELECT COUNT(*) FROM tasks), (SELECT COUNT(*) FROM results)").Scan(&v, &tasks, &results); err != nil {
		t.Fatal(err)
	}
	if v != 3 || tasks != 1 || results != 1 {
		t.Fatalf("after the failed step: user_version %d, %d tasks, %d results; want 3, 1, 1", v, tasks, results)
	}
	var def sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT dflt_value FROM pragma_table_info('tasks') WHERE name = 'msg'").Scan(&def); err != nil || def.String != "''" {
		t.Fatalf("tasks.msg default %v (%v): the rebuild of tasks was not rolled back", def, err)
	}
	// Once the obstacle is gone, the upgrade goes through.
	if _, err := db.ExecContext(ctx, "DROP TABLE audit__new"); err != nil {
		t.Fatal(err)
	}
	checkUpgraded(t, openStore(t, Config{DSN: path}))
}

// TestUpgradeSQLite opens a database that the SQLite schema of before v4
// built (user_version 3, with data), checks the data survives v4 and the
// schema then equals a new database's.
func TestUpgradeSQLite(t *testing.T) {
	ctx := context.Background()
	path := legacySQLiteDB(t)
	s := openStore(t, Config{DSN: path}).(*sqlStore)
	var v int
	if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("user_version %d (%v), want %d", v, err, len(migrations))
	}
	fresh := openStore(t, sqliteTestConfig(t)).(*sqlStore)
	requireSameSchema(t, "upgraded", sqliteSchemaDesc(t, s.r), "new", sqliteSchemaDesc(t, fresh.r))
	var fkErrs int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM pragma_foreign_key_check").Scan(&fkErrs); err != nil || fkErrs != 0 {
		t.Fatalf("foreign key check: %d rows, %v", fkErrs, err)
	}
	var fk bool
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || !fk {
		t.Fatalf("foreign_keys %v after the migration (%v)", fk, err)
	}
	checkUpgraded(t, s)
}

// legacyMySQLDB builds a database as jkframe/mysqlschema did from the
// schema files of before v4 (testdata/legacy-mysql) and returns it with
// its store Config.
func legacyMySQLDB(t *testing.T) (*sql.DB, Config) {
	t.Helper()
	db := mysqltest.Open(t)
	if _, err := mysqlschema.Migrate(context.Background(), db, os.DirFS("testdata/legacy-mysql")); err != nil {
		t.Fatalf("legacy schema: %v", err)
	}
	return db, mysqlDBConfig(t, db)
}

// TestUpgradeMySQL opens a database that jkframe/mysqlschema migrated
// from the schema files of before v4 (all tables at their latest version,
// with data): the store adopts it as v3, migrates it and its schema then
// equals a new database's.
func TestUpgradeMySQL(t *testing.T) {
	ctx := context.Background()
	db, cfg := legacyMySQLDB(t)
	seedLegacy(t, db, mysqlDialect)

	s := openStore(t, cfg).(*sqlStore)
	var v int
	if err := s.r.QueryRowContext(ctx, "SELECT version FROM store_version").Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("store_version %d (%v), want %d", v, err, len(migrations))
	}
	fresh := openStore(t, mysqlTestConfig(t)).(*sqlStore)
	requireSameSchema(t, "upgraded", mysqlSchemaDesc(t, s.r), "new", mysqlSchemaDesc(t, fresh.r))
	checkUpgraded(t, s)
	s.Close()

	// Opening again changes nothing.
	s2 := openStore(t, cfg).(*sqlStore)
	var rows int
	if err := s2.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM store_version").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("store_version rows %d (%v)", rows, err)
	}
}

// TestUpgradeMySQLDirty refuses a database whose mysqlschema bookkeeping
// shows a failed run, naming what to do.
func TestUpgradeMySQLDirty(t *testing.T) {
	db, cfg := legacyMySQLDB(t)
	if _, err := db.Exec("UPDATE schema_versions SET dirty = 1 WHERE table_name = 'audit'"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "failed migration (dirty)") {
		t.Fatalf("Open: %v", err)
	}
}

// TestMySQLConcurrentOpen: servers of a cluster that start together
// migrate one at a time and all end at the latest version.
func TestMySQLConcurrentOpen(t *testing.T) {
	cfg := mysqlTestConfig(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := Open(context.Background(), cfg)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, cfg).(*sqlStore)
	var v, rows int
	if err := s.r.QueryRowContext(context.Background(), "SELECT MAX(version), COUNT(*) FROM store_version").Scan(&v, &rows); err != nil || v != len(migrations) || rows != 1 {
		t.Fatalf("store_version %d in %d rows (%v), want %d in 1", v, rows, err, len(migrations))
	}
}

func mustSelector(t *testing.T, s string) []LabelMatch {
	t.Helper()
	m, err := ParseSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
