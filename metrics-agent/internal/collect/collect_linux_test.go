package collect

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

func TestStaticLVM(t *testing.T) {
	c, _, _ := fixture(t, "lvm", Options{})
	s, ws := c.Static(context.Background())
	if s.CPU.Physical != 2 || s.CPU.Logical != 4 || s.PhysicalCores != 2 {
		t.Errorf("cpu physical/logical/real cores = %d/%d/%d, want 2/4/2", s.CPU.Physical, s.CPU.Logical, s.PhysicalCores)
	}
	disks := map[string]protocol.HMDisk{}
	for _, d := range s.Disks {
		disks[d.Model] = d
	}
	for model, want := range map[string][]string{
		"INTEL SSDSC2BB12": {"/", "/boot", "/home"}, // partition, dm by number, dm by mapper name
		"ST2000DM008-2FR1": {"/data"},               // through /dev/disk/by-uuid
		"DVD-ROM":          nil,
	} {
		if got := disks[model].Partitions; !slices.Equal(got, want) {
			t.Errorf("disk %s partitions = %q, want %q", model, got, want)
		}
	}
	if disks["DVD-ROM"].Type != "odd" || disks["INTEL SSDSC2BB12"].Type != "hdd" {
		t.Errorf("disk types: %+v", s.Disks)
	}
	if s.Gateway != "fe80::1%ens3" || s.Gateway6 != "fe80::1%ens3" {
		t.Errorf("gateway = %q / %q, want the lowest-metric IPv6 route when there is no IPv4 one", s.Gateway, s.Gateway6)
	}
	if !slices.Equal(s.Nameservers, []string{"2001:4860:4860::8888", "::1"}) {
		t.Errorf("nameservers = %q", s.Nameservers)
	}
	if !s.OS.Install.IsZero() || !hasWarning(ws, "static.os.install", ErrUnsupported) {
		t.Errorf("install = %v, warnings %v: want omitted and warned", s.OS.Install, ws)
	}
}

func hasWarning(ws []Warning, field string, target error) bool {
	for _, w := range ws {
		if w.Field == field && (target == nil || errors.Is(w, target)) {
			return true
		}
	}
	return false
}

func TestStaticDebian(t *testing.T) {
	c, _, _ := fixture(t, "debian", Options{})
	s, _ := c.Static(context.Background())
	if want := time.Date(2025, 6, 24, 14, 37, 40, 0, time.UTC); !s.OS.Install.Equal(want) {
		t.Errorf("install = %v, want %v (machine-id, the only plausible mark)", s.OS.Install, want)
	}
	if want := t0.Add(-time.Hour); !s.OS.Startup.Equal(want) {
		t.Errorf("startup = %v, want %v", s.OS.Startup, want)
	}
	if s.Gateway != "192.0.2.1" || s.Gateway6 != "fd00::1" {
		t.Errorf("gateway = %q / %q", s.Gateway, s.Gateway6)
	}
	if s.OS.PlatformVersion != "12.11" {
		t.Errorf("platform version = %q, want debian_version's 12.11", s.OS.PlatformVersion)
	}
	var mounts []string
	for _, p := range s.Partitions {
		mounts = append(mounts, p.Mount)
	}
	// proc, sysfs, tmpfs and the bind mount of a sub-directory are left out.
	if want := []string{"/", "/mnt/my share"}; !slices.Equal(mounts, want) {
		t.Errorf("partitions = %q, want %q", mounts, want)
	}
}

func TestUsageRates(t *testing.T) {
	c, clk, root := fixture(t, "lvm", Options{})
	ctx := context.Background()
	u, _ := c.Usage(ctx)
	// First sample: CPU since boot (busy 1500 of 10000 jiffies), no I/O rate.
	if u.CPU.Usage != 15 {
		t.Errorf("first cpu usage = %v, want 15 (since boot)", u.CPU.Usage)
	}
	for _, p := range u.Partitions {
		if p.ReadPerSecond != 0 || p.WritePerSecond != 0 {
			t.Errorf("first sample %s: rps/wps = %v/%v, want 0", p.Name, p.ReadPerSecond, p.WritePerSecond)
		}
	}
	if u.Memory.SwapUsed != 0 || u.Memory.SwapFree != 4194300*1024 {
		t.Errorf("swap used/free = %d/%d", u.Memory.SwapUsed, u.Memory.SwapFree)
	}

	// 10 s later: dm-0 (/) read 20480 sectors (10 MiB) and wrote 2048
	// (1 MiB); the CPUs were busy 300 of 1000 jiffies.
	clk.Add(10 * time.Second)
	writeFile(t, filepath.Join(root, "proc/stat"), "cpu  1200 0 600 8600 600 0 0 0 0 0\nbtime 1764000000\n")
	writeFile(t, filepath.Join(root, "proc/diskstats"), strings.Replace(readFile(t, filepath.Join(root, "proc/diskstats")),
		"253       0 dm-0 800 0 80000 0 1500 0 150000 0 1", "253       0 dm-0 900 0 100480 0 1600 0 152048 0 3", 1))
	u, _ = c.Usage(ctx)
	if u.CPU.Usage != 30 {
		t.Errorf("cpu usage = %v, want 30", u.CPU.Usage)
	}
	root0 := u.Partitions[0]
	if root0.Name != "/" || root0.ReadPerSecond != 1048576 || root0.WritePerSecond != 104857.6 || root0.IOPSInProgress != 3 {
		t.Errorf("/ = %+v, want rps 1048576, wps 104857.6, iip 3", root0)
	}
	if u.Partitions[1].ReadPerSecond != 0 {
		t.Errorf("/boot rps = %v, want 0 (no change)", u.Partitions[1].ReadPerSecond)
	}
}

