package hostmetrics

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/libagent/protocol"
)

// hosts is the in-memory table behind /metrics/hosts: one immutable
// snapshot per host, replaced (copy on write) by every push, so a scrape
// copies the pointers under a read lock and builds the series without
// holding it; pushes never wait for a scrape.
type hosts struct {
	o *Options
	d hostDescs

	mu sync.RWMutex
	m  map[string]*hostState
}

// hostState is one host's snapshot. Never modified once in the table.
type hostState struct {
	id string

	// From the static report.
	hasStatic                      bool
	nodename, sysname, release     string
	machine, platform, platformVer string
	boot                           float64 // unix seconds, 0 unknown
	cpus                           float64
	memTotal, swapTotal            float64
	fs                             map[string]fsFacts // mount → facts

	// From the usage report, capped and sorted by name.
	usage    *protocol.HMUsage
	parts    []protocol.HMUsagePart
	ifaces   []protocol.HMUsageNetwork
	usageAt  time.Time
	observed time.Duration // gap between the last two usage reports
	reported time.Duration // usage interval from type 37

	temps    []protocol.HMTemperature
	procs    int
	hasProcs bool

	last                             time.Time // any report
	cappedMounts, cappedIfaces, capT int
}

type fsFacts struct {
	fstype        string
	total, inodes uint64
}

func newHosts(o *Options) *hosts {
	return &hosts{o: o, d: newHostDescs(), m: map[string]*hostState{}}
}

// update replaces id's snapshot by fn applied to a copy of it.
func (h *hosts) update(id string, fn func(st *hostState)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var st hostState
	if old := h.m[id]; old != nil {
		st = *old
	} else {
		st.id = id
	}
	fn(&st)
	h.m[id] = &st
}

func (h *hosts) setStatic(id string, w *protocol.HMStatic, now time.Time) {
	fs := make(map[string]fsFacts, len(w.Partitions))
	for _, p := range w.Partitions {
		fs[p.Mount] = fsFacts{fstype: p.FSType, total: p.Total, inodes: p.Inodes}
	}
	var boot float64
	if !w.OS.Startup.IsZero() {
		boot = float64(w.OS.Startup.Unix())
	}
	cpus := w.CPU.Logical
	if cpus == 0 {
		cpus = len(w.CPU.Cores)
	}
	h.update(id, func(st *hostState) {
		st.hasStatic = true
		st.nodename, st.sysname, st.release, st.machine = w.Host.Name, w.OS.Name, w.Kernel.Version, w.Kernel.Arch
		st.platform, st.platformVer = w.OS.PlatformName, w.OS.PlatformVersion
		st.boot, st.cpus = boot, float64(cpus)
		st.memTotal, st.swapTotal = float64(w.Memory.Physical), float64(w.Memory.Swap)
		st.fs = fs
		st.last = now
	})
}

// capped returns s sorted by name and cut to n, and how many were cut.
func capped[T any](s []T, n int, name func(T) string) ([]T, int) {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(name(a), name(b)) })
	s = slices.CompactFunc(s, func(a, b T) bool { return name(a) == name(b) })
	if len(s) <= n {
		return s, 0
	}
	return s[:n:n], len(s) - n
}

func (h *hosts) setDynamic(id string, d *protocol.HMDynamicRep, now time.Time) {
	var (
		parts         []protocol.HMUsagePart
		ifaces        []protocol.HMUsageNetwork
		temps         []protocol.HMTemperature
		cm, ci, ctemp int
	)
	if d.Usage != nil {
		parts, cm = capped(d.Usage.Partitions, h.o.MaxMounts, func(p protocol.HMUsagePart) string { return p.Name })
		ifaces, ci = capped(d.Usage.Interface, h.o.MaxInterfaces, func(n protocol.HMUsageNetwork) string { return n.Name })
	}
	if d.Temperatures != nil {
		temps, ctemp = capped(d.Temperatures, h.o.MaxSensors, func(t protocol.HMTemperature) string { return t.Name })
	}
	h.update(id, func(st *hostState) {
		if d.Usage != nil {
			if !st.usageAt.IsZero() && now.After(st.usageAt) {
				st.observed = now.Sub(st.usageAt)
			}
			st.usage, st.parts, st.ifaces, st.usageAt = d.Usage, parts, ifaces, now
			st.cappedMounts, st.cappedIfaces = cm, ci
		}
		if d.Temperatures != nil {
			st.temps, st.capT = temps, ctemp
		}
		if d.Process != nil {
			st.procs, st.hasProcs = len(d.Process), true
		}
		st.last = now
	})
}

