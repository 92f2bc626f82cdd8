package selfupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentfleet/libagent/statefile"
)

// Restart modes (basic.upgrade.restart).
const (
	// RestartExit: the agent exits with ExitRestart and its service
	// manager starts the new binary (systemd Restart=always, the SCM's
	// recovery actions, launchd KeepAlive, a supervisor).
	RestartExit = "exit"
	// RestartExec: the agent starts the new binary itself (Unix: exec in
	// place, same pid; Windows: a new process, then exit).
	RestartExec = "exec"
	// RestartAuto: exit under a service manager, exec otherwise.
	RestartAuto = "auto"
)

// ExitRestart is the exit status of an agent that exits to be restarted
// on its new binary (EX_TEMPFAIL).
const ExitRestart = 75

// Plan is an upgrade in flight, written before the restart and read by
// the watchdog and by the new binary. The files live next to the agent's
// state file (base is the state path without its extension):
//
//	<base>.upgrade            pending: the plan
//	<base>.upgrade.confirmed  the new binary stayed up and claimed the plan
//	<base>.upgrade.rolledback the watchdog claimed the plan and rolled back
//	<base>.upgrade.pid        pid of the new binary, once it runs
//
// Exactly one of the new binary (Confirm) and the watchdog (at the
// deadline) renames the pending file: the rename is the decision.
type Plan struct {
	Task     string        `json:"task"`
	From     string        `json:"from"` // version that ran before
	SHA256   string        `json:"sha256"`
	Exe      string        `json:"exe"`
	Prev     string        `json:"prev"`
	Deadline time.Time     `json:"deadline"`
	Stay     time.Duration `json:"stay"`
	Restart  string        `json:"restart"` // exit or exec (resolved)
	PID      int           `json:"pid"`     // the old agent's pid
	Args     []string      `json:"args"`    // its command line, for a restart by the watchdog
	Dir      string        `json:"dir"`
	Reason   string        `json:"reason,omitempty"` // why it was rolled back
}

// Paths of the plan files for a base.
func pendingPath(base string) string    { return base + ".upgrade" }
func confirmedPath(base string) string  { return base + ".upgrade.confirmed" }
func rolledBackPath(base string) string { return base + ".upgrade.rolledback" }
func pidPath(base string) string        { return base + ".upgrade.pid" }

// PlanPath is the pending plan file of base.
func PlanPath(base string) string { return pendingPath(base) }

// ErrClaimed: the plan was already decided by the other side.
var ErrClaimed = errors.New("upgrade already decided")

// WritePlan writes the pending plan (atomically), clearing the files of
// an earlier upgrade.
func WritePlan(base string, p Plan) error {
	for _, f := range []string{confirmedPath(base), rolledBackPath(base), pidPath(base)} {
		_ = os.Remove(f)
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	return statefile.WriteAtomic(pendingPath(base), b, 0o600)
}

// RemovePlan drops a pending plan (the upgrade was undone before the restart).
func RemovePlan(base string) { _ = os.Remove(pendingPath(base)) }

func readPlan(path string) (Plan, error) {
	var p Plan
	b, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("upgrade plan %s: %w", path, err)
	}
	return p, nil
}

// Pending returns the pending plan when there is one, and records pid as
// the new binary's.
func Pending(base string, pid int) (Plan, bool) {
	p, err := readPlan(pendingPath(base))
	if err != nil {
		return Plan{}, false
	}
	_ = statefile.WriteAtomic(pidPath(base), []byte(strconv.Itoa(pid)+"\n"), 0o600)
	return p, true
}

// Confirm claims the pending plan for the new binary. ErrClaimed when the
// watchdog decided first (it is rolling back).
func Confirm(base string) error {
	err := os.Rename(pendingPath(base), confirmedPath(base))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrClaimed
	}
	return err
}

// Outcome returns the plan of the last upgrade and whether it was rolled
// back, once (the record is removed): for the log of the binary that runs
// after it.
func Outcome(base string) (p Plan, rolledBack, ok bool) {
	if p, err := readPlan(rolledBackPath(base)); err == nil {
		_ = os.Remove(rolledBackPath(base))
		_ = os.Remove(pidPath(base))
		return p, true, true
	}
	if p, err := readPlan(confirmedPath(base)); err == nil {
		_ = os.Remove(confirmedPath(base))
		_ = os.Remove(pidPath(base))
		return p, false, true
	}
	return Plan{}, false, false
}

func readPID(base string) int {
	b, err := os.ReadFile(pidPath(base))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
