package mysqlschema_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/agentfleet/jkframe/mysqlschema"
	"github.com/agentfleet/jkframe/mysqlschema/mysqltest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fixture(version string) fs.FS { return os.DirFS("testdata/" + version) }

func migrate(t *testing.T, db *sql.DB, fsys fs.FS, opts ...mysqlschema.Option) *mysqlschema.Report {
	t.Helper()
	rep, err := mysqlschema.Migrate(context.Background(), db, fsys, opts...)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return rep
}

func versions(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	v, err := mysqlschema.Versions(context.Background(), db)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	return v
}

// shape describes the columns and indexes of the managed tables.
func shape(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT CONCAT_WS(' ', table_name, column_name, column_type, is_nullable, IFNULL(column_default, 'NULL'), column_comment)
		   FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name IN ('users', 'events')
		   ORDER BY table_name, ordinal_position`,
		`SELECT CONCAT_WS(' ', 'index', table_name, index_name, non_unique, seq_in_index, column_name)
		   FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name IN ('users', 'events')
		   ORDER BY table_name, index_name, seq_in_index`,
	} {
		out = append(out, mysqltest.QueryStrings(t, db, q)...)
	}
	return out
}

// contents is the data of the managed tables.
func contents(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return append(
		mysqltest.QueryStrings(t, db, `SELECT CONCAT_WS('|', id, name, email) FROM users ORDER BY id`),
		mysqltest.QueryStrings(t, db, `SELECT CONCAT_WS('|', id, body, kind, IFNULL(at, 'NULL')) FROM events ORDER BY id`)...)
}

func TestFreshInstall(t *testing.T) {
	db := mysqltest.Open(t)
	if v := versions(t, db); len(v) != 0 {
		t.Fatalf("Versions before any Migrate = %v, want empty", v)
	}
	rep := migrate(t, db, fixture("v3"))
	want := []mysqlschema.TableReport{
		{Table: "events", From: 0, To: 3, Files: []string{"events/schema/latest.sql", "events/data/v2.sql", "events/data/v3.sql"}},
		{Table: "users", From: 0, To: 3, Files: []string{"users/schema/latest.sql", "users/data/v1.sql", "users/data/v2.sql"}},
	}
	if !reflect.DeepEqual(rep.Tables, want) {
		t.Fatalf("report %+v\nwant %+v", rep.Tables, want)
	}
	if v := versions(t, db); !reflect.DeepEqual(v, map[string]int{"users": 3, "events": 3}) {
		t.Fatalf("Versions = %v", v)
	}
	wantData := []string{
		"1|admin|admin@example.com", "2|semi;colon|", "3|it's|",
		`1|created; "v2"|audit|2024-01-02 03:04:05.000000`,
	}
	if got := contents(t, db); !reflect.DeepEqual(got, wantData) {
		t.Fatalf("contents %q\nwant %q", got, wantData)
	}
	// A second run has nothing to do.
	rep = migrate(t, db, fixture("v3"))
	for _, tr := range rep.Tables {
		if len(tr.Files) != 0 || tr.From != 3 || tr.To != 3 {
			t.Fatalf("second run did something: %+v", tr)
		}
	}
}

func TestUpgradeFromEachVersion(t *testing.T) {
	fresh := mysqltest.Open(t)
	migrate(t, fresh, fixture("v3"))
	wantShape, wantData := shape(t, fresh), contents(t, fresh)
	if len(wantShape) < 10 {
		t.Fatalf("implausible shape of a fresh install: %q", wantShape)
	}

	tests := []struct {
		from      string
		installed map[string]int
		files     map[string][]string
	}{
		{"v1", map[string]int{"users": 1, "events": 1}, map[string][]string{
			"users":  {"users/schema/v2.sql", "users/data/v2.sql", "users/schema/v3.sql"},
			"events": {"events/schema/v2.sql", "events/data/v2.sql", "events/schema/v3.sql", "events/data/v3.sql"},
		}},
		{"v2", map[string]int{"users": 2, "events": 2}, map[string][]string{
			"users":  {"users/schema/v3.sql"},
			"events": {"events/schema/v3.sql", "events/data/v3.sql"},
		}},
	}
	for _, tt := range tests {
		t.Run("from "+tt.from, func(t *testing.T) {
			db := mysqltest.Open(t)
			migrate(t, db, fixture(tt.from))
			if v := versions(t, db); !reflect.DeepEqual(v, tt.installed) {
				t.Fatalf("after installing %s: Versions = %v, want %v", tt.from, v, tt.installed)
			}
			rep := migrate(t, db, fixture("v3"))
			for _, tr := range rep.Tables {
				if tr.To != 3 || tr.From != tt.installed[tr.Table] || !slices.Equal(tr.Files, tt.files[tr.Table]) {
					t.Errorf("report %+v, want from %d to 3 with %q", tr, tt.installed[tr.Table], tt.files[tr.Table])
				}
			}
			if got := shape(t, db); !reflect.DeepEqual(got, wantShape) {
				t.Errorf("upgraded shape\n%s\nwant (fresh install)\n%s", strings.Join(got, "\n"), strings.Join(wantShape, "\n"))
			}
			if got := contents(t, db); !reflect.DeepEqual(got, wantData) {
				t.Errorf("upgraded contents %q\nwant %q", got, wantData)
			}
			if v := versions(t, db); !reflect.DeepEqual(v, map[string]int{"users": 3, "events": 3}) {
				t.Errorf("Versions = %v", v)
			}
		})
	}
}

// failing is v1 of the users table plus a v2 whose second statement fails.
func failing(stmt2 string) fstest.MapFS {
	return fstest.MapFS{
		"users/schema/latest.sql": {Data: []byte("CREATE TABLE users (id INT PRIMARY KEY, a INT, b INT, c INT)")},
		"users/schema/v2.sql": {Data: []byte("ALTER TABLE users ADD COLUMN a INT;\n\n" + stmt2 +
			";\nALTER TABLE users ADD COLUMN c INT;\n")},
	}
}

func TestFailingFileAndRecovery(t *testing.T) {
	ctx := context.Background()
	db := mysqltest.Open(t)
	if _, err := db.Exec("CREATE TABLE users (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := mysqlschema.Force(ctx, db, "users", 1); err != nil {
		t.Fatalf("Force: %v", err)
	}

	bad := failing("ALTER TABLE users ADD COLUMN b INT AFTER no_such_column")
	for run := 1; run <= 2; run++ { // the second run resumes and fails the same way
		_, err := mysqlschema.Migrate(ctx, db, bad)
		if !errors.Is(err, mysqlschema.ErrStatement) {
			t.Fatalf("run %d: error %v, want ErrStatement", run, err)
		}
		for _, part := range []string{"table users", "users/schema/v2.sql statement 2 (line 3)", "no_such_column",
			"statements 1-1 were applied", "dirty at version 1", "fix statement 2"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("run %d: error %q lacks %q", run, err, part)
			}
		}
	}
	if v := versions(t, db); v["users"] != 1 {
		t.Fatalf("version after failure = %d, want 1", v["users"])
	}
	state := mysqltest.QueryStrings(t, db, `SELECT CONCAT_WS('|', version, dirty, file, statements_done, error) FROM schema_versions`)
	if len(state) != 1 || !strings.HasPrefix(state[0], "1|1|users/schema/v2.sql|1|users/schema/v2.sql statement 2 (line 3): ") {
		t.Fatalf("schema_versions = %q", state)
	}
	log := mysqltest.QueryStrings(t, db, `SELECT CONCAT_WS('|', file, first_statement, IFNULL(failed_statement, '-'), IFNULL(ok, 'NULL'))
		FROM schema_log WHERE file <> '(force)' ORDER BY id`)
	if want := []string{"users/schema/v2.sql|1|2|0", "users/schema/v2.sql|2|2|0"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("schema_log = %q, want %q", log, want)
	}

	// Editing a statement that was already applied is refused.
	edited := failing("ALTER TABLE users ADD COLUMN b INT")
	edited["users/schema/v2.sql"].Data = []byte("ALTER TABLE users ADD COLUMN a BIGINT;\nALTER TABLE users ADD COLUMN b INT;\n")
	_, err := mysqlschema.Migrate(ctx, db, edited)
	if !errors.Is(err, mysqlschema.ErrDirty) {
		t.Fatalf("error %v, want ErrDirty", err)
	}
	for _, part := range []string{"table users", "stopped in users/schema/v2.sql after statement 1", "no_such_column",
		"statements 1-1 of users/schema/v2.sql were changed", `Force(ctx, db, "users", version)`} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}

	// Fixing the failed statement resumes after the last one that succeeded.
	rep := migrate(t, db, failing("ALTER TABLE users ADD COLUMN b INT AFTER a"))
	if want := []mysqlschema.TableReport{{Table: "users", From: 1, To: 2, Files: []string{"users/schema/v2.sql"}}}; !reflect.DeepEqual(rep.Tables, want) {
		t.Fatalf("report %+v, want %+v", rep.Tables, want)
	}
	cols := mysqltest.QueryStrings(t, db, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = 'users' ORDER BY ordinal_position`)
	if want := []string{"id", "a", "b", "c"}; !reflect.DeepEqual(cols, want) {
		t.Fatalf("columns %q, want %q", cols, want)
	}
	state = mysqltest.QueryStrings(t, db, `SELECT CONCAT_WS('|', version, dirty, file, statements_done, IFNULL(error, 'NULL')) FROM schema_versions`)
	if want := []string{"2|0||0|NULL"}; !reflect.DeepEqual(state, want) {
		t.Fatalf("schema_versions = %q, want %q", state, want)
	}
	last := mysqltest.QueryStrings(t, db, `SELECT CONCAT_WS('|', first_statement, ok) FROM schema_log ORDER BY id DESC LIMIT 1`)
	if want := []string{"2|1"}; !reflect.DeepEqual(last, want) {
		t.Fatalf("last log row %q, want %q (resumed at statement 2)", last, want)
	}
}

