//go:build unix && !linux

package runner

// canList: without procfs only the process group is signalled.
const canList = false

func (pr *proc) members() []int { return nil }

// pending: the bytes waiting unread are not known here; the drain rule then
// goes by the time of the last read only.
func (pr *proc) pending() int { return 0 }
