package collect

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLiveHost runs every collector on the running host and checks that the
// figures are sane.
func TestLiveHost(t *testing.T) {
	c := New(Options{})
	ctx := context.Background()

	s, ws := c.Static(ctx)
	t.Logf("static warnings: %v", ws)
	if s.CPU.Logical != runtime.NumCPU() && len(s.CPU.Cores) != s.CPU.Logical {
		t.Errorf("logical CPUs = %d, runtime.NumCPU() = %d", s.CPU.Logical, runtime.NumCPU())
	}
	if s.CPU.Logical < runtime.NumCPU() {
		t.Errorf("logical CPUs = %d < runtime.NumCPU() = %d", s.CPU.Logical, runtime.NumCPU())
	}
	if s.PhysicalCores < 1 || s.PhysicalCores > s.CPU.Logical {
		t.Errorf("physical cores = %d of %d logical", s.PhysicalCores, s.CPU.Logical)
	}
	if s.Memory.Physical == 0 {
		t.Error("memory total is 0")
	}
	if host, _ := os.Hostname(); s.Host.Name != host {
		t.Errorf("host name = %q, want %q", s.Host.Name, host)
	}
	if s.OS.Startup.After(time.Now()) || s.Host.Uptime <= 0 {
		t.Errorf("startup %v, uptime %v", s.OS.Startup, s.Host.Uptime)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil && s.Kernel.Version != unix.ByteSliceToString(u.Release[:]) {
		t.Errorf("kernel = %q, uname says %q", s.Kernel.Version, unix.ByteSliceToString(u.Release[:]))
	}
	if len(s.Partitions) == 0 {
		t.Error("no partitions")
	}

	us, ws := c.Usage(ctx)
	t.Logf("usage warnings: %v", ws)
	if us.CPU.Usage < 0 || us.CPU.Usage > 100 || us.Memory.Used == 0 || us.Memory.Used > s.Memory.Physical {
		t.Errorf("usage %+v", us)
	}
	us, _ = c.Usage(ctx)
	for _, p := range us.Partitions {
		if p.Usage < 0 || p.Usage > 100 {
			t.Errorf("partition %+v", p)
		}
	}

	ps, ws := c.Processes(ctx, 0)
	t.Logf("%d processes, warnings: %v", len(ps), ws)
	found := false
	for _, p := range ps {
		if p.ID == int32(os.Getpid()) {
			found = true
			if p.ParentID != int32(os.Getppid()) || p.RSS == 0 || len(p.Cmd) == 0 {
				t.Errorf("own process = %+v", p)
			}
		}
	}
	if !found {
		t.Errorf("own pid %d not in the process list", os.Getpid())
	}
	if _, ws := c.Connections(ctx, nil); len(ws) != 0 {
		t.Errorf("connection warnings: %v", ws)
	}
	if _, ws := c.Temperatures(ctx); len(ws) != 0 {
		t.Logf("temperature warnings: %v", ws)
	}
}

// TestLiveListeners checks the netlink path against the tcp tables.
func TestLiveListeners(t *testing.T) {
	nl, err := netlinkListeners()
	if err != nil {
		t.Skipf("sock_diag unavailable: %v", err)
	}
	var w warns
	r := DefaultRoots()
	r.Proc += "/" // not the default root: the tables are read
	tab := New(Options{Roots: r}).listeners(&w)
	if len(w) != 0 {
		t.Fatal(w)
	}
	same := 0
	for ino, port := range tab {
		if p, ok := nl[ino]; ok {
			same++
			if p != port {
				t.Errorf("inode %d: netlink port %d, table port %d", ino, p, port)
			}
		}
	}
	if same == 0 && len(tab) > 0 || same < len(tab)-2 {
		t.Errorf("netlink found %d listeners, the tables %d, %d in common", len(nl), len(tab), same)
	}
}