func TestDirtyFirstInstallAndForce(t *testing.T) {
	ctx := context.Background()
	db := mysqltest.Open(t)
	fsys := fstest.MapFS{"t1/schema/latest.sql": {Data: []byte("CREATE TABLE t1 (id INT);\nCREATE INDEX i ON t1 (nope);")}}
	if _, err := mysqlschema.Migrate(ctx, db, fsys); !errors.Is(err, mysqlschema.ErrStatement) {
		t.Fatalf("error %v, want ErrStatement", err)
	}
	fsys["t1/schema/latest.sql"].Data = []byte("CREATE TABLE t1 (id BIGINT);\nCREATE INDEX i ON t1 (id);")
	_, err := mysqlschema.Migrate(ctx, db, fsys)
	if !errors.Is(err, mysqlschema.ErrDirty) || !strings.Contains(err.Error(), "drop the table, DELETE FROM schema_versions WHERE table_name = 't1'") {
		t.Fatalf("error %v, want ErrDirty telling to drop the table", err)
	}
	// The operator repairs by hand and records the version.
	if _, err := db.Exec("ALTER TABLE t1 MODIFY id BIGINT, ADD INDEX i (id)"); err != nil {
		t.Fatal(err)
	}
	if err := mysqlschema.Force(ctx, db, "t1", 1); err != nil {
		t.Fatalf("Force: %v", err)
	}
	rep := migrate(t, db, fsys)
	if len(rep.Tables) != 1 || len(rep.Tables[0].Files) != 0 || rep.Tables[0].To != 1 {
		t.Fatalf("report after Force %+v, want nothing to do", rep.Tables)
	}
	for _, tt := range []struct {
		table   string
		version int
		err     string
	}{
		{"t1", 0, "version 0 must be at least 1"},
		{"bad name", 1, `table name "bad name" must be`},
	} {
		if err := mysqlschema.Force(ctx, db, tt.table, tt.version); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Force(%q, %d) = %v, want %q", tt.table, tt.version, err, tt.err)
		}
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()

	t.Run("unmanaged table", func(t *testing.T) {
		db := mysqltest.Open(t)
		if _, err := db.Exec("CREATE TABLE events (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		_, err := mysqlschema.Migrate(ctx, db, fixture("v3"))
		if !errors.Is(err, mysqlschema.ErrUnmanaged) || !strings.Contains(err.Error(), `table events exists but schema_versions has no row for it`) {
			t.Fatalf("error %v, want ErrUnmanaged", err)
		}
		// Adopting it as version 1 upgrades it.
		if err := mysqlschema.Force(ctx, db, "events", 1); err != nil {
			t.Fatal(err)
		}
		migrate(t, db, fixture("v3"))
		if v := versions(t, db); v["events"] != 3 {
			t.Fatalf("events at %d, want 3", v["events"])
		}
	})

	t.Run("database newer than files", func(t *testing.T) {
		db := mysqltest.Open(t)
		migrate(t, db, fixture("v3"))
		_, err := mysqlschema.Migrate(ctx, db, fixture("v1"))
		if !errors.Is(err, mysqlschema.ErrNewer) || !strings.Contains(err.Error(), "table events is at version 3 but the files only go to 1") {
			t.Fatalf("error %v, want ErrNewer", err)
		}
	})

	t.Run("lock held", func(t *testing.T) {
		db := mysqltest.Open(t)
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var name string
		if err := conn.QueryRowContext(ctx, "SELECT CONCAT('mysqlschema:', DATABASE())").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "DO GET_LOCK(?, 0)", name); err != nil {
			t.Fatal(err)
		}
		_, err = mysqlschema.Migrate(ctx, db, fixture("v1"), mysqlschema.WithLockTimeout(0))
		if !errors.Is(err, mysqlschema.ErrLocked) || !strings.Contains(err.Error(), name) {
			t.Fatalf("error %v, want ErrLocked naming %s", err, name)
		}
		if _, err := conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", name); err != nil {
			t.Fatal(err)
		}
		migrate(t, db, fixture("v1"), mysqlschema.WithLockTimeout(0))
	})
}

