//go:build unix

package daemon

import (
	"os"
	"syscall"
)

// notifySignals are the signals Run subscribes to.
var notifySignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// stopSignals stop the supervisor; others are forwarded to the worker.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM}

// stopSignal is sent to the worker when the context is cancelled.
var stopSignal os.Signal = syscall.SIGTERM

// terminate asks the worker to exit.
func terminate(p *os.Process, sig os.Signal) error { return p.Signal(sig) }

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
