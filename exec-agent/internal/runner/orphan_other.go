//go:build unix && !linux

package runner

import "fmt"

// identify: without procfs the start time of a pid is not read, so a
// process left by a previous agent cannot be told from one that reuses its
// pid.
func (r *Runner) identify(int) (uint64, string, bool) { return 0, "", false }

func (r *Runner) reap(rec Record) (Reaped, error) {
	return ReapGone, fmt.Errorf("reap task %q pid %d: %w", rec.TaskID, rec.Pid, ErrUnverifiable)
}
