package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/lockfile"
)

func testConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.ID = "t"
	cfg.Listen, cfg.ListenAddr = 0, "127.0.0.1"
	cfg.DataDir, cfg.CacheDir, cfg.LogDir = dir, filepath.Join(dir, "cache"), filepath.Join(dir, "logs")
	return cfg
}

func testOptions() Options {
	return Options{Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: 5 * time.Second}
}

// TestClusterOnSQLiteRefused: a cluster configuration on the SQLite store
// does not start, says why, and opens nothing.
func TestClusterOnSQLiteRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(dir)
	cfg.Cluster.Name, cfg.Cluster.NATSURL, cfg.Cluster.Advertise = "c", "nats://127.0.0.1:4222", "http://127.0.0.1:13081"
	s, err := New(context.Background(), cfg, testOptions())
	if err == nil {
		s.Close()
		t.Fatal("a cluster on SQLite started")
	}
	if !errors.Is(err, config.ErrClusterNeedsMySQL) || !strings.Contains(err.Error(), "store.driver: invalid config: a cluster (cluster.* is set) needs store.driver = mysql") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data dir was created: %v", err)
	}
}

// TestDataDirLocked: a second server on a data dir in use does not start
// and names the holder; once the first is gone, the dir is free again.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := New(context.Background(), testConfig(dir), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(context.Background(), testConfig(dir), testOptions())
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("two servers opened one data dir")
	}
	want := "data dir " + dir + " is in use by another agent-server: " + filepath.Join(dir, LockFile) + " is held by pid " + strconv.Itoa(os.Getpid())
	if !errors.Is(err, lockfile.ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	first.Close()
	third, err := New(context.Background(), testConfig(dir), testOptions())
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	third.Close()
}
