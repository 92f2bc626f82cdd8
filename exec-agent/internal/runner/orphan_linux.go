package runner

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// identify returns the start time of pid (clock ticks since boot) and the
// boot id; ok is false when pid does not run (or is a zombie).
func (r *Runner) identify(pid int) (start uint64, boot string, ok bool) {
	b, err := os.ReadFile(filepath.Join(r.opts.ProcRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", false
	}
	start, ok = parseStart(b)
	r.bootOnce.Do(func() {
		if id, err := os.ReadFile(filepath.Join(r.opts.ProcRoot, "sys", "kernel", "random", "boot_id")); err == nil {
			r.bootID = string(bytes.TrimSpace(id))
		}
	})
	return start, r.bootID, ok
}

// parseStart returns field 22 (starttime) of a /proc/<pid>/stat line,
// "pid (comm) state ppid … starttime …", where comm may hold spaces and
// parentheses; ok is false for a zombie or a malformed line.
func parseStart(b []byte) (uint64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): starttime, field 22, is f[19].
	if len(f) < 20 || len(f[0]) == 0 || f[0][0] == 'Z' || f[0][0] == 'X' {
		return 0, false
	}
	st, err := strconv.ParseUint(string(f[19]), 10, 64)
	return st, err == nil
}

func (r *Runner) reap(rec Record) (Reaped, error) {
	if rec.Pid <= 0 {
		return ReapGone, fmt.Errorf("reap task %q: %w: pid %d", rec.TaskID, ErrSpec, rec.Pid)
	}
	if rec.Start == 0 {
		return ReapGone, fmt.Errorf("reap task %q pid %d: %w (no start time recorded)", rec.TaskID, rec.Pid, ErrUnverifiable)
	}
	start, boot, alive := r.identify(rec.Pid)
	if rec.Boot != "" && boot != "" && boot != rec.Boot {
		return ReapGone, nil // the host rebooted: nothing of the task runs
	}
	pr := &proc{pgid: rec.Pid, marker: rec.Marker, procRoot: r.opts.ProcRoot, self: os.Getpid()}
	switch {
	case alive && start == rec.Start:
		// The main process itself: the whole tree goes, as on a kill.
	case alive:
		// The pid names another process now: only what carries the
		// task's marker is the task's.
		if rec.Marker == "" {
			return ReapGone, nil
		}
		pr.markerOnly = true
		fallthrough
	default:
		// The main process is gone (a pty's hangup ends the shell with the
		// agent; a write to the agent's pipe ends it with SIGPIPE), its
		// background processes may not be. A pid stays reserved while it
		// names a live process group or session, so the group and session
		// of a pid that runs no process are still the task's.
		if len(pr.members()) == 0 {
			return ReapGone, nil
		}
	}
	pr.killTree(r.opts.KillGrace, r.log)
	return ReapKilled, nil
}
