package hostmetrics

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agentfleet/libagent/protocol"
)

func TestRecentSampleSize(t *testing.T) {
	if n := unsafe.Sizeof(recentSample{}); n != recentSampleSize {
		t.Fatalf("recentSample is %d bytes, the docs say %d", n, recentSampleSize)
	}
}

// usageAt is a usage report with the given CPU % and eth0 counters.
func usageAt(cpu float64, rx, tx uint64) *protocol.HMUsage {
	u := sampleUsage(0)
	u.CPU.Usage = protocol.F2(cpu)
	u.Interface[0].BytesRecv, u.Interface[0].BytesSent = rx, tx
	return u
}

func ptr(v float64) *float64 { return &v }

func floats(ps []*float64) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		if p == nil {
			out[i] = nil
		} else {
			out[i] = *p
		}
	}
	return out
}

// TestHistoryRecent: pushed usage lands in the in-memory history at most
// once per step; throughputs are rates between kept samples (null first and
// after a counter reset); loopback is left out; since filters; the ring
// keeps the newest window.
func TestHistoryRecent(t *testing.T) {
	c := newClock()
	s := newService(t, nopStore{}, c, func(o *Options) { o.RecentWindow = time.Minute; o.RecentStep = 10 * time.Second })
	ctx := context.Background()
	t0 := c.Now()
	push := func(u *protocol.HMUsage) {
		s.HandleDynamic("m1", decode(t, dynMsg(&protocol.HMDynamicRep{Usage: u})))
	}
	push(usageAt(10, 1000, 500)) // t0: kept
	c.Add(5 * time.Second)
	push(usageAt(99, 9999, 9999)) // t0+5: within the step, dropped
	c.Add(5 * time.Second)
	push(usageAt(20, 3000, 1500)) // t0+10: kept; rx (3000-1000)/10
	c.Add(10 * time.Second)
	push(usageAt(30.25, 100, 2500)) // t0+20: counters went back for rx

	h, err := s.History(ctx, "m1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Source != "memory" || h.Step != 10 {
		t.Errorf("source %q step %d", h.Source, h.Step)
	}
	wantT := []int64{t0.Unix(), t0.Unix() + 10, t0.Unix() + 20}
	if fmt.Sprint(h.Time) != fmt.Sprint(wantT) || fmt.Sprint(h.CPU) != "[10 20 30.25]" {
		t.Errorf("time %v cpu %v", h.Time, h.CPU)
	}
	if fmt.Sprint(h.Mem) != "[25 25 25]" || fmt.Sprint(h.Disk) != "[40 40 40]" || fmt.Sprint(h.Load1) != "[0.5 0.5 0.5]" {
		t.Errorf("mem %v disk %v load %v", h.Mem, h.Disk, h.Load1)
	}
	if got := fmt.Sprint(floats(h.NetRecv)); got != "[<nil> 200 <nil>]" {
		t.Errorf("net_recv %s", got)
	}
	if got := fmt.Sprint(floats(h.NetSent)); got != "[<nil> 100 100]" {
		t.Errorf("net_sent %s (loopback must not count)", got)
	}
	if got := fmt.Sprint(floats(h.DiskRead), floats(h.DiskWrite)); got != "[1024 1024 1024] [2048 2048 2048]" {
		t.Errorf("disk %s", got)
	}
	// The JSON shape: nulls for unknown throughputs.
	b, _ := json.Marshal(h)
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || fmt.Sprint(raw["net_recv"]) != "[<nil> 200 <nil>]" {
		t.Errorf("json %s %v", b, err)
	}

	h, _ = s.History(ctx, "m1", t0.Add(15*time.Second))
	if len(h.Time) != 1 || h.Time[0] != t0.Unix()+20 {
		t.Errorf("since: %v", h.Time)
	}

	// 6 samples fit a 1-minute window at 10 s: after 10 more, the newest 6.
	for i := range 10 {
		c.Add(10 * time.Second)
		push(usageAt(float64(40+i), 0, 0))
	}
	h, _ = s.History(ctx, "m1", time.Time{})
	if fmt.Sprint(h.CPU) != "[44 45 46 47 48 49]" {
		t.Errorf("ring: cpu %v", h.CPU)
	}

	// Hosts silent for a window are swept; the route then reads the store
	// (empty here).
	c.Add(61 * time.Second)
	s.recent.sweep(c.Now())
	if s.recent.count() != 0 {
		t.Errorf("sweep left %d hosts", s.recent.count())
	}
}

