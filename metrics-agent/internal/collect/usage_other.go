//go:build !linux

package collect

import (
	"context"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"

	"github.com/agentfleet/libagent/protocol"
)

type usageState struct {
	at    time.Time
	cpu   cpuTimes
	disks map[string]disk.IOCountersStat
}

func (c *Collector) usageSample(ctx context.Context, w *warns) protocol.HMUsage {
	var u protocol.HMUsage
	now := c.now()
	prev := c.usage
	next := usageState{at: now}

	if ts, err := cpu.TimesWithContext(ctx, false); err != nil || len(ts) == 0 {
		w.addf("usage.cpu.usage", "cpu times: %v", err)
	} else {
		t := ts[0]
		idle := t.Idle + t.Iowait
		total := t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
		cur := cpuTimes{Total: uint64(total * clockTicks), Idle: uint64(idle * clockTicks)}
		u.CPU.Usage = busyPercent(prev.cpu, cur)
		next.cpu = cur
	}
	if l, err := loadAvg(ctx); err != nil {
		w.add("usage.cpu.load", err)
	} else {
		u.CPU.Load1, u.CPU.Load5, u.CPU.Load15 = protocol.F2(l[0]), protocol.F2(l[1]), protocol.F2(l[2])
	}
	if v, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		w.add("usage.mem", err)
	} else {
		u.Memory.Free, u.Memory.Available = v.Free, v.Available
		u.Memory.Used = v.Total - min(v.Available, v.Total)
		u.Memory.Usage = pct(float64(u.Memory.Used), float64(v.Total))
	}
	if v, err := mem.SwapMemoryWithContext(ctx); err != nil {
		w.add("usage.mem.swap", err)
	} else {
		u.Memory.SwapFree = v.Free
		u.Memory.SwapUsed = v.Total - min(v.Free, v.Total)
	}

	io, err := disk.IOCountersWithContext(ctx)
	if err != nil {
		w.add("usage.parts.io", err)
	}
	next.disks = io
	elapsed := now.Sub(prev.at)
	if parts, err := disk.PartitionsWithContext(ctx, false); err != nil {
		w.add("usage.parts", err)
	} else {
		for _, p := range parts {
			h := protocol.HMUsagePart{Name: p.Mountpoint}
			if st, err := c.statfs(p.Mountpoint); err != nil {
				w.add("usage.parts."+p.Mountpoint, err)
			} else {
				partUsage(&h, st)
			}
			if s, ok := ioOf(io, p.Device); ok {
				h.IOPSInProgress = s.IopsInProgress
				if old, ok := ioOf(prev.disks, p.Device); ok {
					h.ReadPerSecond = protocol.F2(perSecond(old.ReadBytes, s.ReadBytes, elapsed))
					h.WritePerSecond = protocol.F2(perSecond(old.WriteBytes, s.WriteBytes, elapsed))
				}
			}
			u.Partitions = append(u.Partitions, h)
		}
	}

	if nics, err := net.IOCountersWithContext(ctx, true); err != nil {
		w.add("usage.intferface", err)
	} else {
		for _, n := range nics {
			u.Interface = append(u.Interface, protocol.HMUsageNetwork{Name: n.Name,
				BytesSent: n.BytesSent, BytesRecv: n.BytesRecv, PacketsSent: n.PacketsSent, PacketsRecv: n.PacketsRecv})
		}
	}
	c.usage = next
	return u
}

// ioOf finds the counters of a partition's device: keyed by drive letter on
// Windows ("C:"), by BSD name on macOS ("disk1s1" for /dev/disk1s1).
func ioOf(io map[string]disk.IOCountersStat, device string) (disk.IOCountersStat, bool) {
	if s, ok := io[device]; ok {
		return s, true
	}
	for _, s := range io {
		if "/dev/"+s.Name == device {
			return s, true
		}
	}
	return disk.IOCountersStat{}, false
}
