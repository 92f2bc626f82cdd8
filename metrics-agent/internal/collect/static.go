package collect

import (
	"context"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// Static is the static payload plus the facts of the handshake (come) that
// have no place in it.
type Static struct {
	protocol.HMStatic // the hm_static payload (type 31)

	// PhysicalCores is the number of real cores: distinct (package, core)
	// pairs, hyper-threads not counted (come.cpu_core).
	PhysicalCores int `json:"physical_cores,omitempty"`
	// CPUModel is the model of the first CPU (come.cpu).
	CPUModel string `json:"cpu_model,omitempty"`
	// Gateway6 is the IPv6 default gateway. HMStatic.Gateway holds the IPv4
	// one, or the IPv6 one when the host has no IPv4 default route.
	Gateway6 string `json:"gateway6,omitempty"`
}

// Static collects the static host facts. It reads a few dozen small files
// and is meant to run rarely (task.static.interval, default a day).
func (c *Collector) Static(ctx context.Context) (Static, []Warning) {
	var w warns
	s := c.static(ctx, &w)
	s.Time = c.now()
	return s, w
}

// summarizeCPU derives the cpu section from the logical CPUs. cores is the
// position of the logical CPU within its package (0, 1, ...), core the core
// id, physical the package id. Packages and real cores are counted only when
// the topology is known for every CPU (ok).
func summarizeCPU(list []cpuEntry) (cpu protocol.HMCPU, realCores int, ok bool) {
	cpu.Logical = len(list)
	ok = len(list) > 0
	packages := make(map[int]int) // package id → logical CPUs seen so far
	type pc struct{ p, c int }
	coreSet := make(map[pc]struct{})
	for _, e := range list {
		if e.Physical < 0 || e.Core < 0 {
			ok = false
		}
		n := packages[e.Physical]
		packages[e.Physical] = n + 1
		coreSet[pc{e.Physical, e.Core}] = struct{}{}
		cpu.Cores = append(cpu.Cores, protocol.HMCore{
			Processor: int32(e.Processor),
			Model:     e.Model,
			Core:      int32(max(e.Core, 0)),
			Cores:     int32(n),
			Physical:  int32(max(e.Physical, 0)),
			Mhz:       protocol.F2(e.MHz),
		})
	}
	if ok {
		cpu.Physical = len(packages)
		realCores = len(coreSet)
	}
	return cpu, realCores, ok
}

// oldest returns the oldest plausible time (after 1990, not in the future)
// among ts; zero when there is none. File systems without birth times and
// images built with a zero clock report 1970, which is not an install date.
func oldest(now time.Time, ts []time.Time) time.Time {
	floor := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	var best time.Time
	for _, t := range ts {
		if t.Before(floor) || t.After(now) {
			continue
		}
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	return best
}
