package collect

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUsage measures one usage sample on the live host; cpu-ns/op is
// the CPU time it costs (budget: 5 ms).
func BenchmarkUsage(b *testing.B) {
	c := New(Options{})
	ctx := context.Background()
	c.Usage(ctx)
	start := cpuTime(b)
	for b.Loop() {
		c.Usage(ctx)
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkProcessList measures a process-list request on the live host
// with a fresh snapshot each time: the /proc walk with every fd and the
// listening sockets (budget: 100 ms). Unlimited qps: a back-to-back loop
// would only measure the token bucket's refill.
func BenchmarkProcessList(b *testing.B) {
	c := New(Options{ShareWindow: -1})
	ctx := context.Background()
	n := 0
	start := cpuTime(b)
	for b.Loop() {
		ps, _ := c.Processes(ctx, 0)
		n = len(ps)
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(n), "procs")
}

// BenchmarkConnections measures a connection-list request (walk + tables).
func BenchmarkConnections(b *testing.B) {
	c := New(Options{ShareWindow: -1})
	ctx := context.Background()
	for b.Loop() {
		c.Connections(ctx, nil)
	}
}
