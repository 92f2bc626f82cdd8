package hostmetrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/store"

	"github.com/agentfleet/jkframe/eventually"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is an injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingStore counts the store calls (one per transaction).
type countingStore struct {
	store.Store
	mu        sync.Mutex
	puts, add int
	fail      error
}

func (c *countingStore) PutMetrics(ctx context.Context, ms []store.Metric) error {
	c.mu.Lock()
	c.puts++
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return fail
	}
	return c.Store.PutMetrics(ctx, ms)
}

func (c *countingStore) AddUsage(ctx context.Context, ms []store.Metric) error {
	c.mu.Lock()
	c.add++
	c.mu.Unlock()
	return c.Store.AddUsage(ctx, ms)
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newService(t *testing.T, st Store, c *clock, mod func(*Options)) *Service {
	t.Helper()
	o := Options{Store: st, Now: c.Now, Registry: prometheus.NewRegistry()}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleStatic(i int) *protocol.HMStatic {
	boot := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return &protocol.HMStatic{
		Time:   boot.Add(time.Hour),
		Host:   protocol.HMHost{Name: fmt.Sprintf("host-%d", i), Uptime: 90 * time.Minute},
		OS:     protocol.HMOS{Name: "linux", PlatformName: "debian", PlatformVersion: "12.5", Install: boot.Add(-time.Hour), Startup: boot},
		Kernel: protocol.HMKernel{Version: "6.1.0-18-amd64", Arch: "x86_64"},
		CPU: protocol.HMCPU{Physical: 4, Logical: 8, Cores: []protocol.HMCore{
			{Processor: 0, Model: "Xeon", Core: 0, Cores: 4, Physical: 0, Mhz: 2100.5}}},
		Memory: protocol.HMMemory{Physical: 16 << 30, Swap: 2 << 30},
		Disks:  []protocol.HMDisk{{Model: "Samsung SSD", Total: 512 << 30, Type: "hdd", Partitions: []string{"/", "/home"}}},
		Partitions: []protocol.HMPartition{
			{Mount: "/", FSType: "ext4", Opts: []string{"rw"}, Total: 100 << 30, Inodes: 6553600},
			{Mount: "/home", FSType: "xfs", Total: 400 << 30, Inodes: 1 << 20},
		},
		Nameservers: []string{"10.0.0.2"},
		Gateway:     "10.0.0.1",
		Interface:   []protocol.HMInterface{{Index: 2, Name: "eth0", MTU: 1500, Flags: []string{"up"}, MAC: "02:00:00:00:00:01", Addrs: []string{"10.0.0.5/24"}}},
		User:        []protocol.HMUser{{Name: "root", ID: "0", GID: "0"}},
	}
}

func sampleUsage(i int) *protocol.HMUsage {
	return &protocol.HMUsage{
		CPU:    protocol.HMUsageCPU{Usage: 12.5, Load1: 0.5, Load5: 0.25, Load15: 0.1},
		Memory: protocol.HMUsageMemory{Used: 4 << 30, Free: 8 << 30, Available: 11 << 30, Usage: 25, SwapUsed: 1 << 20, SwapFree: 2<<30 - 1<<20},
		Partitions: []protocol.HMUsagePart{
			{Name: "/", Used: 40 << 30, Free: 55 << 30, Usage: 40, InodeUsed: 100, InodeFree: 6553500, InodeUsage: 0.01, ReadPerSecond: 1024, WritePerSecond: 2048, IOPSInProgress: 1},
			{Name: "/home", Used: 100 << 30, Free: 300 << 30, Usage: 25},
		},
		Interface: []protocol.HMUsageNetwork{
			{Name: "eth0", BytesSent: uint64(1000 * (i + 1)), BytesRecv: 2000, PacketsSent: 10, PacketsRecv: 20},
			{Name: "lo", BytesSent: 5, BytesRecv: 5, PacketsSent: 1, PacketsRecv: 1},
		},
	}
}

func staticMsg(i int) *protocol.Msg {
	return &protocol.Msg{Type: protocol.TypeHMStaticRep, Payload: sampleStatic(i)}
}

func dynMsg(d *protocol.HMDynamicRep) *protocol.Msg {
	return &protocol.Msg{Type: protocol.TypeHMDynamicRep, Payload: d}
}

// decode round-trips a wire message through the protocol codec, as the hub
// delivers it.
func decode(t testing.TB, m *protocol.Msg) *protocol.Msg {
	t.Helper()
	b, err := protocol.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := protocol.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIngestV1AndOurs: a v1 agent pushes one category per message, ours
// several in one; both end up as the latest per category, in one flush of
// two store calls.
func TestIngestV1AndOurs(t *testing.T) {
	c := newClock()
	cs := &countingStore{Store: openStore(t)}
	s := newService(t, cs, c, func(o *Options) { o.HistoryInterval = -1 })
	ctx := context.Background()

	// v1: one category per message.
	s.HandleStatic("v1", decode(t, staticMsg(1)))
	s.HandleDynamic("v1", decode(t, dynMsg(&protocol.HMDynamicRep{Usage: sampleUsage(1)})))
	s.HandleDynamic("v1", decode(t, dynMsg(&protocol.HMDynamicRep{Process: []protocol.HMProcess{{ID: 1, User: "root", CPUUsage: 1.5, Cmd: []string{"init"}}}})))
	s.HandleDynamic("v1", decode(t, dynMsg(&protocol.HMDynamicRep{Connections: []protocol.HMConnection{{FD: 3, Pid: 1, Type: "tcp4", Local: "0.0.0.0:22", Status: "LISTEN"}}})))
	s.HandleDynamic("v1", decode(t, dynMsg(&protocol.HMDynamicRep{Temperatures: []protocol.HMTemperature{{Name: "coretemp_core0", Temp: 45.5}}})))
	// Ours: everything at once.
	c.Add(time.Second)
	s.HandleDynamic("ours", decode(t, dynMsg(&protocol.HMDynamicRep{
		Usage:        sampleUsage(2),
		Process:      []protocol.HMProcess{{ID: 7, CPUUsage: 3}, {ID: 8, CPUUsage: 9}},
		Connections:  []protocol.HMConnection{{Type: "unix", Local: "/run/x.sock"}},
		Temperatures: []protocol.HMTemperature{{Name: "acpitz", Temp: 30}},
	})))
	// A late reply (tid) is not a push.
	s.HandleDynamic("late", decode(t, &protocol.Msg{Type: protocol.TypeHMDynamicRep, TID: "t1", Payload: &protocol.HMDynamicRep{Usage: sampleUsage(3)}}))

	// Before the flush, cached reads see the pending reports.
	var u Usage
	if _, err := s.Cached(ctx, "ours", store.CategoryUsage, &u); err != nil || u.CPU.Usage != 12.5 {
		t.Fatalf("pending usage: %+v %v", u, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if cs.puts != 1 || cs.add != 1 {
		t.Errorf("store calls: %d PutMetrics, %d AddUsage; want 1 and 1", cs.puts, cs.add)
	}
	for _, tc := range []struct {
		agent string
		cats  []string
	}{
		{"v1", []string{"conns", "process", "static", "temps", "usage"}},
		{"ours", []string{"conns", "process", "temps", "usage"}},
		{"late", nil},
	} {
		ms, err := cs.GetMetrics(ctx, tc.agent)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Category)
		}
		if fmt.Sprint(got) != fmt.Sprint(orEmpty(tc.cats)) {
			t.Errorf("%s: stored %v, want %v", tc.agent, got, tc.cats)
		}
	}
	// Stored in the API shape.
	m, err := cs.GetMetric(ctx, "ours", store.CategoryUsage)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Memory map[string]any `json:"memory"`
	}
	if err := json.Unmarshal(m.Data, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Memory["swap_used"]; !ok {
		t.Errorf("stored usage is not API-shaped: %s", m.Data)
	}
	var st Static
	if _, err := s.Cached(ctx, "v1", store.CategoryStatic, &st); err != nil {
		t.Fatal(err)
	}
	if st.OS.PlatformName != "debian" || st.Partitions[1].Mount != "/home" || st.Host.Uptime != 5400 || st.OS.Startup != time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("static = %+v", st)
	}
	var ps []Process
	if _, err := s.Cached(ctx, "ours", store.CategoryProcess, &ps); err != nil || len(ps) != 2 || ps[1].CPUUsage != 9 {
		t.Errorf("process = %+v %v", ps, err)
	}
	if _, err := s.Cached(ctx, "nobody", store.CategoryStatic, &st); !errors.Is(err, ErrNoData) {
		t.Errorf("no data: %v", err)
	}
	h, err := cs.UsageHistory(ctx, "v1", time.Time{})
	if err != nil || len(h) != 1 {
		t.Errorf("history v1: %d %v", len(h), err)
	}
	// Nothing pending: no store call.
	if err := s.Flush(ctx); err != nil || cs.puts != 1 {
		t.Errorf("empty flush: %v, %d puts", err, cs.puts)
	}
}

// TestCoalesce: many pushes between two flushes are one row per (agent,
// category), the newest, and history keeps one sample per HistoryInterval.
func TestCoalesce(t *testing.T) {
	c := newClock()
	cs := &countingStore{Store: openStore(t)}
	s := newService(t, cs, c, func(o *Options) { o.HistoryInterval = time.Minute })
	ctx := context.Background()
	for i := range 30 { // 30 pushes, 5 s apart: 2.5 min
		for a := range 100 {
			u := sampleUsage(i)
			u.CPU.Usage = protocol.F2(i)
			s.HandleDynamic(fmt.Sprintf("a%03d", a), dynMsg(&protocol.HMDynamicRep{Usage: u}))
		}
		c.Add(5 * time.Second)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if cs.puts != 1 || cs.add != 1 {
		t.Errorf("store calls %d/%d, want 1/1", cs.puts, cs.add)
	}
	var u Usage
	if _, err := s.Cached(ctx, "a042", store.CategoryUsage, &u); err != nil || u.CPU.Usage != 29 {
		t.Errorf("latest usage = %v %v, want 29", u.CPU.Usage, err)
	}
	h, err := cs.UsageHistory(ctx, "a042", time.Time{})
	if err != nil || len(h) != 3 { // at 0, 60 s and 120 s
		t.Errorf("history: %d samples (%v), want 3", len(h), err)
	}
}

// TestFlushFailureKeepsLatest: a failed write is retried with the newest
// report, never an older one.
func TestFlushFailureKeepsLatest(t *testing.T) {
	c := newClock()
	cs := &countingStore{Store: openStore(t), fail: errors.New("disk on fire")}
	s := newService(t, cs, c, nil)
	ctx := context.Background()
	s.HandleStatic("a", staticMsg(1))
	if err := s.Flush(ctx); err == nil || !errors.Is(err, cs.fail) {
		t.Fatalf("flush error = %v", err)
	}
	c.Add(time.Second)
	s.HandleStatic("a", staticMsg(2))
	cs.mu.Lock()
	cs.fail = nil
	cs.mu.Unlock()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := cs.GetMetric(ctx, "a", store.CategoryStatic)
	if err != nil {
		t.Fatal(err)
	}
	var st Static
	if err := json.Unmarshal(m.Data, &st); err != nil || st.Host.Name != "host-2" {
		t.Errorf("stored %q, want host-2 (%v)", st.Host.Name, err)
	}
}

// TestRetention: samples older than the retention are pruned by the
// injected clock, by Prune and by Run's loop.
func TestRetention(t *testing.T) {
	c := newClock()
	st := openStore(t)
	s := newService(t, st, c, func(o *Options) {
		o.Retention, o.HistoryInterval = time.Hour, -1
		o.FlushInterval, o.PruneInterval = 5*time.Millisecond, 5*time.Millisecond
	})
	ctx := context.Background()
	s.HandleDynamic("a", dynMsg(&protocol.HMDynamicRep{Usage: sampleUsage(0)}))
	c.Add(30 * time.Minute)
	s.HandleDynamic("a", dynMsg(&protocol.HMDynamicRep{Usage: sampleUsage(1)}))
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("prune at +30m: %d %v, want 0", n, err)
	}
	c.Add(45 * time.Minute) // first sample is 75 min old, second 45
	if n, err := s.Prune(ctx); err != nil || n != 1 {
		t.Fatalf("prune at +75m: %d %v, want 1", n, err)
	}
	if h, _ := st.UsageHistory(ctx, "a", time.Time{}); len(h) != 1 {
		t.Fatalf("history after prune: %d samples, want 1", len(h))
	}

	// Run flushes and prunes on its own, and flushes at the end.
	c.Add(time.Hour) // the remaining sample is now past retention
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	eventually.NoError(t, "Run to prune", func() error {
		h, err := st.UsageHistory(ctx, "a", time.Time{})
		if err == nil && len(h) != 0 {
			err = fmt.Errorf("%d samples left", len(h))
		}
		return err
	})
	s.HandleStatic("b", staticMsg(3))
	cancel()
	<-done
	if _, err := st.GetMetric(ctx, "b", store.CategoryStatic); err != nil {
		t.Errorf("final flush: %v", err)
	}
}

// TestNoHistory: Retention < 0 keeps no samples.
func TestNoHistory(t *testing.T) {
	c := newClock()
	cs := &countingStore{Store: openStore(t)}
	s := newService(t, cs, c, func(o *Options) { o.Retention = -1 })
	s.HandleDynamic("a", dynMsg(&protocol.HMDynamicRep{Usage: sampleUsage(0)}))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cs.add != 0 {
		t.Errorf("AddUsage called %d times with no history", cs.add)
	}
}

// TestJobConfirmation: a requested change is confirmed by the next 37
// listing exactly those jobs.
func TestJobConfirmation(t *testing.T) {
	c := newClock()
	s := newService(t, openStore(t), c, nil)
	status := func(jobs ...string) *protocol.Msg {
		st := &protocol.HMAgentStatus{Warnings: 2}
		for _, j := range jobs {
			st.Jobs = append(st.Jobs, protocol.HMAgentJob{Name: j, Interval: 5, BytesSent: 100, Count: 3})
		}
		return &protocol.Msg{Type: protocol.TypeHMAgentStatus, Payload: st}
	}
	if _, ok := s.Jobs("a"); ok {
		t.Fatal("jobs known before any report")
	}
	s.HandleAgentStatus("a", status("static", "usage"))
	s.setRequested("a", []string{"usage"}, c.Now())
	js, _ := s.Jobs("a")
	if js.Requested.Confirmed || len(js.Reported.Jobs) != 2 || js.Reported.Warnings != 2 {
		t.Fatalf("before: %+v %+v", js.Requested, js.Reported)
	}
	c.Add(time.Second)
	s.HandleAgentStatus("a", status("static", "usage")) // not applied yet
	if js, _ = s.Jobs("a"); js.Requested.Confirmed {
		t.Fatal("confirmed by a report that does not match")
	}
	s.HandleAgentStatus("a", status("usage"))
	if js, _ = s.Jobs("a"); !js.Requested.Confirmed {
		t.Fatal("not confirmed by a matching report")
	}
}

// answeringHub is a Hub whose agent reports its jobs (type 37) as soon as
// it receives a job change, before Send returns: the fastest agent there is.
type answeringHub struct {
	Hub
	s    *Service
	fail error
}

func (h *answeringHub) Send(_ context.Context, agentID string, m *protocol.Msg) error {
	if h.fail != nil {
		return h.fail
	}
	ch := m.Payload.(*protocol.HMChangeStatus)
	st := &protocol.HMAgentStatus{}
	for _, j := range ch.Jobs {
		st.Jobs = append(st.Jobs, protocol.HMAgentJob{Name: j, Interval: 5})
	}
	h.s.HandleAgentStatus(agentID, &protocol.Msg{Type: protocol.TypeHMAgentStatus, Payload: st})
	return nil
}

// TestJobConfirmationImmediateReport: an agent that reports its new jobs
// before SetJobs returned confirms the change (the request is recorded
// before it is sent; failed once in make test when the report won the race).
// A change that could not be sent leaves the previous request in place.
func TestJobConfirmationImmediateReport(t *testing.T) {
	c := newClock()
	h := &answeringHub{}
	s := newService(t, openStore(t), c, func(o *Options) { o.Hub = h })
	h.s = s
	if _, err := s.SetJobs(context.Background(), "a", []string{"usage"}); err != nil {
		t.Fatal(err)
	}
	js, _ := s.Jobs("a")
	if js.Requested == nil || !js.Requested.Confirmed {
		t.Fatalf("an immediate report did not confirm the change: %+v", js.Requested)
	}
	h.fail = errors.New("agent gone")
	if _, err := s.SetJobs(context.Background(), "a", []string{"usage", "temps"}); err == nil {
		t.Fatal("SetJobs did not return the send error")
	}
	if js, _ = s.Jobs("a"); js.Requested == nil || !js.Requested.Confirmed || len(js.Requested.Jobs) != 1 {
		t.Fatalf("a failed send replaced the request: %+v", js.Requested)
	}
}
