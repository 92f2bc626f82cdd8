package limit

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func apply(c Config, o Options) (Applied, error) {
	if err := checkName(o.Name); err != nil {
		return Applied{}, err
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if c.MemoryLimit > math.MaxInt64 {
		return Applied{}, fmt.Errorf("limit: memory_limit %s too large", c.MemoryLimit)
	}
	switch detect(o.CgroupRoot) {
	case "cgroup2":
		return applyV2(c, o)
	case "cgroup1":
		return applyV1(c, o)
	}
	return Applied{}, fmt.Errorf("limit: %s: %w (neither cgroup.controllers nor cpu/, memory/, blkio/)", o.CgroupRoot, ErrNoCgroups)
}

// detect tells the hierarchy under root by its files, which works for the
// real root and for test fixtures alike (cgroups.Mode only looks at
// /sys/fs/cgroup). In hybrid mode the controllers are on v1, so that counts
// as v1.
func detect(root string) string {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return "cgroup2"
	}
	for _, ctl := range []string{"cpu", "memory", "blkio"} {
		if fi, err := os.Stat(filepath.Join(root, ctl)); err == nil && fi.IsDir() {
			return "cgroup1"
		}
	}
	return ""
}

// applyV2 creates the cgroup, enables the needed controllers for the
// root's children (one "+cpu +memory +io" write to cgroup.subtree_control),
// writes cpu.max, memory.max and io.max, then moves the process in with
// cgroup.procs. These are single file writes; containerd's cgroup2 manager
// did the same but linked protobuf, cilium/ebpf and D-Bus into every agent
// (docs/dependencies.md). io.max gets all of a device's keys on one line.
func applyV2(c Config, o Options) (Applied, error) {
	a := Applied{Mode: "cgroup2"}
	avail, err := os.ReadFile(filepath.Join(o.CgroupRoot, "cgroup.controllers"))
	if err != nil {
		return a, fmt.Errorf("limit: %w", err)
	}
	have := strings.Fields(string(avail))
	var ctls []string      // controllers to enable, in the kernel's usual order
	var values [][2]string // file, content
	need := func(ctl string) error {
		for _, h := range have {
			if h == ctl {
				ctls = append(ctls, "+"+ctl)
				return nil
			}
		}
		return fmt.Errorf("limit: cgroup v2 controller %q not available in %s (have %q)", ctl, o.CgroupRoot, strings.TrimSpace(string(avail)))
	}
	if c.CPUQuota > 0 {
		if err := need("cpu"); err != nil {
			return a, err
		}
		v := strconv.FormatUint(c.CPUQuota*period/100, 10) + " " + strconv.Itoa(period)
		values = append(values, [2]string{"cpu.max", v})
		a.Settings = append(a.Settings, "cpu.max="+v)
	}
	if c.MemoryLimit > 0 {
		if err := need("memory"); err != nil {
			return a, err
		}
		v := strconv.FormatUint(uint64(c.MemoryLimit), 10)
		values = append(values, [2]string{"memory.max", v})
		a.Settings = append(a.Settings, "memory.max="+v)
	}
	var ioLines []string
	if len(c.DiskLimit) > 0 {
		if err := need("io"); err != nil {
			return a, err
		}
		for _, d := range c.DiskLimit {
			line := d.Dev()
			for _, kv := range []struct {
				key string
				v   uint64
			}{{"rbps", uint64(d.ReadBytes)}, {"wbps", uint64(d.WriteBytes)}, {"riops", d.ReadIOPS}, {"wiops", d.WriteIOPS}} {
				if kv.v > 0 {
					line += " " + kv.key + "=" + strconv.FormatUint(kv.v, 10)
				}
			}
			ioLines = append(ioLines, line)
			a.Settings = append(a.Settings, "io.max="+line)
		}
	}
	dir := filepath.Join(o.CgroupRoot, o.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return a, fmt.Errorf("limit: cgroup v2 %s: %w", dir, err)
	}
	// The file exists on every cgroup2 mount: no O_CREATE.
	sub := filepath.Join(o.CgroupRoot, "cgroup.subtree_control")
	if err := writeExisting(sub, strings.Join(ctls, " ")); err != nil {
		os.Remove(dir)
		return a, fmt.Errorf("limit: cgroup v2 %s: enable %s: %w", dir, strings.Join(ctls, " "), err)
	}
	for _, v := range values {
		if err := os.WriteFile(filepath.Join(dir, v[0]), []byte(v[1]), 0o644); err != nil {
			os.Remove(dir)
			return a, fmt.Errorf("limit: cgroup v2 %s: %w", dir, err)
		}
	}
	if len(ioLines) > 0 {
		if err := writeLines(filepath.Join(dir, "io.max"), ioLines); err != nil {
			return a, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(o.PID)), 0o644); err != nil {
		return a, fmt.Errorf("limit: join %s: %w", dir, err)
	}
	a.Paths = []string{dir}
	return a, nil
}

