package hostmetrics

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// The HTTP API shapes of the metrics payloads (http-api.md "Metrics payload
// field names", as agent-server 1.5 answered them: times and the uptime in
// unix seconds, percentages as plain numbers). The wire payloads use the
// short keys of the deployed metrics-agents; the From* functions map them.

// Static is the static host facts.
type Static struct {
	Time        int64       `json:"time"` // unix seconds, the agent's clock
	Host        StaticHost  `json:"host"`
	OS          StaticOS    `json:"os"`
	Kernel      Kernel      `json:"kernel"`
	CPU         StaticCPU   `json:"cpu"`
	Memory      Memory      `json:"memory"`
	Disks       []Disk      `json:"disks"`
	Partitions  []Partition `json:"partitions"`
	Nameservers []string    `json:"nameservers"`
	Gateway     string      `json:"gateway"`
	Interface   []Interface `json:"interface"`
	User        []User      `json:"user"`
}

// StaticHost is Static.Host.
type StaticHost struct {
	Name   string `json:"name"`
	Uptime int64  `json:"uptime"` // seconds
}

// StaticOS is Static.OS.
type StaticOS struct {
	Name            string `json:"name"`
	PlatformName    string `json:"platform_name"`
	PlatformVersion string `json:"platform_version"`
	Install         int64  `json:"install"` // unix seconds, 0 unknown
	Startup         int64  `json:"startup"` // unix seconds, 0 unknown
}

// Kernel is Static.Kernel.
type Kernel struct {
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// StaticCPU is Static.CPU.
type StaticCPU struct {
	Physical int    `json:"physical"`
	Logical  int    `json:"logical"`
	Cores    []Core `json:"cores"`
}

// Core is one logical CPU.
type Core struct {
	Processor int32   `json:"processor"`
	Model     string  `json:"model"`
	Core      int32   `json:"core"`
	Cores     int32   `json:"cores"`
	Physical  int32   `json:"physical"`
	Mhz       float64 `json:"mhz"`
}

// Memory is Static.Memory.
type Memory struct {
	Physical uint64 `json:"physical"`
	Swap     uint64 `json:"swap"`
}

// Disk is a physical disk.
type Disk struct {
	Model      string   `json:"model"`
	Total      uint64   `json:"total"`
	Type       string   `json:"type"`
	Partitions []string `json:"partitions"`
}

// Partition is a mounted file system.
type Partition struct {
	Mount  string   `json:"mount"`
	FSType string   `json:"fstype"`
	Opts   []string `json:"opts"`
	Total  uint64   `json:"total"`
	Inodes uint64   `json:"inodes"`
}

// Interface is a network interface.
type Interface struct {
	Index int      `json:"index"`
	Name  string   `json:"name"`
	MTU   int      `json:"mtu"`
	Flags []string `json:"flags"`
	MAC   string   `json:"mac"`
	Addrs []string `json:"addrs"`
}

// User is a local account.
type User struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	GID  string `json:"gid"`
}

// Usage is the usage category.
type Usage struct {
	CPU        UsageCPU         `json:"cpu"`
	Memory     UsageMemory      `json:"memory"`
	Partitions []UsagePartition `json:"partitions"`
	Interface  []UsageInterface `json:"interface"`
}

