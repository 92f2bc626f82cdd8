//go:build unix

package runner

import (
	"errors"
	"log/slog"
	"syscall"
	"time"
)

// killTree ends the task's process tree: SIGTERM (and SIGCONT, so stopped
// processes see it) to the process group and to every other member found
// (see members), then, after grace, SIGKILL until no member is left.
func (pr *proc) killTree(grace time.Duration, log *slog.Logger) {
	pr.signalAll(syscall.SIGTERM, log)
	pr.signalAll(syscall.SIGCONT, log)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !pr.alive() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A fork bomb may add members between rounds: go on until none is left,
	// for a bounded number of rounds.
	for range 200 {
		if pr.signalAll(syscall.SIGKILL, log) == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.Warn("exec: processes of a killed task survive", "pid", pr.pgid, "left", pr.members())
}

// signalAll sends sig to the process group and each member; it returns how
// many live processes it found.
func (pr *proc) signalAll(sig syscall.Signal, log *slog.Logger) int {
	n := 0
	if pr.markerOnly {
		// pgid names another process's group now.
	} else if err := syscall.Kill(-pr.pgid, sig); err == nil {
		n++
	} else if !errors.Is(err, syscall.ESRCH) {
		log.Warn("exec: signal process group", "pgid", pr.pgid, "signal", sig, "err", err)
	}
	members := pr.members()
	for _, pid := range members {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			log.Warn("exec: signal process", "pid", pid, "signal", sig, "err", err)
		}
	}
	if canList {
		return len(members)
	}
	return n
}

// alive reports whether any process of the tree is left.
func (pr *proc) alive() bool {
	if canList {
		return len(pr.members()) > 0
	}
	return syscall.Kill(-pr.pgid, 0) == nil
}
