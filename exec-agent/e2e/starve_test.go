//go:build linux

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/eventually"
)

// cpuQuota is a cgroup holding processes to a CPU quota: cgroup v2
// (cpu.max) where the cpu controller is there, else the v1 cpu controller
// (cpu.cfs_quota_us / cpu.cfs_period_us) — the same quota either way.
type cpuQuota struct {
	dir string
	v2  bool
}

// newCPUQuota creates a cgroup limited to quota per period. The error says
// why cgroups are not usable here (not mounted, not writable).
func newCPUQuota(t *testing.T, quota, period time.Duration) (*cpuQuota, error) {
	v2root, v1root := cgroupRoots()
	name := fmt.Sprintf("agentfleet-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	var errs []error
	if v2root != "" {
		ctl, _ := os.ReadFile(filepath.Join(v2root, "cgroup.controllers"))
		if !strings.Contains(" "+strings.TrimSpace(string(ctl))+" ", " cpu ") {
			errs = append(errs, fmt.Errorf("cgroup v2 at %s has no cpu controller (%q)", v2root, strings.TrimSpace(string(ctl))))
		} else {
			_ = os.WriteFile(filepath.Join(v2root, "cgroup.subtree_control"), []byte("+cpu"), 0)
			c := &cpuQuota{dir: filepath.Join(v2root, name), v2: true}
			err := c.create(fmt.Sprintf("%d %d", quota.Microseconds(), period.Microseconds()))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
	}
	if v1root != "" {
		c := &cpuQuota{dir: filepath.Join(v1root, name)}
		err := c.create(fmt.Sprintf("%d %d", quota.Microseconds(), period.Microseconds()))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no cgroup v2 or v1 cpu hierarchy mounted"))
	}
	return nil, errors.Join(errs...)
}

func (c *cpuQuota) create(quota string) error {
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	if err := c.set(quota); err != nil {
		_ = os.Remove(c.dir)
		return err
	}
	return nil
}

// set writes "quota period" in microseconds, or "max".
func (c *cpuQuota) set(v string) error {
	if c.v2 {
		return os.WriteFile(filepath.Join(c.dir, "cpu.max"), []byte(v), 0)
	}
	q, p, _ := strings.Cut(v, " ")
	if q == "max" {
		q = "-1"
	}
	if p != "" {
		if err := os.WriteFile(filepath.Join(c.dir, "cpu.cfs_period_us"), []byte(p), 0); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(c.dir, "cpu.cfs_quota_us"), []byte(q), 0)
}

func (c *cpuQuota) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// throttled reads how often the group was held back (cpu.stat).
func (c *cpuQuota) throttled() int64 {
	b, _ := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "nr_throttled "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// remove deletes the cgroup once its processes have gone.
func (c *cpuQuota) remove(t *testing.T) {
	eventually.Within(t, 30*time.Second, "cgroup "+c.dir+" empty", func() bool {
		b, _ := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
		return strings.TrimSpace(string(b)) == ""
	})
	if err := os.Remove(c.dir); err != nil {
		t.Errorf("remove cgroup: %v", err)
	}
}

// cgroupRoots finds the mount points of cgroup v2 and of the v1 cpu
// controller in /proc/self/mountinfo.
func cgroupRoots() (v2, v1cpu string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional…] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f1, f2 := strings.Fields(pre), strings.Fields(post)
		if len(f1) < 5 || len(f2) < 3 {
			continue
		}
		switch f2[0] {
		case "cgroup2":
			if v2 == "" {
				v2 = f1[4]
			}
		case "cgroup":
			for _, o := range strings.Split(f2[2], ",") {
				if o == "cpu" && v1cpu == "" {
					v1cpu = f1[4]
				}
			}
		}
	}
	return v2, v1cpu
}

// TestStarvedAgentLosesNothing: an exec-agent held to 3 ms of CPU a second
// (a cgroup CPU quota, the commands it runs inherit it) still delivers
// every byte of `seq 1 200000` through the pipe, run after run, and reports
// no cut. Before the fix it let go of the pipe exec.drain_timeout after the
// main process's exit and whole 4 KiB pages were missing from an "ok"
// result (issue 14 item 1).
func TestStarvedAgentLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a starved agent takes minutes")
	}
	if os.Geteuid() != 0 {
		t.Skip("cgroups are not writable: not root")
	}
	cg, err := newCPUQuota(t, 3*time.Millisecond, time.Second)
	if err != nil {
		t.Skipf("cgroups are not writable: %v", err)
	}
	t.Cleanup(func() { cg.remove(t) })
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if want.Len() != 1288895 {
		t.Fatalf("want %d bytes", want.Len())
	}

	e := newEnv(t, envOptions{direct: true, logLevel: "info"})
	if err := cg.add(e.agent.PID()); err != nil {
		t.Fatalf("move the agent into %s: %v", cg.dir, err)
	}
	// Cleanups run last-first: the agent gets its CPU back before it is
	// stopped, and the cgroup goes after that.
	t.Cleanup(func() {
		if err := cg.set("max"); err != nil {
			t.Errorf("lift the quota: %v", err)
		}
	})
	t.Logf("agent pid %d in %s (v2 %t)", e.agent.PID(), cg.dir, cg.v2)

	// Odd runs: the command leaves the quota (its cgroup's parent), so seq
	// fills the pipe at full speed and exits at once while the agent is
	// still held back — the sharpest form of the race. Even runs: the
	// command starves with the agent, as in production.
	escape := "echo $$ > " + filepath.Join(filepath.Dir(cg.dir), "cgroup.procs") + " && exec "
	const runs = 4
	for i := range runs {
		cmd := "seq 1 200000"
		if i%2 == 1 {
			cmd = escape + cmd
		}
		start := time.Now()
		rr, r := e.run(runReq{Cmd: cmd, Pipe: true, Timeout: 600}, false)
		if r.status != 200 || rr.Result == nil {
			t.Fatalf("run %d: %d %s", i, r.status, r.body)
		}
		res := rr.Result
		t.Logf("run %d: %d bytes in %v, state %s, throttled %d times so far", i, len(res.Data), time.Since(start).Round(time.Millisecond), res.State, cg.throttled())
		if res.Running || res.State != "ok" || res.Code != 0 || res.Dropped != 0 || res.Msg != "" {
			t.Errorf("run %d: running %t state %s code %d dropped %d msg %q", i, res.Running, res.State, res.Code, res.Dropped, res.Msg)
		}
		if len(res.Data) != 1288895 || res.OutputBytes != 1288895 || string(res.Data) != want.String() {
			t.Fatalf("run %d: %d bytes (output_bytes %d), want exactly the 1288895 of seq 1 200000", i, len(res.Data), res.OutputBytes)
		}
	}
	if cg.throttled() == 0 {
		t.Errorf("the quota never held the agent back: the test did not starve it")
	}
}
