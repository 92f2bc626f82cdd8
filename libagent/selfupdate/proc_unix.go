//go:build !windows

package selfupdate

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// stopProcess ends pid: SIGTERM, then SIGKILL after 5 s.
func stopProcess(pid int) {
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// startDetached starts exe in a session of its own (it outlives its
// parent and is not in its process group), output to out (discarded when
// nil), and does not wait for it.
func startDetached(exe string, args []string, dir string, out *os.File) error {
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// startWatchdog starts the watchdog command (prev and args). Under
// systemd (INVOCATION_ID set) it runs in a transient unit of its own
// through systemd-run, because the service's cgroup is killed when the
// agent exits; elsewhere it is a process in a session of its own.
func startWatchdog(prev string, args []string, name string, log *os.File) error {
	if os.Getenv("INVOCATION_ID") != "" {
		if run, err := exec.LookPath("systemd-run"); err == nil {
			unit := fmt.Sprintf("%s-upgrade-watchdog-%d", name, time.Now().Unix())
			return startDetached(run, append([]string{"--quiet", "--collect", "--unit", unit, prev}, args...), "/", log)
		}
	}
	return startDetached(prev, args, "/", log)
}

// Managed reports whether the agent runs under a service manager: systemd
// (INVOCATION_ID), or a daemon whose parent is init (SysV, OpenRC).
func Managed() bool {
	return os.Getenv("INVOCATION_ID") != "" || os.Getppid() == 1
}

// Exec replaces the process with exe (same pid, arguments and
// environment): the restart of RestartExec.
func Exec(exe string) error {
	return syscall.Exec(exe, os.Args, os.Environ())
}