func TestHistoryMaxHosts(t *testing.T) {
	c := newClock()
	s := newService(t, nopStore{}, c, func(o *Options) { o.MaxRecentHosts = 2 })
	for i := range 3 {
		s.HandleDynamic(fmt.Sprint("m", i), decode(t, dynMsg(&protocol.HMDynamicRep{Usage: usageAt(1, 0, 0)})))
	}
	if n := s.recent.count(); n != 2 {
		t.Errorf("%d hosts tracked, want 2", n)
	}
	if n := testutil.ToFloat64(s.m.recentUntracked); n != 1 {
		t.Errorf("untracked counter %v, want 1", n)
	}
	// Disabled: nothing kept, nothing counted.
	s = newService(t, nopStore{}, c, func(o *Options) { o.RecentWindow = -1 })
	s.HandleDynamic("m", decode(t, dynMsg(&protocol.HMDynamicRep{Usage: usageAt(1, 0, 0)})))
	if s.recent.count() != 0 || testutil.ToFloat64(s.m.recentUntracked) != 0 {
		t.Errorf("disabled history kept something")
	}
}

// TestHistoryFromStore: without an in-memory history (another server of
// the cluster holds the host, or a restart), the stored usage history
// answers, reduced the same way.
func TestHistoryFromStore(t *testing.T) {
	c := newClock()
	st := openStore(t)
	s := newService(t, st, c, func(o *Options) { o.RecentWindow = -1; o.HistoryInterval = -1 })
	ctx := context.Background()
	t0 := c.Now()
	for i := range 3 {
		s.HandleDynamic("m1", decode(t, dynMsg(&protocol.HMDynamicRep{Usage: usageAt(float64(10*i), uint64(6000*i), 0)})))
		c.Add(time.Minute)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, "m1", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if h.Source != "store" || fmt.Sprint(h.CPU) != "[0 10 20]" || fmt.Sprint(floats(h.NetRecv)) != "[<nil> 100 100]" {
		t.Errorf("store history: %+v recv %v", h, floats(h.NetRecv))
	}
	if h.Time[0] != t0.Unix() {
		t.Errorf("time %v, want from %d", h.Time, t0.Unix())
	}
	h, err = s.History(ctx, "nobody", time.Time{})
	if err != nil || len(h.Time) != 0 || h.CPU == nil {
		t.Errorf("unknown host: %+v %v (want empty columns)", h, err)
	}
}

func TestHundredths(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want uint16
	}{{0, 0}, {-3, 0}, {12.345, 1235}, {100, 10000}, {655.35, 65535}, {1e9, 65535}} {
		if got := hundredths(tc.in); got != tc.want {
			t.Errorf("hundredths(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
	var nan float64
	nan = nan / nan
	if hundredths(nan) != 0 {
		t.Error("NaN")
	}
	if num(float32(nan)) != nil || *num(1.6) != 2 {
		t.Error("num")
	}
	_ = ptr
}

// BenchmarkRecentHistoryMemory measures the heap the in-memory history
// takes per host with full rings at the defaults (1 h, 15 s): the figure
// of BENCHMARKS.md and docs/console.md ("B/host").
func BenchmarkRecentHistoryMemory(b *testing.B) {
	const hosts = 10000
	u := usageAt(12.5, 1000, 1000)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := newRecent(time.Hour, 15*time.Second, 100000, func() {})
		t0 := time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC)
		ids := make([]string, hosts)
		for i := range ids {
			ids[i] = fmt.Sprintf("agent-%06d", i)
		}
		p := pointFromWire(u)
		for k := range 240 {
			now := t0.Add(time.Duration(k) * 15 * time.Second)
			for _, id := range ids {
				r.add(id, now, p)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/hosts, "B/host")
		runtime.KeepAlive(r)
		runtime.KeepAlive(ids)
	}
}