// writeExisting writes s to an existing file in one write.
func writeExisting(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// applyV1 writes the v1 control files; containerd's cgroup1 package needs a
// full hierarchy description to target a custom root and writes defaults of
// its own, which would break "only configured limits are written".
func applyV1(c Config, o Options) (Applied, error) {
	a := Applied{Mode: "cgroup1"}
	type write struct {
		file  string
		lines []string
	}
	plan := map[string][]write{}
	var order []string
	add := func(ctl string, w write) {
		if _, ok := plan[ctl]; !ok {
			order = append(order, ctl)
		}
		plan[ctl] = append(plan[ctl], w)
	}
	if c.CPUQuota > 0 {
		add("cpu", write{"cpu.cfs_period_us", []string{strconv.Itoa(period)}})
		add("cpu", write{"cpu.cfs_quota_us", []string{strconv.FormatUint(c.CPUQuota*period/100, 10)}})
	}
	if c.MemoryLimit > 0 {
		add("memory", write{"memory.limit_in_bytes", []string{strconv.FormatUint(uint64(c.MemoryLimit), 10)}})
	}
	if len(c.DiskLimit) > 0 {
		files := [4]write{
			{file: "blkio.throttle.read_bps_device"},
			{file: "blkio.throttle.write_bps_device"},
			{file: "blkio.throttle.read_iops_device"},
			{file: "blkio.throttle.write_iops_device"},
		}
		for _, d := range c.DiskLimit {
			for i, v := range []uint64{uint64(d.ReadBytes), uint64(d.WriteBytes), d.ReadIOPS, d.WriteIOPS} {
				if v > 0 {
					files[i].lines = append(files[i].lines, d.Dev()+" "+strconv.FormatUint(v, 10))
				}
			}
		}
		for _, f := range files {
			if len(f.lines) > 0 {
				add("blkio", f)
			}
		}
	}
	for _, ctl := range order {
		base := filepath.Join(o.CgroupRoot, ctl)
		if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
			return a, fmt.Errorf("limit: cgroup v1 controller %q not mounted at %s", ctl, base)
		}
		dir := filepath.Join(base, o.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return a, fmt.Errorf("limit: %w", err)
		}
		for _, w := range plan[ctl] {
			if err := writeLines(filepath.Join(dir, w.file), w.lines); err != nil {
				return a, err
			}
			for _, l := range w.lines {
				a.Settings = append(a.Settings, w.file+"="+l)
			}
		}
		if err := writeLines(filepath.Join(dir, "cgroup.procs"), []string{strconv.Itoa(o.PID)}); err != nil {
			return a, fmt.Errorf("limit: join: %w", err)
		}
		a.Paths = append(a.Paths, dir)
	}
	return a, nil
}

// writeLines writes each line with its own write call: the kernel takes one
// setting per write, and a plain file (test fixture) ends up holding them all.
func writeLines(path string, lines []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("limit: %w", err)
	}
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			f.Close()
			return fmt.Errorf("limit: write %q: %w", l, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("limit: %w", err)
	}
	return nil
}
