// Package selfstat samples the agent's own process for the type-7 self
// report: CPU and memory use, threads, goroutines, start time, heap in use
// and GC pause quantiles.
//
// CPU % is measured over the interval between two samples (the first Sample
// covers the time since New), as the difference of process CPU time divided
// by wall time, in percent of one core: a process keeping two cores busy
// reports 200. On Linux the process figures come from /proc/<pid>/stat (one
// small read per sample); elsewhere from gopsutil.
//
// Goroutines, heap and GC figures describe the calling process; pid is meant
// to be the agent's own (0 means os.Getpid()).
//
// A Sampler is not safe for concurrent use: one owner (the self-report loop)
// calls Sample.
package selfstat

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Sample is one reading of the process.
type Sample struct {
	// Time is when the sample was taken.
	Time time.Time
	// CPUPercent is the CPU used since the previous sample, in percent of
	// one core.
	CPUPercent float64
	// RSS is the resident set size in bytes.
	RSS uint64
	// MemPercent is RSS in percent of the machine's total memory.
	MemPercent float64
	// Threads is the number of OS threads.
	Threads int
	// Goroutines is runtime.NumGoroutine().
	Goroutines int
	// StartTime is when the process started, unix seconds.
	StartTime int64
	// HeapInuse is the bytes in in-use heap spans (MemStats.HeapInuse).
	HeapInuse uint64
	// GCPause holds the 0, 25, 50, 75 and 100th percentiles of the recent
	// GC pauses (up to the last 256), in seconds; zeros before the first GC.
	GCPause [5]float64
}

// GCPauseKeys are the protocol's keys for Sample.GCPause, in order.
var GCPauseKeys = [5]string{"0", "25", "50", "75", "100"}

// Options tune a Sampler; the zero value is right for production.
type Options struct {
	// ProcRoot is where procfs is mounted (Linux; default /proc).
	ProcRoot string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// procStat is what the OS-specific code reads about the process.
type procStat struct {
	cpu       time.Duration // user + system CPU time consumed
	rss       uint64
	threads   int
	startUnix int64
}

// Sampler takes samples of one process.
type Sampler struct {
	pid  int
	now  func() time.Time
	os   osSampler
	last procStat
	at   time.Time
	err  error // from the baseline reading, reported by the first Sample
	ms   []metrics.Sample
}

// New returns a Sampler of the process pid (0 = this process) and takes the
// baseline reading the first Sample's CPU % is measured against.
func New(pid int) *Sampler { return NewWithOptions(pid, Options{}) }

// NewWithOptions is New with explicit options.
func NewWithOptions(pid int, o Options) *Sampler {
	if pid == 0 {
		pid = os.Getpid()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sampler{
		pid: pid,
		now: o.Now,
		os:  newOSSampler(pid, o),
		ms: []metrics.Sample{
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"},
		},
	}
	s.at = s.now()
	s.last, s.err = s.os.read()
	return s
}

// Sample reads the process now.
func (s *Sampler) Sample() (Sample, error) {
	if s.err != nil {
		// Retry the baseline; a transient failure must not stick.
		s.at = s.now()
		if s.last, s.err = s.os.read(); s.err != nil {
			return Sample{}, fmt.Errorf("selfstat pid %d: %w", s.pid, s.err)
		}
	}
	now := s.now()
	st, err := s.os.read()
	if err != nil {
		return Sample{}, fmt.Errorf("selfstat pid %d: %w", s.pid, err)
	}
	out := Sample{
		Time:       now,
		RSS:        st.rss,
		Threads:    st.threads,
		Goroutines: runtime.NumGoroutine(),
		StartTime:  st.startUnix,
	}
	if wall := now.Sub(s.at); wall > 0 && st.cpu >= s.last.cpu {
		out.CPUPercent = 100 * float64(st.cpu-s.last.cpu) / float64(wall)
	}
	if total := s.os.totalMemory(); total > 0 {
		out.MemPercent = 100 * float64(st.rss) / float64(total)
	}
	s.last, s.at = st, now

	metrics.Read(s.ms)
	for _, m := range s.ms {
		if m.Value.Kind() == metrics.KindUint64 {
			out.HeapInuse += m.Value.Uint64()
		}
	}
	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&gc)
	for i, q := range gc.PauseQuantiles {
		out.GCPause[i] = q.Seconds()
	}
	return out, nil
}
