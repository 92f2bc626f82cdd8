//go:build !linux

package collect

import (
	"context"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/agentfleet/libagent/protocol"
)

type snapshot struct {
	at      time.Time
	procs   []protocol.HMProcess
	times   map[int32]procTimes
	conns   []net.ConnectionStat
	partial bool // the walk stopped early (its caller's context)
}

type procTimes struct {
	created int64   // ms since the epoch
	cpu     float64 // seconds
}

func (c *Collector) takeSnapshot(ctx context.Context, lim limiter, prev *snapshot, w *warns) *snapshot {
	s := &snapshot{at: c.now(), times: make(map[int32]procTimes)}
	var total uint64
	if v, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		total = v.Total
	}
	var err error
	if s.conns, err = net.ConnectionsWithContext(ctx, "all"); err != nil {
		w.add("conns", err)
	}
	byPid := make(map[int32][]net.ConnectionStat)
	for _, cn := range s.conns {
		byPid[cn.Pid] = append(byPid[cn.Pid], cn)
	}
	procs, err := process.ProcessesWithContext(ctx)
	if err != nil {
		w.add("process", err)
		return s
	}
	var nErr int
	var firstErr error
	for _, p := range procs {
		if err := lim.Wait(ctx); err != nil {
			w.addf("process", "walk stopped after %d of %d processes: %w", len(s.procs), len(procs), err)
			s.partial = true
			break
		}
		h := protocol.HMProcess{ID: p.Pid}
		h.ParentID, _ = p.PpidWithContext(ctx)
		h.User, _ = p.UsernameWithContext(ctx)
		if m, err := p.MemoryInfoWithContext(ctx); err == nil {
			h.RSS, h.VMS, h.Swap = m.RSS, m.VMS, m.Swap
			if total > 0 {
				h.MemoryUsage = pct(float64(m.RSS), float64(total))
			}
		} else {
			nErr++
			firstErr = cmpErr(firstErr, err)
		}
		h.Cmd, _ = p.CmdlineSliceWithContext(ctx)
		if len(h.Cmd) == 0 {
			if name, err := p.NameWithContext(ctx); err == nil {
				h.Cmd = []string{name}
			}
		}
		created, _ := p.CreateTimeWithContext(ctx)
		if t, err := p.TimesWithContext(ctx); err == nil {
			pt := procTimes{created: created, cpu: t.User + t.System}
			s.times[p.Pid] = pt
			var old procTimes
			ok := false
			if prev != nil {
				old, ok = prev.times[p.Pid]
			}
			if ok && old.created == created && s.at.After(prev.at) {
				h.CPUUsage = protocol.F2(max(pt.cpu-old.cpu, 0) / s.at.Sub(prev.at).Seconds() * 100)
			} else if created > 0 {
				if life := s.at.Sub(time.UnixMilli(created)).Seconds(); life > 0 {
					h.CPUUsage = protocol.F2(pt.cpu / life * 100)
				}
			}
		}
		for _, cn := range byPid[p.Pid] {
			h.Conns++
			if cn.Status == "LISTEN" && !containsPort(h.Listen, cn.Laddr.Port) {
				h.Listen = append(h.Listen, cn.Laddr.Port)
			}
		}
		slices.Sort(h.Listen)
		s.procs = append(s.procs, h)
	}
	errorsCount("process.mem", nErr, firstErr, w)
	return s
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

func containsPort(ps []uint32, p uint32) bool {
	return slices.Contains(ps, p)
}

func (c *Collector) processList(s *snapshot, top int, _ *warns) []protocol.HMProcess {
	return rank(slices.Clone(s.procs), top)
}

func (c *Collector) connList(s *snapshot, kinds int, _ *warns) []protocol.HMConnection {
	var out []protocol.HMConnection
	for _, cn := range s.conns {
		k := connKind(cn)
		if k < 0 || kinds&(1<<k) == 0 {
			continue
		}
		h := protocol.HMConnection{FD: cn.Fd, Pid: cn.Pid, Type: connTypes[k], Status: cn.Status}
		if h.Status == "NONE" {
			h.Status = ""
		}
		if k == 4 {
			h.Local, h.Remote = cn.Laddr.IP, cn.Raddr.IP
		} else {
			h.Local, h.Remote = gopsAddr(cn.Laddr, false), gopsAddr(cn.Raddr, true)
		}
		out = append(out, h)
	}
	return out
}

// connKind maps a gopsutil connection to the bit position of its kind, -1
// when unknown.
func connKind(cn net.ConnectionStat) int {
	switch cn.Family {
	case syscall.AF_UNIX:
		return 4
	case syscall.AF_INET:
		if cn.Type == syscall.SOCK_DGRAM {
			return 2
		}
		return 0
	case syscall.AF_INET6:
		if cn.Type == syscall.SOCK_DGRAM {
			return 3
		}
		return 1
	}
	return -1
}

func gopsAddr(a net.Addr, remote bool) string {
	ip, err := netip.ParseAddr(a.IP)
	if err != nil {
		return a.IP
	}
	return formatAddr(netip.AddrPortFrom(ip.Unmap(), uint16(a.Port)), remote)
}
