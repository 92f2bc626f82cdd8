//go:build !linux

package collect

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/agentfleet/libagent/protocol"
)

func (c *Collector) static(ctx context.Context, w *warns) Static {
	var s Static
	s.OS.Name = runtime.GOOS
	if h, err := host.InfoWithContext(ctx); err != nil {
		w.add("static.host", err)
	} else {
		s.Host.Name = h.Hostname
		s.Host.Uptime = time.Duration(h.Uptime) * time.Second
		s.OS.PlatformName, s.OS.PlatformVersion = h.Platform, h.PlatformVersion
		s.OS.Startup = time.Unix(int64(h.BootTime), 0).UTC()
		s.Kernel.Version, s.Kernel.Arch = h.KernelVersion, h.KernelArch
	}
	if t := oldest(c.now(), c.installMarks()); t.IsZero() {
		w.add("static.os.install", fmt.Errorf("no plausible time on the install markers: %w", ErrUnsupported))
	} else {
		s.OS.Install = t
	}

	if infos, err := cpu.InfoWithContext(ctx); err != nil {
		w.add("static.cpu", err)
	} else {
		list := make([]cpuEntry, 0, len(infos))
		for _, in := range infos {
			e := cpuEntry{Processor: int(in.CPU), Model: in.ModelName, MHz: in.Mhz, Physical: -1, Core: -1}
			if v, err := strconv.Atoi(in.PhysicalID); err == nil {
				e.Physical = v
			}
			if v, err := strconv.Atoi(in.CoreID); err == nil {
				e.Core = v
			}
			list = append(list, e)
		}
		s.CPU, s.PhysicalCores, _ = summarizeCPU(list)
		if len(list) > 0 {
			s.CPUModel = list[0].Model
		}
		// gopsutil reports one entry per package on Windows and macOS.
		if n, err := cpu.CountsWithContext(ctx, true); err == nil {
			s.CPU.Logical = n
		}
		if n, err := cpu.CountsWithContext(ctx, false); err == nil {
			s.PhysicalCores = n
		}
		if s.CPU.Physical == 0 {
			s.CPU.Physical = 1
		}
	}

	if v, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		w.add("static.memory.physical", err)
	} else {
		s.Memory.Physical = v.Total
	}
	if v, err := mem.SwapMemoryWithContext(ctx); err != nil {
		w.add("static.memory.swap", err)
	} else {
		s.Memory.Swap = v.Total
	}

	if parts, err := disk.PartitionsWithContext(ctx, false); err != nil {
		w.add("static.parts", err)
	} else {
		for _, p := range parts {
			h := protocol.HMPartition{Mount: p.Mountpoint, FSType: p.Fstype, Opts: p.Opts}
			if st, err := c.statfs(p.Mountpoint); err != nil {
				w.add("static.parts."+p.Mountpoint, err)
			} else {
				h.Total, h.Inodes = st.Total, st.Files
			}
			s.Partitions = append(s.Partitions, h)
		}
	}
	w.addf("static.disks", "disk models: %w", ErrUnsupported)

	c.staticNet(&s, w)
	var err error
	if s.Interface, err = c.interfaces(); err != nil {
		w.add("static.interface", err)
	}
	return s
}

// installMarks are the birth times of files made at installation.
func (c *Collector) installMarks() []time.Time {
	var ts []time.Time
	for _, p := range installPaths(c.roots) {
		if fi, err := os.Stat(p); err == nil {
			ts = append(ts, fi.ModTime())
		}
		if t, err := c.fileTime(p); err == nil {
			ts = append(ts, t)
		}
	}
	return ts
}
