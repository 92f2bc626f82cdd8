package collect

import (
	"context"
	"os"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

type usageState struct {
	at    time.Time
	cpu   cpuTimes
	disks map[string]diskStat // by kernel name; nil before the first sample
}

func (c *Collector) usageSample(_ context.Context, w *warns) protocol.HMUsage {
	var u protocol.HMUsage
	now := c.now()
	prev := c.usage
	next := usageState{at: now}

	if b, err := os.ReadFile(c.proc("stat")); err != nil {
		w.add("usage.cpu.usage", err)
	} else if t, _, err := parseStat(b); err != nil {
		w.add("usage.cpu.usage", err)
	} else {
		if prev.cpu.Total == 0 {
			u.CPU.Usage = busyPercent(cpuTimes{}, t) // since boot
		} else {
			u.CPU.Usage = busyPercent(prev.cpu, t)
		}
		next.cpu = t
	}
	if b, err := os.ReadFile(c.proc("loadavg")); err != nil {
		w.add("usage.cpu.load", err)
	} else if l, err := parseLoadavg(b); err != nil {
		w.add("usage.cpu.load", err)
	} else {
		u.CPU.Load1, u.CPU.Load5, u.CPU.Load15 = protocol.F2(l[0]), protocol.F2(l[1]), protocol.F2(l[2])
	}

	if b, err := os.ReadFile(c.proc("meminfo")); err != nil {
		w.add("usage.mem", err)
	} else if m, err := parseMeminfo(b); err != nil {
		w.add("usage.mem", err)
	} else {
		fillMemory(&u.Memory, m)
	}

	next.disks = c.usageParts(&u, prev, now, w)

	if b, err := os.ReadFile(c.proc("net", "dev")); err != nil {
		w.add("usage.intferface", err)
	} else if u.Interface, err = parseNetDev(b); err != nil {
		w.add("usage.intferface", err)
	}
	c.usage = next
	return u
}

// fillMemory derives the memory figures from /proc/meminfo: used is what is
// not available (free(1) of procps 4); before Linux 3.14 there is no
// MemAvailable and free + buffers + page cache stands for it.
func fillMemory(mem *protocol.HMUsageMemory, m map[string]uint64) {
	total := m["MemTotal"]
	avail, ok := m["MemAvailable"]
	if !ok {
		avail = m["MemFree"] + m["Buffers"] + m["Cached"]
	}
	avail = min(avail, total)
	mem.Free, mem.Available = m["MemFree"], avail
	mem.Used = total - avail
	mem.Usage = pct(float64(mem.Used), float64(total))
	stotal, sfree := m["SwapTotal"], m["SwapFree"]
	mem.SwapFree = sfree
	mem.SwapUsed = stotal - min(sfree, stotal)
}

// usageParts fills the partitions and returns the disk counters for the next
// sample.
func (c *Collector) usageParts(u *protocol.HMUsage, prev usageState, now time.Time, w *warns) map[string]diskStat {
	ms, err := c.mounts()
	if err != nil {
		w.add("usage.parts", err)
		return prev.disks
	}
	var ix *devIndex
	var cur map[string]diskStat
	if b, err := os.ReadFile(c.proc("diskstats")); err != nil {
		w.add("usage.parts.io", err)
	} else if stats, err := parseDiskstats(b); err != nil {
		w.add("usage.parts.io", err)
	} else {
		ix = c.newDevIndex(stats)
		cur = make(map[string]diskStat, len(stats))
		for _, s := range stats {
			cur[s.Name] = s
		}
	}
	elapsed := now.Sub(prev.at)
	for _, m := range ms {
		p := protocol.HMUsagePart{Name: m.Point}
		if st, err := c.statfs(m.Point); err != nil {
			w.add("usage.parts."+m.Point, err)
		} else {
			partUsage(&p, st)
		}
		if ix != nil {
			if dev := c.resolve(ix, m); dev != "" {
				s := cur[dev]
				p.IOPSInProgress = s.IOsInProgress
				if old, ok := prev.disks[dev]; ok {
					p.ReadPerSecond = protocol.F2(perSecond(old.SectorsRead, s.SectorsRead, elapsed) * 512)
					p.WritePerSecond = protocol.F2(perSecond(old.SectorsWrite, s.SectorsWrite, elapsed) * 512)
				}
			}
		}
		u.Partitions = append(u.Partitions, p)
	}
	return cur
}
