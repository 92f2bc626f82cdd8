package runner

import (
	"fmt"
	"log/slog"
)

// startShell: the agent has no ConPTY support yet, so interactive sessions
// are refused on Windows with a message saying so.
func (r *Runner) startShell(ShellSpec) (*proc, error) {
	return nil, fmt.Errorf("%w on windows: this agent has no ConPTY support yet", ErrShellUnsupported)
}

func (pr *proc) resize(uint16, uint16) error { return ErrShellUnsupported }

func (pr *proc) hangup(*slog.Logger) {}