// setInterval records the usage interval an agent reported (0: unknown).
// Only known hosts are updated: a type-37 report alone is no host data.
func (h *hosts) setInterval(id string, every time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.m[id]
	if old == nil || old.reported == every {
		return
	}
	st := *old
	st.reported = every
	h.m[id] = &st
}

func (h *hosts) remove(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, id)
}

func (h *hosts) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.m)
}

// interval is the usage interval the staleness check assumes.
func (st *hostState) interval(def time.Duration) time.Duration {
	switch {
	case st.reported > 0:
		return st.reported
	case st.observed > 0:
		return st.observed
	}
	return def
}

// stale: no usage (or, without usage, no report at all) within
// StaleIntervals usage intervals.
func (st *hostState) stale(now time.Time, o *Options) bool {
	last := st.usageAt
	if last.IsZero() {
		last = st.last
	}
	return now.Sub(last) > time.Duration(o.StaleIntervals)*st.interval(o.DefaultInterval)
}

// Describe sends nothing: the series of an unchecked collector change with
// the hosts (each has its own help text and is consistent by construction).
func (h *hosts) Describe(chan<- *prometheus.Desc) {}

// Collect sends the series of every fresh host and drops the stale ones.
func (h *hosts) Collect(ch chan<- prometheus.Metric) {
	now := h.o.Now()
	h.mu.RLock()
	list := make([]*hostState, 0, len(h.m))
	for _, st := range h.m {
		list = append(list, st)
	}
	h.mu.RUnlock()
	var stale []*hostState
	for _, st := range list {
		if st.stale(now, h.o) {
			stale = append(stale, st)
			continue
		}
		h.d.collect(st, ch)
	}
	if len(stale) > 0 {
		h.mu.Lock()
		for _, st := range stale {
			if h.m[st.id] == st { // not refreshed meanwhile
				delete(h.m, st.id)
			}
		}
		h.mu.Unlock()
	}
}

type hostDescs struct {
	uname, boot, cpus, cpuUsage, load1, load5, load15                *prometheus.Desc
	memTotal, memUsed, memFree, memAvail, swapTotal, swapUsed, swapF *prometheus.Desc
	fsSize, fsFree, fsAvail, fsFiles, fsFilesFree                    *prometheus.Desc
	diskRead, diskWrite                                              *prometheus.Desc
	netRxBytes, netTxBytes, netRxPackets, netTxPackets               *prometheus.Desc
	procs, temp, lastReport, capped                                  *prometheus.Desc
}

func newHostDescs() hostDescs {
	id := []string{"id"}
	g := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(id, labels...), nil)
	}
	return hostDescs{
		uname:        g("node_uname_info", "Host facts from the static report; always 1.", "nodename", "sysname", "release", "machine", "platform", "platform_version"),
		boot:         g("node_boot_time_seconds", "Host boot time, unix seconds."),
		cpus:         g("node_cpus", "Logical CPUs of the host."),
		cpuUsage:     g("node_cpu_usage_percent", "CPU usage of the host over the agent's sampling interval, percent of all CPUs."),
		load1:        g("node_load1", "1-minute load average."),
		load5:        g("node_load5", "5-minute load average."),
		load15:       g("node_load15", "15-minute load average."),
		memTotal:     g("node_memory_MemTotal_bytes", "Physical memory."),
		memUsed:      g("node_memory_MemUsed_bytes", "Used memory."),
		memFree:      g("node_memory_MemFree_bytes", "Free memory."),
		memAvail:     g("node_memory_MemAvailable_bytes", "Memory available to new programs."),
		swapTotal:    g("node_memory_SwapTotal_bytes", "Swap size."),
		swapUsed:     g("node_memory_SwapUsed_bytes", "Used swap."),
		swapF:        g("node_memory_SwapFree_bytes", "Free swap."),
		fsSize:       g("node_filesystem_size_bytes", "File system size.", "mountpoint", "fstype"),
		fsFree:       g("node_filesystem_free_bytes", "File system free space (size - used).", "mountpoint", "fstype"),
		fsAvail:      g("node_filesystem_avail_bytes", "File system space available to non-root users.", "mountpoint", "fstype"),
		fsFiles:      g("node_filesystem_files", "File system inodes.", "mountpoint", "fstype"),
		fsFilesFree:  g("node_filesystem_files_free", "File system free inodes.", "mountpoint", "fstype"),
		diskRead:     g("node_disk_read_bytes_per_second", "Bytes read per second from the partition's device, over the agent's sampling interval.", "mountpoint"),
		diskWrite:    g("node_disk_written_bytes_per_second", "Bytes written per second to the partition's device, over the agent's sampling interval.", "mountpoint"),
		netRxBytes:   g("node_network_receive_bytes_total", "Bytes received by the interface since boot.", "device"),
		netTxBytes:   g("node_network_transmit_bytes_total", "Bytes sent by the interface since boot.", "device"),
		netRxPackets: g("node_network_receive_packets_total", "Packets received by the interface since boot.", "device"),
		netTxPackets: g("node_network_transmit_packets_total", "Packets sent by the interface since boot.", "device"),
		procs:        g("node_processes", "Processes in the host's last pushed process list (capped by the agent's task.process.top)."),
		temp:         g("node_hwmon_temp_celsius", "Sensor temperature.", "sensor"),
		lastReport:   g("agentserver_host_last_report_timestamp_seconds", "When the server last received a report from the host, unix seconds."),
		capped:       g("agentserver_host_capped_items", "Mounts, interfaces or sensors of the host left out of these series by the per-host caps.", "kind"),
	}
}