func TestConcurrentRunners(t *testing.T) {
	db := mysqltest.Open(t)
	const runners = 3
	var wg sync.WaitGroup
	errs := make([]error, runners)
	for i := range runners {
		wg.Go(func() {
			_, errs[i] = mysqlschema.Migrate(context.Background(), db, fixture("v3"))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v", i, err)
		}
	}
	log := mysqltest.QueryStrings(t, db, `SELECT CONCAT(file, ' x', COUNT(*), ' ok=', SUM(ok)) FROM schema_log GROUP BY file ORDER BY file`)
	want := []string{
		"events/data/v2.sql x1 ok=1", "events/data/v3.sql x1 ok=1", "events/schema/latest.sql x1 ok=1",
		"users/data/v1.sql x1 ok=1", "users/data/v2.sql x1 ok=1", "users/schema/latest.sql x1 ok=1",
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("schema_log %q\nwant %q", log, want)
	}
	if n := mysqltest.QueryStrings(t, db, "SELECT CAST(COUNT(*) AS CHAR) FROM users"); n[0] != "3" {
		t.Fatalf("users has %s rows, want 3 (data applied once)", n[0])
	}
}

func TestBadLayouts(t *testing.T) {
	ok := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name  string
		fsys  fstest.MapFS
		want  []string
		isErr error
	}{
		{"empty", fstest.MapFS{}, []string{"no table directories found"}, mysqlschema.ErrLayout},
		{"missing latest", fstest.MapFS{"t/schema/v2.sql": ok("SELECT 1")},
			[]string{"t/schema/latest.sql missing"}, mysqlschema.ErrLayout},
		{"gap", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/schema/v2.sql": ok(""), "t/schema/v4.sql": ok(""), "t/schema/v6.sql": ok("")},
			[]string{"t/schema: v3, v5 missing: versions must not have gaps (found v2, v4, v6)"}, mysqlschema.ErrLayout},
		{"data without schema", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/schema/v2.sql": ok(""), "t/data/v3.sql": ok("")},
			[]string{"t/data/v3.sql has no schema version 3 (newest is 2)"}, mysqlschema.ErrLayout},
		{"data v2 of a version-1 table", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/data/v2.sql": ok("")},
			[]string{"t/data/v2.sql has no schema version 2 (newest is 1)"}, mysqlschema.ErrLayout},
		{"leading zero", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/schema/v02.sql": ok("")},
			[]string{"t/schema/v02.sql: unexpected file name (want latest.sql or v<N>.sql"}, mysqlschema.ErrLayout},
		{"v0", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/data/v0.sql": ok("")},
			[]string{"t/data/v0.sql: unexpected file name (want v<N>.sql"}, mysqlschema.ErrLayout},
		{"stray sql", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/init.sql": ok(""), "x.sql": ok("")},
			[]string{"t/init.sql: SQL file outside schema/ or data/", "x.sql: SQL file outside a table directory"}, mysqlschema.ErrLayout},
		{"unexpected directory", fstest.MapFS{"t/schema/latest.sql": ok(""), "t/migrations/a.sql": ok("")},
			[]string{"t/migrations: unexpected directory"}, mysqlschema.ErrLayout},
		{"reserved name", fstest.MapFS{"schema_log/schema/latest.sql": ok("")},
			[]string{"schema_log: name reserved"}, mysqlschema.ErrLayout},
		{"bad table name", fstest.MapFS{"my-table/schema/latest.sql": ok("")},
			[]string{"my-table: table name must be"}, mysqlschema.ErrLayout},
		{"unterminated quote", fstest.MapFS{"t/schema/latest.sql": ok("CREATE TABLE t (a INT);\nINSERT INTO t VALUES ('x);")},
			[]string{"t/schema/latest.sql: mysqlschema: syntax: line 2: unterminated ' quote"}, mysqlschema.ErrSyntax},
		{"all problems at once", fstest.MapFS{"a/schema/v3.sql": ok(""), "b/data/v1.sql": ok("/*")},
			[]string{"a/schema/latest.sql missing", "a/schema: v2 missing", "b/schema/latest.sql missing", "b/data/v1.sql: mysqlschema: syntax: line 1: unterminated /* comment"}, mysqlschema.ErrLayout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A nil *sql.DB: the layout is checked before the database is used.
			rep, err := mysqlschema.Migrate(context.Background(), nil, tt.fsys)
			if err == nil || rep != nil {
				t.Fatalf("Migrate = %v, %v; want an error", rep, err)
			}
			if !errors.Is(err, tt.isErr) {
				t.Errorf("error %v is not %v", err, tt.isErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestLogger(t *testing.T) {
	db := mysqltest.Open(t)
	var buf strings.Builder
	migrate(t, db, fixture("v1"), mysqlschema.WithLogger(newTextLogger(&buf)))
	for _, want := range []string{"file=users/schema/latest.sql", "file=users/data/v1.sql", "file=events/schema/latest.sql"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
