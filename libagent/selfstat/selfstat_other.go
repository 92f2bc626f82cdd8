//go:build !linux

package selfstat

import (
	"context"
	"time"

	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"
)

type osSampler struct {
	pid   int32
	total uint64
}

func newOSSampler(pid int, _ Options) osSampler {
	s := osSampler{pid: int32(pid)}
	if vm, err := mem.VirtualMemoryWithContext(context.Background()); err == nil {
		s.total = vm.Total
	}
	return s
}

func (s osSampler) totalMemory() uint64 { return s.total }

func (s osSampler) read() (procStat, error) {
	ctx := context.Background()
	p, err := process.NewProcessWithContext(ctx, s.pid)
	if err != nil {
		return procStat{}, err
	}
	t, err := p.TimesWithContext(ctx)
	if err != nil {
		return procStat{}, err
	}
	mi, err := p.MemoryInfoWithContext(ctx)
	if err != nil {
		return procStat{}, err
	}
	st := procStat{
		cpu: time.Duration((t.User + t.System) * float64(time.Second)),
		rss: mi.RSS,
	}
	if n, err := p.NumThreadsWithContext(ctx); err == nil {
		st.threads = int(n)
	}
	if ms, err := p.CreateTimeWithContext(ctx); err == nil {
		st.startUnix = ms / 1000
	}
	return st, nil
}