func (d *hostDescs) collect(st *hostState, ch chan<- prometheus.Metric) {
	send := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
		// Label values come from JSON, so they are valid UTF-8; an error
		// would drop only this series.
		if m, err := prometheus.NewConstMetric(desc, t, v, append([]string{st.id}, labels...)...); err == nil {
			ch <- m
		}
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) { send(desc, prometheus.GaugeValue, v, labels) }
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		send(desc, prometheus.CounterValue, v, labels)
	}
	gauge(d.lastReport, float64(st.last.UnixNano())/1e9)
	if st.hasStatic {
		gauge(d.uname, 1, st.nodename, st.sysname, st.release, st.machine, st.platform, st.platformVer)
		if st.boot > 0 {
			gauge(d.boot, st.boot)
		}
		if st.cpus > 0 {
			gauge(d.cpus, st.cpus)
		}
		if st.memTotal > 0 {
			gauge(d.memTotal, st.memTotal)
		}
		gauge(d.swapTotal, st.swapTotal)
	}
	if u := st.usage; u != nil {
		gauge(d.cpuUsage, f(u.CPU.Usage))
		gauge(d.load1, f(u.CPU.Load1))
		gauge(d.load5, f(u.CPU.Load5))
		gauge(d.load15, f(u.CPU.Load15))
		gauge(d.memUsed, float64(u.Memory.Used))
		gauge(d.memFree, float64(u.Memory.Free))
		gauge(d.memAvail, float64(u.Memory.Available))
		gauge(d.swapUsed, float64(u.Memory.SwapUsed))
		gauge(d.swapF, float64(u.Memory.SwapFree))
		for _, p := range st.parts {
			fs := st.fs[p.Name]
			size := fs.total
			if size == 0 {
				size = p.Used + p.Free
			}
			free := p.Free
			if size > p.Used {
				free = size - p.Used
			}
			gauge(d.fsSize, float64(size), p.Name, fs.fstype)
			gauge(d.fsFree, float64(free), p.Name, fs.fstype)
			gauge(d.fsAvail, float64(p.Free), p.Name, fs.fstype)
			if files := p.InodeUsed + p.InodeFree; files > 0 {
				gauge(d.fsFiles, float64(files), p.Name, fs.fstype)
				gauge(d.fsFilesFree, float64(p.InodeFree), p.Name, fs.fstype)
			}
			gauge(d.diskRead, f(p.ReadPerSecond), p.Name)
			gauge(d.diskWrite, f(p.WritePerSecond), p.Name)
		}
		for _, n := range st.ifaces {
			counter(d.netRxBytes, float64(n.BytesRecv), n.Name)
			counter(d.netTxBytes, float64(n.BytesSent), n.Name)
			counter(d.netRxPackets, float64(n.PacketsRecv), n.Name)
			counter(d.netTxPackets, float64(n.PacketsSent), n.Name)
		}
	}
	if st.hasProcs {
		gauge(d.procs, float64(st.procs))
	}
	for _, t := range st.temps {
		gauge(d.temp, f(t.Temp), t.Name)
	}
	if st.cappedMounts > 0 {
		gauge(d.capped, float64(st.cappedMounts), "mount")
	}
	if st.cappedIfaces > 0 {
		gauge(d.capped, float64(st.cappedIfaces), "interface")
	}
	if st.capT > 0 {
		gauge(d.capped, float64(st.capT), "sensor")
	}
}
