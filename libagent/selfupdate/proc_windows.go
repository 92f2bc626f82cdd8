package selfupdate

import (
	"os"
	"os/exec"
	"syscall"

	ks "github.com/kardianos/service"
)

// Process creation flags (winbase.h).
const (
	detachedProcess        = 0x00000008
	createNewProcessGroup  = 0x00000200
	createBreakawayFromJob = 0x01000000
)

// stopProcess ends pid (TerminateProcess: Windows has no SIGTERM for a
// service process; the SCM sees the exit and applies its recovery actions).
func stopProcess(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// startDetached starts exe detached from the caller's console and job, so
// that it outlives the service process.
func startDetached(exe string, args []string, dir string, out *os.File) error {
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: detachedProcess | createNewProcessGroup | createBreakawayFromJob}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// startWatchdog starts the watchdog command detached (untested on
// Windows: see docs/upgrade.md).
func startWatchdog(prev string, args []string, _ string, log *os.File) error {
	return startDetached(prev, args, os.TempDir(), log)
}

// Managed reports whether the agent runs under the SCM.
func Managed() bool { return !ks.Interactive() }

// Exec starts exe as a new process with the same arguments; the caller
// exits next (Windows has no exec).
func Exec(exe string) error {
	return startDetached(exe, os.Args[1:], "", nil)
}
