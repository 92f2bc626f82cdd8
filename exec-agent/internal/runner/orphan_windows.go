package runner

// identify: Windows needs no identity. A task's processes live in a job
// object that kills them when its last handle closes, which the death of
// the agent's process does.
func (r *Runner) identify(int) (uint64, string, bool) { return 0, "", false }

func (r *Runner) reap(Record) (Reaped, error) { return ReapKilled, nil }

func (pr *proc) taskMarker() string { return "" }
