package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		is      error
		wantErr string
	}{
		{"unknown driver", Config{Driver: "postgres"}, ErrInvalid, `driver "postgres"`},
		{"sqlite without a place", Config{}, ErrInvalid, "neither DSN nor DataDir"},
		{"sqlite data dir is a file", Config{DataDir: notDir}, nil, "data dir"},
		{"sqlite dir missing", Config{DSN: filepath.Join(notDir, "x", "db")}, nil, "store: sqlite"},
		{"mysql bad DSN", Config{Driver: DriverMySQL, DSN: "no-slash"}, ErrInvalid, "mysql DSN"},
		{"mysql no database", Config{Driver: DriverMySQL, DSN: "root@tcp(127.0.0.1:3306)/"}, ErrInvalid, "names no database"},
		{"mysql unreachable", Config{Driver: DriverMySQL, DSN: "root@tcp(127.0.0.1:1)/x?timeout=1s"}, nil, "store: mysql 127.0.0.1:1/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestSQLiteDefaultPathAndNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, SQLiteFile)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
	// A database written by a newer server is refused, not damaged.
	s, err = Open(ctx, Config{DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	w := s.(*sqlStore).w
	if _, err := w.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, Config{DSN: path})
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Fatalf("newer schema: %v", err)
	}
}

func TestSQLiteWAL(t *testing.T) {
	s := openStore(t, sqliteTestConfig(t))
	var mode string
	if err := s.(*sqlStore).r.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode %q, want wal", mode)
	}
	// Readers are read-only.
	if _, err := s.(*sqlStore).r.ExecContext(context.Background(), "DELETE FROM agents"); err == nil {
		t.Fatal("write through the read pool succeeded")
	}
}

func TestNewTaskIDOrdered(t *testing.T) {
	a, err := newTaskID(time.UnixMilli(1_700_000_000_000))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newTaskID(time.UnixMilli(1_700_000_000_001))
	if len(a) != 20 || a >= b || a[:12] != "018bcfe56800" {
		t.Fatalf("ids %s %s", a, b)
	}
}
