package collect

import (
	"context"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// Usage collects the usage category. It never walks processes. The previous
// call's sample is the base of the rates (CPU usage, disk bytes per second);
// see the package doc for the first call.
func (c *Collector) Usage(ctx context.Context) (protocol.HMUsage, []Warning) {
	c.usageMu.Lock()
	defer c.usageMu.Unlock()
	var w warns
	u := c.usageSample(ctx, &w)
	return u, w
}

// pct returns part/whole in percent, 0 when whole is 0.
func pct(part, whole float64) protocol.F2 {
	if whole <= 0 || part < 0 {
		return 0
	}
	return protocol.F2(part / whole * 100)
}

// perSecond returns the growth of a counter per second; 0 without a previous
// sample, a reset counter or elapsed time.
func perSecond(prev, cur uint64, elapsed time.Duration) float64 {
	if cur < prev || elapsed <= 0 {
		return 0
	}
	return float64(cur-prev) / elapsed.Seconds()
}

// busyPercent is the CPU usage between two samples of the "cpu" line.
func busyPercent(prev, cur cpuTimes) protocol.F2 {
	if cur.Total <= prev.Total || cur.Idle < prev.Idle {
		return 0
	}
	total := float64(cur.Total - prev.Total)
	idle := float64(cur.Idle - prev.Idle)
	if idle > total {
		return 0
	}
	return pct(total-idle, total)
}

// partUsage fills the space and inode figures of a partition as df does:
// usage = used / (used + available to users).
func partUsage(p *protocol.HMUsagePart, st FSStat) {
	used := st.Total - min(st.Free, st.Total)
	p.Used, p.Free = used, st.Avail
	p.Usage = pct(float64(used), float64(used+st.Avail))
	if st.Files > 0 {
		p.InodeFree = st.FilesFree
		p.InodeUsed = st.Files - min(st.FilesFree, st.Files)
		p.InodeUsage = pct(float64(p.InodeUsed), float64(st.Files))
	}
}
