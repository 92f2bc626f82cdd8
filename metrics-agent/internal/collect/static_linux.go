package collect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentfleet/libagent/protocol"
)

func (c *Collector) readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func (c *Collector) static(_ context.Context, w *warns) Static {
	var s Static
	var err error
	if s.Host.Name, err = c.readString(c.proc("sys", "kernel", "hostname")); err != nil {
		w.add("static.host.name", err)
	}
	if b, err := os.ReadFile(c.proc("uptime")); err != nil {
		w.add("static.host.uptime", err)
	} else if up, err := parseUptime(b); err != nil {
		w.add("static.host.uptime", err)
	} else {
		s.Host.Uptime = time.Duration(math.Round(up)) * time.Second
	}

	s.OS.Name = runtime.GOOS
	c.platform(&s.OS, w)
	if t := c.installTime(); t.IsZero() {
		w.add("static.os.install", fmt.Errorf("no plausible time on the install markers: %w", ErrUnsupported))
	} else {
		s.OS.Install = t
	}
	if b, err := os.ReadFile(c.proc("stat")); err != nil {
		w.add("static.os.startup", err)
	} else if _, btime, err := parseStat(b); err != nil {
		w.add("static.os.startup", err)
	} else {
		s.OS.Startup = time.Unix(btime, 0).UTC()
	}

	if s.Kernel.Version, err = c.readString(c.proc("sys", "kernel", "osrelease")); err != nil {
		w.add("static.kernel.version", err)
	}
	if s.Kernel.Arch, err = c.readString(c.proc("sys", "kernel", "arch")); err != nil {
		// kernel.arch is recent (6.x); uname tells the same of the running host.
		var u unix.Utsname
		if c.roots.Proc == DefaultRoots().Proc && unix.Uname(&u) == nil {
			s.Kernel.Arch = unix.ByteSliceToString(u.Machine[:])
		} else {
			w.add("static.kernel.arch", err)
		}
	}

	c.staticCPU(&s, w)

	if b, err := os.ReadFile(c.proc("meminfo")); err != nil {
		w.add("static.memory", err)
	} else if m, err := parseMeminfo(b); err != nil {
		w.add("static.memory", err)
	} else {
		s.Memory.Physical, s.Memory.Swap = m["MemTotal"], m["SwapTotal"]
	}

	c.staticDisks(&s, w)

	if b, err := os.ReadFile(c.etc("resolv.conf")); err != nil {
		w.add("static.nameservers", err)
	} else {
		s.Nameservers = parseResolvConf(b)
	}
	if b, err := os.ReadFile(c.proc("net", "route")); err != nil {
		w.add("static.gateway", err)
	} else if s.Gateway, err = parseRoute(b); err != nil {
		w.add("static.gateway", err)
	}
	if b, err := os.ReadFile(c.proc("net", "ipv6_route")); err != nil {
		if !errors.Is(err, os.ErrNotExist) { // IPv6 disabled
			w.add("static.gateway6", err)
		}
	} else if s.Gateway6, err = parseIPv6Route(b); err != nil {
		w.add("static.gateway6", err)
	}
	if s.Gateway == "" {
		s.Gateway = s.Gateway6
	}

	if s.Interface, err = c.interfaces(); err != nil {
		w.add("static.interface", err)
	}

	if b, err := os.ReadFile(c.etc("passwd")); err != nil {
		w.add("static.user", err)
	} else {
		var bad []int
		s.User, bad = parsePasswd(b)
		for _, n := range bad {
			w.addf("static.user", "passwd line %d: %w", n, errSyntax)
		}
	}
	return s
}

// platform fills the distribution from os-release; Debian's point release
// (12.7) is in /etc/debian_version only.
func (c *Collector) platform(o *protocol.HMOS, w *warns) {
	b, err := os.ReadFile(c.etc("os-release"))
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(filepath.Dir(c.roots.Etc), "usr", "lib", "os-release"))
	}
	if err != nil {
		w.add("static.os.platform", err)
		return
	}
	m := parseOSRelease(b)
	o.PlatformName, o.PlatformVersion = m["ID"], m["VERSION_ID"]
	if o.PlatformName == "debian" {
		if v, err := c.readString(c.etc("debian_version")); err == nil && v != "" && v[0] >= '0' && v[0] <= '9' {
			o.PlatformVersion = v
		}
	}
}

// installTime is the oldest plausible time among the birth (else
// modification) times of the marks an installation leaves: the root
// directory and lost+found (made by mkfs), /var/log/installer (Debian and
// Ubuntu installers) and /etc/machine-id (first boot).
func (c *Collector) installTime() time.Time {
	root := filepath.Dir(c.roots.Etc)
	var ts []time.Time
	for _, p := range []string{root, filepath.Join(root, "lost+found"),
		filepath.Join(root, "var", "log", "installer"), c.etc("machine-id")} {
		if t, err := c.fileTime(p); err == nil {
			ts = append(ts, t)
		}
	}
	return oldest(c.now(), ts)
}