func TestUsageSwap(t *testing.T) {
	c, _, _ := fixture(t, "debian", Options{})
	u, _ := c.Usage(context.Background())
	// SwapTotal 2097148 kB, SwapFree 1048572 kB.
	if u.Memory.SwapUsed != (2097148-1048572)*1024 || u.Memory.SwapFree != 1048572*1024 {
		t.Errorf("swap used/free = %d/%d", u.Memory.SwapUsed, u.Memory.SwapFree)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := readFileBytes(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFileBytes(path string) ([]byte, error) {
	var buf []byte
	return readFileInto(path, &buf)
}

func TestProcessCPUOverInterval(t *testing.T) {
	c, clk, root := fixture(t, "debian", Options{})
	ctx := context.Background()
	byID := func(ps []protocol.HMProcess) map[int32]protocol.HMProcess {
		m := map[int32]protocol.HMProcess{}
		for _, p := range ps {
			m[p.ID] = p
		}
		return m
	}
	ps, ws := c.Processes(ctx, 0)
	if len(ws) != 0 {
		t.Fatalf("warnings: %v", ws)
	}
	// First snapshot: over the process's life, 360 s of CPU in 3599.51 s.
	if got := byID(ps)[107].CPUUsage; got < 10 || got > 10.01 {
		t.Errorf("first cpu of 107 = %v, want ≈10 (lifetime)", got)
	}
	// 10 s later, 107 used 5 s of CPU: 50 %, whatever its lifetime average.
	clk.Add(10 * time.Second)
	stat := filepath.Join(root, "proc/107/stat")
	writeFile(t, stat, strings.Replace(readFile(t, stat), " 30000 6000 ", " 30400 6100 ", 1))
	ps, _ = c.Processes(ctx, 0)
	m := byID(ps)
	if got := m[107].CPUUsage; got != 50 {
		t.Errorf("cpu of 107 = %v, want 50 over the interval", got)
	}
	if got := m[4242].CPUUsage; got != 0 {
		t.Errorf("cpu of idle 4242 = %v, want 0", got)
	}
	p := m[107]
	if p.User != "mysql" || p.ParentID != 1 || p.RSS != 250000*1024 || p.Swap != 1024*1024 || p.Conns != 5 || !slices.Equal(p.Listen, []uint32{3306}) {
		t.Errorf("107 = %+v", p)
	}
	if got := m[4242].User; got != "1001" {
		t.Errorf("user of uid 1001 without passwd entry = %q, want the number", got)
	}
	if got := m[2].Cmd; !slices.Equal(got, []string{"[kthreadd]"}) {
		t.Errorf("kernel thread cmd = %q", got)
	}
}

func TestProcessTop(t *testing.T) {
	c, _, _ := fixture(t, "debian", Options{})
	ps, _ := c.Processes(context.Background(), 2)
	var ids []int32
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	if want := []int32{107, 4242}; !slices.Equal(ids, want) {
		t.Errorf("top 2 = %v, want %v (by cpu)", ids, want)
	}
}

func TestConnectionKinds(t *testing.T) {
	tests := []struct {
		kinds     []string
		wantTypes []string
		warn      string
	}{
		{nil, []string{"tcp4", "tcp6", "udp4", "unix"}, ""},
		{[]string{"tcp4"}, []string{"tcp4"}, ""},
		{[]string{"tcp"}, []string{"tcp4", "tcp6"}, ""},
		{[]string{"udp6", "unix"}, []string{"unix"}, ""},
		{[]string{"sctp"}, nil, `conns.kinds: unknown connection kind "sctp"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.kinds, ","), func(t *testing.T) {
			c, _, _ := fixture(t, "debian", Options{})
			cs, ws := c.Connections(context.Background(), tt.kinds)
			var types []string
			for _, cn := range cs {
				if !slices.Contains(types, cn.Type) {
					types = append(types, cn.Type)
				}
			}
			if !slices.Equal(types, tt.wantTypes) {
				t.Errorf("types = %q, want %q", types, tt.wantTypes)
			}
			if tt.warn != "" && (len(ws) != 1 || ws[0].Error() != tt.warn) {
				t.Errorf("warnings = %v, want %q", ws, tt.warn)
			}
		})
	}
}

func TestUnixSocketsAreUnix(t *testing.T) {
	c, _, _ := fixture(t, "debian", Options{})
	cs, _ := c.Connections(context.Background(), []string{"unix"})
	if len(cs) != 5 {
		t.Fatalf("%d unix sockets, want 5", len(cs))
	}
	want := map[string]string{"/run/mysqld/mysqld.sock": "LISTEN", "@/org/example/abstract": "LISTEN", "/tmp/my socket": ""}
	for _, cn := range cs {
		if cn.Type != "unix" {
			t.Errorf("%+v typed %q", cn, cn.Type)
		}
		if st, ok := want[cn.Local]; ok && cn.Status != st && cn.Pid != 107 {
			t.Errorf("%s status = %q, want %q", cn.Local, cn.Status, st)
		}
	}
	if cs[0].Pid != 107 || cs[0].FD != 21 {
		t.Errorf("owner of the mysqld listener = pid %d fd %d, want 107/21", cs[0].Pid, cs[0].FD)
	}
}

func TestDynamicSharesOneWalk(t *testing.T) {
	c, _, _ := fixture(t, "debian", Options{})
	rep, ws := c.Dynamic(context.Background(), RequestFrom(protocol.HMDynamicReq{
		Req: []int{protocol.HMReqUsage, protocol.HMReqProcess, protocol.HMReqConnections, protocol.HMReqTemperatures}, Top: 1}))
	if len(ws) != 0 {
		t.Errorf("warnings: %v", ws)
	}
	if rep.Usage == nil || len(rep.Process) != 1 || len(rep.Connections) == 0 || !rep.Begin.Equal(t0) {
		t.Errorf("report: %+v", rep)
	}
	// With ShareWindow < 0, only Dynamic shares: the walk happened once.
	first := c.snap
	c.Dynamic(context.Background(), Request{Process: true, Connections: true})
	if c.snap == first {
		t.Error("a new Dynamic call reused the old snapshot with sharing off")
	}
}

func TestConcurrentCalls(t *testing.T) {
	c, _, _ := fixture(t, "debian", Options{ShareWindow: time.Second})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { c.Usage(ctx) })
		wg.Go(func() { c.Processes(ctx, 2) })
		wg.Go(func() { c.Connections(ctx, []string{"tcp"}) })
		wg.Go(func() { c.Dynamic(ctx, Request{Usage: true, Process: true, Connections: true}) })
	}
	wg.Wait()
}

func TestSnapshotShareWindow(t *testing.T) {
	c, clk, _ := fixture(t, "debian", Options{ShareWindow: time.Second})
	ctx := context.Background()
	c.Processes(ctx, 0)
	s1 := c.snap
	clk.Add(500 * time.Millisecond)
	c.Connections(ctx, nil)
	if c.snap != s1 {
		t.Error("connections 0.5 s after the process list took a new snapshot")
	}
	clk.Add(time.Second)
	c.Connections(ctx, nil)
	if c.snap == s1 {
		t.Error("snapshot reused after the share window")
	}
}

func TestTemperaturesPartial(t *testing.T) {
	c, _, _ := fixture(t, "arm", Options{})
	ts, ws := c.Temperatures(context.Background())
	got := map[string]protocol.F2{}
	for _, x := range ts {
		got[x.Name] = x.Temp
	}
	want := map[string]protocol.F2{"cpu_thermal_temp1": 47.5, "nvme_composite": 38.85, "coretemp_core0": 51, "cpu-thermal": 47.236, "thermal_zone1": -1}
	if len(got) != len(want) {
		t.Errorf("sensors = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(ws) != 2 || !hasWarning(ws, "temps.nvme_temp2", errSyntax) || !hasWarning(ws, "temps.nvme_temp3", nil) {
		t.Errorf("warnings = %v, want the two broken nvme sensors", ws)
	}
}

func TestQPSLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := fixture(t, "debian", Options{ProcessQPS: 1})
		c.now = time.Now // the bubble's clock
		start := time.Now()
		ps, ws := c.Processes(context.Background(), 0)
		// 4 processes, burst 1, 1 per second: 3 s.
		if d := time.Since(start); d != 3*time.Second || len(ps) != 4 || len(ws) != 0 {
			t.Errorf("walk took %v for %d processes (warnings %v), want 3s for 4", d, len(ps), ws)
		}
	})
}

func TestQPSLimitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A share window longer than the test, so that only the rule
		// "partial walks are not shared" makes the second call walk again.
		c, _, _ := fixture(t, "debian", Options{ProcessQPS: 1, ShareWindow: time.Hour})
		c.now = time.Now
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		ps, ws := c.Processes(ctx, 0)
		if len(ps) == 0 || len(ps) == 4 || len(ws) != 1 || !strings.Contains(ws[0].Error(), "process: walk stopped after 2 of 4 processes") {
			t.Errorf("%d processes, warnings %v: want a partial list and a warning", len(ps), ws)
		}
		// The next caller, within the share window, must not get the
		// partial walk: it walks again and sees every process.
		ps, ws = c.Processes(context.Background(), 0)
		if len(ps) != 4 || len(ws) != 0 {
			t.Errorf("after a cancelled walk: %d processes, warnings %v; want all 4", len(ps), ws)
		}
	})
}
