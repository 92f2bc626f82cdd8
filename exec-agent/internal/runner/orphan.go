package runner

import (
	"errors"
	"time"
)

// Record names a running task's processes for good, so that an agent that
// starts again after its previous process died (kill -9, crash) can find
// what that process left running: see Runner.Reap.
type Record struct {
	TaskID string    `json:"task_id"`
	Pid    int       `json:"pid"`
	Begin  time.Time `json:"begin"`
	// Start is the main process's start time as the OS keeps it (Linux:
	// field 22 of /proc/<pid>/stat, clock ticks since boot) and Boot the
	// boot it belongs to (Linux: /proc/sys/kernel/random/boot_id). With Pid
	// they name the process itself, never a later one that reuses the pid.
	// Zero where the OS does not tell them.
	Start uint64 `json:"start,omitempty"`
	Boot  string `json:"boot,omitempty"`
	// Marker is the task's EXEC_AGENT_TASK value (see the package doc).
	Marker string `json:"marker,omitempty"`
}

// Reaped says what Reap found.
type Reaped int

const (
	// ReapKilled: processes of the task still ran; they were killed. On
	// Windows the OS killed the
	// tree when the previous agent's process ended (the task's job object
	// kills its processes when its last handle closes).
	ReapKilled Reaped = iota
	// ReapGone: nothing of the task ran any more (or the host rebooted);
	// its exit status is unknown and nothing was touched.
	ReapGone
)

func (r Reaped) String() string {
	switch r {
	case ReapKilled:
		return "killed"
	case ReapGone:
		return "gone"
	}
	return "Reaped(?)"
}

// ErrUnverifiable: the OS offers no way to tell whether the pid is still
// the task's process, so Reap touched nothing.
var ErrUnverifiable = errors.New("cannot verify the process identity on this OS")

// Record returns the task's record (Start and Boot where the OS tells them).
func (t *Task) Record() Record {
	rec := Record{TaskID: t.spec.TaskID, Pid: t.pid, Begin: t.start, Marker: t.p.taskMarker()}
	rec.Start, rec.Boot, _ = t.r.identify(t.pid)
	return rec
}

// Reap ends what is left of a task that a previous agent process started
// and returns ReapKilled when it found and killed anything, ReapGone when
// nothing of the task ran any more. The task's processes are found as on
// a kill (see the package doc): when its main process still runs — the
// same pid with the same start time in the same boot — its group,
// session, descendants and the processes carrying its marker; when the
// main process has ended, what is left of its group and session (the pid
// of a group or session is not reused while a member lives) and the
// processes carrying its marker. When the pid names another process now,
// only the marker counts: a reused pid is never signalled. Background
// processes left by a main process that ended while no agent ran are
// killed too: the agent cannot tell such an end from one its own death
// caused (a pty's hangup, a write to its closed pipe).
func (r *Runner) Reap(rec Record) (Reaped, error) { return r.reap(rec) }