// fileTime returns the birth time of path, or its modification time when the
// file system does not record births.
func fileTime(path string) (time.Time, error) {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME|unix.STATX_MTIME, &st)
	if err != nil {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, err
		}
		return fi.ModTime().UTC(), nil
	}
	if st.Mask&unix.STATX_BTIME != 0 && st.Btime.Sec > 0 {
		return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec)).UTC(), nil
	}
	return time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec)).UTC(), nil
}

func (c *Collector) staticCPU(s *Static, w *warns) {
	b, err := os.ReadFile(c.proc("cpuinfo"))
	if err != nil {
		w.add("static.cpu", err)
		return
	}
	list, err := parseCPUInfo(b)
	if err != nil {
		w.add("static.cpu", err)
		return
	}
	// Most non-x86 kernels leave topology and frequency out of cpuinfo.
	for i := range list {
		e := &list[i]
		dir := c.sys("devices", "system", "cpu", "cpu"+strconv.Itoa(e.Processor))
		if e.Physical < 0 {
			e.Physical = readInt(filepath.Join(dir, "topology", "physical_package_id"), -1)
		}
		if e.Core < 0 {
			e.Core = readInt(filepath.Join(dir, "topology", "core_id"), -1)
		}
		if e.MHz == 0 {
			if khz := readInt(filepath.Join(dir, "cpufreq", "scaling_cur_freq"), -1); khz > 0 {
				e.MHz = float64(khz) / 1000
			}
		}
	}
	var ok bool
	s.CPU, s.PhysicalCores, ok = summarizeCPU(list)
	if !ok {
		w.addf("static.cpu.physical", "cpu topology unknown: %w", ErrUnsupported)
	}
	s.CPUModel = list[0].Model
}

func readInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return def
	}
	return v
}

// staticDisks fills the disks (whole physical block devices) and the mounted
// partitions, each disk listing the mount points that live on it directly,
// on one of its partitions, or on a device-mapper (LVM, crypt) volume
// stacked on them.
func (c *Collector) staticDisks(s *Static, w *warns) {
	ms, err := c.mounts()
	if err != nil {
		w.add("static.parts", err)
		return
	}
	for _, m := range ms {
		p := protocol.HMPartition{Mount: m.Point, FSType: m.FSType, Opts: m.Opts}
		if st, err := c.statfs(m.Point); err != nil {
			w.add("static.parts."+m.Point, err)
		} else {
			p.Total, p.Inodes = st.Total, st.Files
		}
		s.Partitions = append(s.Partitions, p)
	}

	b, err := os.ReadFile(c.proc("diskstats"))
	if err != nil {
		w.add("static.disks", err)
		return
	}
	stats, err := parseDiskstats(b)
	if err != nil {
		w.add("static.disks", err)
		return
	}
	ix := c.newDevIndex(stats)
	mountsOf := make(map[string][]string) // kernel device name → mount points
	for _, m := range ms {
		if dev := c.resolve(ix, m); dev != "" {
			mountsOf[dev] = append(mountsOf[dev], m.Point)
		}
	}
	ents, err := os.ReadDir(c.sys("block"))
	if err != nil {
		w.add("static.disks", err)
		return
	}
	for _, e := range ents {
		name := e.Name()
		dir := c.sys("block", name)
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual: loop, ram, zram, dm, md
		}
		d := protocol.HMDisk{Type: "hdd"}
		d.Model, _ = c.readString(filepath.Join(dir, "device", "model"))
		if sz := readInt(filepath.Join(dir, "size"), -1); sz > 0 {
			d.Total = uint64(sz) * 512
		}
		switch {
		case strings.HasPrefix(name, "sr"):
			d.Type = "odd"
		case strings.HasPrefix(name, "fd"):
			d.Type = "fdd"
		}
		for _, dev := range c.stacked(name) {
			d.Partitions = append(d.Partitions, mountsOf[dev]...)
		}
		slices.Sort(d.Partitions)
		d.Partitions = slices.Compact(d.Partitions)
		s.Disks = append(s.Disks, d)
	}
}

// stacked returns the disk, its partitions and every device-mapper or md
// device built on them (through the holders directories).
func (c *Collector) stacked(disk string) []string {
	out := []string{disk}
	seen := map[string]bool{disk: true}
	queue := []string{c.sys("block", disk)}
	parts, _ := filepath.Glob(c.sys("block", disk, disk+"*", "partition"))
	for _, p := range parts {
		dir := filepath.Dir(p)
		name := filepath.Base(dir)
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
			queue = append(queue, dir)
		}
	}
	for len(queue) > 0 && len(out) < 1024 {
		dir := queue[0]
		queue = queue[1:]
		hs, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range hs {
			if name := h.Name(); !seen[name] {
				seen[name] = true
				out = append(out, name)
				queue = append(queue, c.sys("block", name))
			}
		}
	}
	return out
}
