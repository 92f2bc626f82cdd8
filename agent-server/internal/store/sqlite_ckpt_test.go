package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// TestSQLiteCheckpointOffWritePath: the writer connection checkpoints only
// past the backstop, and the checkpointer copies the WAL into the database
// on its own connection after writes; what was written survives a reopen.
func TestSQLiteCheckpointOffWritePath(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteTestConfig(t)
	st, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*sqlStore)
	var pages int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != ckptBackstop {
		t.Fatalf("writer wal_autocheckpoint = %d, want %d", pages, ckptBackstop)
	}
	const n = 300 // a few pages each: past SQLite's default of 1,000 pages
	for i := range n {
		if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "ops", Action: "POST /api/exec/{id}/run", Target: "a1", Result: "ok", Status: 200 + i%2}); err != nil {
			t.Fatal(err)
		}
	}
	before := s.ckpt.full.Load()
	wrote := s.ckpt.wrote.Load()
	if wrote < n {
		t.Fatalf("checkpointer told of %d writes, want ≥ %d", wrote, n)
	}
	deadline := time.Now().Add(30 * time.Second) // bounds a hang only
	for s.ckpt.full.Load() == before || s.ckpt.full.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no complete checkpoint within 30 s of the writes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The main database file holds the pages now.
	fi, err := os.Stat(filepath.Join(cfg.DataDir, SQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 100<<10 {
		t.Fatalf("database file %d bytes after the checkpoint: pages not copied", fi.Size())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_ = st.Close() // again: no panic (the stopped checkpointer is not stopped twice)
	st2 := openStore(t, cfg)
	_, total, err := st2.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if total != n {
		t.Fatalf("after reopen: %d audit entries, want %d", total, n)
	}
}

// TestSQLiteCheckpointerSleepsWhenIdle: with nothing written since its last
// complete checkpoint the checkpointer sleeps (no timer wakes it), and the
// next write wakes it for the next checkpoint.
func TestSQLiteCheckpointerSleepsWhenIdle(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, sqliteTestConfig(t)).(*sqlStore)
	// Opening wrote the schema: checkpointed within ckptIdle, then asleep.
	eventually.True(t, "asleep after the opening writes", s.ckpt.idle.Load)
	before := s.ckpt.full.Load()
	if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "ops", Action: "GET /api/agents", Result: "ok", Status: 200}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "awake after a write", func() bool { return !s.ckpt.idle.Load() || s.ckpt.full.Load() > before })
	eventually.True(t, "the write checkpointed, then asleep again", func() bool { return s.ckpt.full.Load() > before && s.ckpt.idle.Load() })
}
