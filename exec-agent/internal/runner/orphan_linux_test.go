package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// orphan starts `sh -c script` as a task of a dead agent would be left: in
// its own process group, with a marker, not waited for by anyone but the
// test. It returns the shell's record and a channel closed when the shell
// has exited.
func orphan(t *testing.T, r *Runner, script, marker string) (Record, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), markerEnv+"="+marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	start, boot, ok := r.identify(cmd.Process.Pid)
	if !ok || start == 0 || boot == "" {
		t.Fatalf("identify %d: %d %q %v", cmd.Process.Pid, start, boot, ok)
	}
	return Record{TaskID: "t", Pid: cmd.Process.Pid, Start: start, Boot: boot, Marker: marker}, done
}

// groupAlive reports whether any process of group pgid is alive (not a
// zombie).
func groupAlive(pgid int) bool {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(strings.Split(d, "/")[2])
		if st, ok := readStat("/proc", pid); ok && st.pgrp == pgid && !st.zombie {
			return true
		}
	}
	return false
}

func TestReap(t *testing.T) {
	r := New(Options{KillGrace: 200 * time.Millisecond})
	ready := func(dir string) string { return filepath.Join(dir, "ready") }

	t.Run("main process runs: tree killed", func(t *testing.T) {
		dir := t.TempDir()
		rec, _ := orphan(t, r, "sleep 30 & touch "+ready(dir)+"; wait", "m1")
		eventually.True(t, "the child", func() bool { _, err := os.Stat(ready(dir)); return err == nil })
		got, err := r.Reap(rec)
		if err != nil || got != ReapKilled {
			t.Fatalf("Reap = %v, %v; want killed", got, err)
		}
		eventually.True(t, "the group to end", func() bool { return !groupAlive(rec.Pid) })
	})

	t.Run("main process gone, its background process runs: killed", func(t *testing.T) {
		dir := t.TempDir()
		release := filepath.Join(dir, "release")
		rec, exited := orphan(t, r, "sleep 30 & touch "+ready(dir)+"; while [ ! -e "+release+" ]; do sleep 0.01; done", "m2")
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		<-exited
		if !groupAlive(rec.Pid) {
			t.Fatal("the background sleep is gone already")
		}
		got, err := r.Reap(rec)
		if err != nil || got != ReapKilled {
			t.Fatalf("Reap = %v, %v; want killed", got, err)
		}
		eventually.True(t, "the group to end", func() bool { return !groupAlive(rec.Pid) })
	})

	t.Run("pid reused: untouched", func(t *testing.T) {
		rec, _ := orphan(t, r, "sleep 30", "m3")
		stale := rec
		stale.Start--      // the task's process started earlier: this one only has its pid
		stale.Marker = "x" // and none carries its marker
		got, err := r.Reap(stale)
		if err != nil || got != ReapGone {
			t.Fatalf("Reap = %v, %v; want gone", got, err)
		}
		if !groupAlive(rec.Pid) {
			t.Fatal("a process that reuses the pid was killed")
		}
	})

	t.Run("pid reused, the task's process found by its marker", func(t *testing.T) {
		rec, _ := orphan(t, r, "sleep 30", "m4")
		other, _ := orphan(t, r, "sleep 30", "other")
		stale := rec
		stale.Pid, stale.Start = other.Pid, other.Start-1 // the task's pid now names other
		got, err := r.Reap(stale)
		if err != nil || got != ReapKilled {
			t.Fatalf("Reap = %v, %v; want killed", got, err)
		}
		eventually.True(t, "the marked process to end", func() bool { return !groupAlive(rec.Pid) })
		if !groupAlive(other.Pid) {
			t.Fatal("the process that reuses the pid was killed")
		}
	})

	t.Run("another boot: untouched", func(t *testing.T) {
		rec, _ := orphan(t, r, "sleep 30", "m5")
		stale := rec
		stale.Boot = "00000000-0000-0000-0000-000000000000"
		if got, err := r.Reap(stale); err != nil || got != ReapGone {
			t.Fatalf("Reap = %v, %v; want gone", got, err)
		}
		if !groupAlive(rec.Pid) {
			t.Fatal("killed a process of the task's pid after a reboot")
		}
	})

	t.Run("nothing left", func(t *testing.T) {
		// The command waits for the test to have identified it (a "true"
		// could be gone before its start time is read), then exits.
		release := filepath.Join(t.TempDir(), "release")
		rec, exited := orphan(t, r, "while [ ! -e "+release+" ]; do sleep 0.01; done", "m6")
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		<-exited
		if got, err := r.Reap(rec); err != nil || got != ReapGone {
			t.Fatalf("Reap = %v, %v; want gone", got, err)
		}
	})

	t.Run("no start time: refused", func(t *testing.T) {
		if _, err := r.Reap(Record{TaskID: "t", Pid: os.Getpid()}); err == nil {
			t.Fatal("Reap of a record without a start time: no error")
		}
	})
}

func TestParseStart(t *testing.T) {
	for _, c := range []struct {
		line string
		want uint64
		ok   bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 42 1000 10", 42, true},
		{"7 (a) b) (c) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99 1000 10", 99, true},
		{"9 (z) Z 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99 1000 10", 0, false},
		{"9 (short) S 0 1", 0, false},
		{"no parenthesis", 0, false},
		{"9 (x) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 NaN 1000 10", 0, false},
	} {
		got, ok := parseStart([]byte(c.line))
		if got != c.want || ok != c.ok {
			t.Errorf("parseStart(%q) = %d, %v; want %d, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}