// UsageCPU is Usage.CPU.
type UsageCPU struct {
	Usage  float64 `json:"usage"`
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// UsageMemory is Usage.Memory.
type UsageMemory struct {
	Used      uint64  `json:"used"`
	Free      uint64  `json:"free"`
	Available uint64  `json:"available"`
	Usage     float64 `json:"usage"`
	SwapUsed  uint64  `json:"swap_used"`
	SwapFree  uint64  `json:"swap_free"`
}

// UsagePartition is the usage of one partition.
type UsagePartition struct {
	Name           string  `json:"name"`
	Used           uint64  `json:"used"`
	Free           uint64  `json:"free"`
	Usage          float64 `json:"usage"`
	InodeUsed      uint64  `json:"inode_used"`
	InodeFree      uint64  `json:"inode_free"`
	InodeUsage     float64 `json:"inode_usage"`
	ReadPerSecond  float64 `json:"read_per_second"`
	WritePerSecond float64 `json:"write_per_second"`
	IOPSInProgress uint64  `json:"iops_in_progress"`
}

// UsageInterface is the traffic of one interface since boot.
type UsageInterface struct {
	Name        string `json:"name"`
	BytesSent   uint64 `json:"bytes_sent"`
	BytesRecv   uint64 `json:"bytes_recv"`
	PacketsSent uint64 `json:"packets_sent"`
	PacketsRecv uint64 `json:"packets_recv"`
}

// Process is one process.
type Process struct {
	ID          int32    `json:"id"`
	ParentID    int32    `json:"pid"`
	User        string   `json:"user"`
	CPUUsage    float64  `json:"cpu_usage"`
	RSS         uint64   `json:"rss"`
	VMS         uint64   `json:"vms"`
	Swap        uint64   `json:"swap"`
	MemoryUsage float64  `json:"memory_usage"`
	Cmd         []string `json:"cmd"`
	Listen      []uint32 `json:"listen"`
	Conns       int      `json:"conns"`
}

// Connection is one socket.
type Connection struct {
	FD     uint32 `json:"fd"`
	Pid    int32  `json:"pid"`
	Type   string `json:"type"`
	Local  string `json:"local"`
	Remote string `json:"remote"`
	Status string `json:"status"`
}

// Temperature is one sensor, in °C.
type Temperature struct {
	Name string  `json:"name"`
	Temp float64 `json:"temp"`
}

// Dynamic is the payload of GET /api/metrics/{id}/dynamic. A category the
// agent did not send (or, cached, that was never stored) is null.
type Dynamic struct {
	Usage        *Usage        `json:"usage"`
	Process      []Process     `json:"process"`
	Connections  []Connection  `json:"connections"`
	Temperatures []Temperature `json:"temperatures"`
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// f is an F2 as a float64 JSON can carry.
func f(v protocol.F2) float64 {
	x := float64(v)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// FromStatic maps the wire static payload to the API shape.
func FromStatic(w *protocol.HMStatic) *Static {
	s := &Static{
		Time:        unix(w.Time),
		Host:        StaticHost{Name: w.Host.Name, Uptime: int64(w.Host.Uptime / time.Second)},
		OS:          StaticOS{Name: w.OS.Name, PlatformName: w.OS.PlatformName, PlatformVersion: w.OS.PlatformVersion, Install: unix(w.OS.Install), Startup: unix(w.OS.Startup)},
		Kernel:      Kernel{Version: w.Kernel.Version, Arch: w.Kernel.Arch},
		CPU:         StaticCPU{Physical: w.CPU.Physical, Logical: w.CPU.Logical, Cores: make([]Core, 0, len(w.CPU.Cores))},
		Memory:      Memory{Physical: w.Memory.Physical, Swap: w.Memory.Swap},
		Disks:       make([]Disk, 0, len(w.Disks)),
		Partitions:  make([]Partition, 0, len(w.Partitions)),
		Nameservers: orEmpty(w.Nameservers),
		Gateway:     w.Gateway,
		Interface:   make([]Interface, 0, len(w.Interface)),
		User:        make([]User, 0, len(w.User)),
	}
	for _, c := range w.CPU.Cores {
		s.CPU.Cores = append(s.CPU.Cores, Core{Processor: c.Processor, Model: c.Model, Core: c.Core, Cores: c.Cores, Physical: c.Physical, Mhz: f(c.Mhz)})
	}
	for _, d := range w.Disks {
		s.Disks = append(s.Disks, Disk{Model: d.Model, Total: d.Total, Type: d.Type, Partitions: orEmpty(d.Partitions)})
	}
	for _, p := range w.Partitions {
		s.Partitions = append(s.Partitions, Partition{Mount: p.Mount, FSType: p.FSType, Opts: orEmpty(p.Opts), Total: p.Total, Inodes: p.Inodes})
	}
	for _, i := range w.Interface {
		s.Interface = append(s.Interface, Interface{Index: i.Index, Name: i.Name, MTU: i.MTU, Flags: orEmpty(i.Flags), MAC: i.MAC, Addrs: orEmpty(i.Addrs)})
	}
	for _, u := range w.User {
		s.User = append(s.User, User(u))
	}
	return s
}

// FromUsage maps the wire usage payload to the API shape.
func FromUsage(w *protocol.HMUsage) *Usage {
	u := &Usage{
		CPU: UsageCPU{Usage: f(w.CPU.Usage), Load1: f(w.CPU.Load1), Load5: f(w.CPU.Load5), Load15: f(w.CPU.Load15)},
		Memory: UsageMemory{Used: w.Memory.Used, Free: w.Memory.Free, Available: w.Memory.Available, Usage: f(w.Memory.Usage),
			SwapUsed: w.Memory.SwapUsed, SwapFree: w.Memory.SwapFree},
		Partitions: make([]UsagePartition, 0, len(w.Partitions)),
		Interface:  make([]UsageInterface, 0, len(w.Interface)),
	}
	for _, p := range w.Partitions {
		u.Partitions = append(u.Partitions, UsagePartition{Name: p.Name, Used: p.Used, Free: p.Free, Usage: f(p.Usage),
			InodeUsed: p.InodeUsed, InodeFree: p.InodeFree, InodeUsage: f(p.InodeUsage),
			ReadPerSecond: f(p.ReadPerSecond), WritePerSecond: f(p.WritePerSecond), IOPSInProgress: p.IOPSInProgress})
	}
	for _, n := range w.Interface {
		u.Interface = append(u.Interface, UsageInterface(n))
	}
	return u
}

// FromProcesses maps the wire process list to the API shape.
func FromProcesses(w []protocol.HMProcess) []Process {
	out := make([]Process, 0, len(w))
	for _, p := range w {
		out = append(out, Process{ID: p.ID, ParentID: p.ParentID, User: p.User, CPUUsage: f(p.CPUUsage), RSS: p.RSS, VMS: p.VMS,
			Swap: p.Swap, MemoryUsage: f(p.MemoryUsage), Cmd: orEmpty(p.Cmd), Listen: orEmpty(p.Listen), Conns: p.Conns})
	}
	return out
}

// FromConnections maps the wire connection list to the API shape.
func FromConnections(w []protocol.HMConnection) []Connection {
	out := make([]Connection, 0, len(w))
	for _, c := range w {
		out = append(out, Connection(c))
	}
	return out
}

// FromTemperatures maps the wire sensor list to the API shape.
func FromTemperatures(w []protocol.HMTemperature) []Temperature {
	out := make([]Temperature, 0, len(w))
	for _, t := range w {
		out = append(out, Temperature{Name: t.Name, Temp: f(t.Temp)})
	}
	return out
}

// TopProcesses keeps the n heaviest processes (CPU, then RSS), in that
// order; n <= 0 keeps all, unsorted.
func TopProcesses(ps []Process, n int) []Process {
	if n <= 0 || len(ps) == 0 {
		return ps
	}
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b Process) int {
		if c := cmp.Compare(b.CPUUsage, a.CPUUsage); c != 0 {
			return c
		}
		return cmp.Compare(b.RSS, a.RSS)
	})
	return ps[:min(n, len(ps))]
}
