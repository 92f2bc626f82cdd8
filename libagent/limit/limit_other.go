//go:build !linux

package limit

import (
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
)

func apply(c Config, o Options) (Applied, error) {
	a := Applied{Mode: "runtime"}
	if c.CPUQuota > 0 {
		n := int((c.CPUQuota + 99) / 100)
		runtime.GOMAXPROCS(n)
		a.Settings = append(a.Settings, "GOMAXPROCS="+strconv.Itoa(n))
	}
	if c.MemoryLimit > 0 {
		lim := int64(math.MaxInt64)
		if c.MemoryLimit < math.MaxInt64 {
			lim = int64(c.MemoryLimit)
		}
		debug.SetMemoryLimit(lim)
		a.Settings = append(a.Settings, "GOMEMLIMIT="+strconv.FormatInt(lim, 10))
	}
	if len(c.DiskLimit) > 0 {
		o.Logger.Warn("basic.limit.disk_limit is only supported on Linux with cgroups; ignored", "devices", len(c.DiskLimit))
	}
	return a, nil
}
