//go:build !unix

package daemon

import "os"

// notifySignals are the signals Run subscribes to: only the console interrupt
// exists here.
var notifySignals = []os.Signal{os.Interrupt}

// stopSignals stop the supervisor; others are forwarded to the worker.
var stopSignals = []os.Signal{os.Interrupt}

// stopSignal is only used for logging: terminate kills.
var stopSignal = os.Kill

// terminate kills the worker: signals cannot be sent to another process.
func terminate(p *os.Process, _ os.Signal) error { return p.Kill() }

// alive reports whether a process with this pid exists: on Windows
// FindProcess opens the process and fails when there is none.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
