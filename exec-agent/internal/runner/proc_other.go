//go:build unix && !linux

package runner

// canList: without procfs only the process group is signalled.
const canList = false

func (pr *proc) members() []int { return nil }
