package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestOpenCreatesAndDropsDatabase(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		db := Open(t)
		if err := db.QueryRowContext(context.Background(), "SELECT DATABASE()").Scan(&name); err != nil {
			t.Fatalf("select database: %v", err)
		}
		if !strings.HasPrefix(name, "test_") {
			t.Fatalf("database name %q, want prefix test_", name)
		}
		// multiStatements and parseTime are on.
		if _, err := db.Exec("CREATE TABLE t (at DATETIME); INSERT INTO t VALUES (NOW())"); err != nil {
			t.Fatalf("multi statement: %v", err)
		}
		var v any
		if err := db.QueryRow("SELECT at FROM t").Scan(&v); err != nil {
			t.Fatalf("select: %v", err)
		}
		if _, ok := v.(interface{ Unix() int64 }); !ok {
			t.Fatalf("DATETIME scanned as %T, want time.Time (parseTime=true)", v)
		}
	})
	if name == "" {
		t.Skip("inner test skipped")
	}
	admin, err := sql.Open("mysql", DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n); err != nil {
		t.Fatalf("count schemata: %v", err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after the test", name)
	}
}

func TestOpenGivesDistinctDatabases(t *testing.T) {
	a, b := Open(t), Open(t)
	var na, nb string
	if err := a.QueryRow("SELECT DATABASE()").Scan(&na); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow("SELECT DATABASE()").Scan(&nb); err != nil {
		t.Fatal(err)
	}
	if na == nb {
		t.Fatalf("two Open calls share database %s", na)
	}
}

// recorder is a testing.TB whose Fatalf/Skipf record the outcome and stop
// the calling goroutine, like the real ones.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	outcome string
	msg     string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.record("fatal", format, args...)
}
func (r *recorder) Skipf(format string, args ...any) {
	r.record("skip", format, args...)
}
func (r *recorder) record(outcome, format string, args ...any) {
	r.mu.Lock()
	r.outcome, r.msg = outcome, fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestUnavailableServer(t *testing.T) {
	tests := []struct {
		name    string
		ci      string
		require string
		want    string
	}{
		{"developer machine skips", "", "", "skip"},
		{"CI fails", "true", "", "fatal"},
		{"REQUIRE_MYSQL fails", "", "1", "fatal"},
		{"CI=false skips", "false", "", "skip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Port 1 on loopback: nothing listens there, the dial is refused at once.
			t.Setenv("TEST_MYSQL_DSN", "root@tcp(127.0.0.1:1)/")
			t.Setenv("CI", tt.ci)
			t.Setenv("REQUIRE_MYSQL", tt.require)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Open(r)
				r.outcome = "returned"
			}()
			<-done
			if r.outcome != tt.want {
				t.Fatalf("outcome %q (%s), want %q", r.outcome, r.msg, tt.want)
			}
			for _, part := range []string{"127.0.0.1:1", "does not answer", "TEST_MYSQL_DSN"} {
				if !strings.Contains(r.msg, part) {
					t.Errorf("message %q lacks %q", r.msg, part)
				}
			}
		})
	}
}

func TestBadDSN(t *testing.T) {
	t.Setenv("TEST_MYSQL_DSN", "not a dsn")
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); DSN(r) }()
	<-done
	if r.outcome != "fatal" || !strings.Contains(r.msg, "not a valid DSN") {
		t.Fatalf("got %s %q, want fatal about an invalid DSN", r.outcome, r.msg)
	}
}
