package protocol

import "time"

// Metrics payloads (types 30–37). The JSON keys are those the deployed
// metrics-agents put on the wire, which are shorter than the names of the
// HTTP API (http-api.md "Metrics payload field names"); the Go field names
// follow the HTTP API names so the mapping is one line per field. Note the
// v1 misspelling "intferface" in HMUsage (the static payload spells
// "interface" correctly).

// HMStatic holds the static host facts (type 31, key "hm_static").
type HMStatic struct {
	Time        time.Time     `json:"time"`
	Host        HMHost        `json:"host"`
	OS          HMOS          `json:"os"`
	Kernel      HMKernel      `json:"kernel"`
	CPU         HMCPU         `json:"cpu"`
	Memory      HMMemory      `json:"memory"`
	Disks       []HMDisk      `json:"disks,omitempty"`
	Partitions  []HMPartition `json:"parts,omitempty"`
	Nameservers []string      `json:"nameservers,omitempty"`
	Gateway     string        `json:"gateway,omitempty"`
	Interface   []HMInterface `json:"interface,omitempty"`
	User        []HMUser      `json:"user,omitempty"`
}

// HMHost is HMStatic.Host.
type HMHost struct {
	Name   string        `json:"name,omitempty"`
	Uptime time.Duration `json:"uptime,omitempty"`
}

// HMOS is HMStatic.OS.
type HMOS struct {
	Name            string    `json:"name,omitempty"`     // linux, windows
	PlatformName    string    `json:"pname,omitempty"`    // debian, centos
	PlatformVersion string    `json:"pversion,omitempty"` // 7.7.1908
	Install         time.Time `json:"install"`
	Startup         time.Time `json:"startup"`
}

// HMKernel is HMStatic.Kernel.
type HMKernel struct {
	Version string `json:"version,omitempty"`
	Arch    string `json:"arch,omitempty"`
}

// HMCPU is HMStatic.CPU.
type HMCPU struct {
	Physical int      `json:"physical,omitempty"` // physical cores
	Logical  int      `json:"logical,omitempty"`  // logical CPUs
	Cores    []HMCore `json:"cores,omitempty"`
}

// HMCore is one logical CPU.
type HMCore struct {
	Processor int32  `json:"processor,omitempty"`
	Model     string `json:"model,omitempty"`
	Core      int32  `json:"core,omitempty"`
	Cores     int32  `json:"cores,omitempty"`
	Physical  int32  `json:"physical,omitempty"`
	Mhz       F2     `json:"mhz,omitempty"`
}

// HMMemory is HMStatic.Memory.
type HMMemory struct {
	Physical uint64 `json:"physical,omitempty"`
	Swap     uint64 `json:"swap,omitempty"`
}

// HMDisk is a physical disk.
type HMDisk struct {
	Model      string   `json:"model,omitempty"`
	Total      uint64   `json:"total,omitempty"`
	Type       string   `json:"type,omitempty"`  // hdd, fdd, odd
	Partitions []string `json:"parts,omitempty"` // mount points on it
}

// HMPartition is a mounted file system.
type HMPartition struct {
	Mount  string   `json:"name,omitempty"` // mount path, or drive letter "C:"
	FSType string   `json:"fstype,omitempty"`
	Opts   []string `json:"opts,omitempty"`
	Total  uint64   `json:"total,omitempty"`
	Inodes uint64   `json:"inodes,omitempty"`
}

// HMInterface is a network interface.
type HMInterface struct {
	Index int      `json:"index,omitempty"`
	Name  string   `json:"name,omitempty"`
	MTU   int      `json:"mtu,omitempty"`
	Flags []string `json:"flags,omitempty"`
	MAC   string   `json:"mac,omitempty"`
	Addrs []string `json:"addrs,omitempty"` // CIDR
}

// HMUser is a local account.
type HMUser struct {
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
	GID  string `json:"gid,omitempty"`
}

// Categories of HMDynamicReq.Req.
const (
	HMReqUsage        = 0
	HMReqProcess      = 1
	HMReqConnections  = 2
	HMReqTemperatures = 3
)

// HMDynamicReq asks for fresh dynamic data (type 32).
type HMDynamicReq struct {
	Req    []int    `json:"req"`              // HMReq* categories
	Top    int      `json:"top,omitempty"`    // limit of the process list
	AConns []string `json:"aconns,omitempty"` // connection kinds allowed
}

// HMDynamicRep carries one or more categories (type 33).
type HMDynamicRep struct {
	Begin        time.Time       `json:"begin"`
	End          time.Time       `json:"end"`
	Usage        *HMUsage        `json:"usage,omitempty"`
	Process      []HMProcess     `json:"process,omitempty"`
	Connections  []HMConnection  `json:"conns,omitempty"`
	Temperatures []HMTemperature `json:"temps,omitempty"`
}

// HMUsage is the usage category.
type HMUsage struct {
	CPU        HMUsageCPU       `json:"cpu"`
	Memory     HMUsageMemory    `json:"mem"`
	Partitions []HMUsagePart    `json:"parts,omitempty"`
	Interface  []HMUsageNetwork `json:"intferface,omitempty"` // sic: the v1 key
}

// HMUsageCPU is HMUsage.CPU.
type HMUsageCPU struct {
	Usage  F2 `json:"usage,omitempty"`
	Load1  F2 `json:"load1,omitempty"`
	Load5  F2 `json:"load5,omitempty"`
	Load15 F2 `json:"load15,omitempty"`
}

// HMUsageMemory is HMUsage.Memory.
type HMUsageMemory struct {
	Used      uint64 `json:"used,omitempty"`
	Free      uint64 `json:"free,omitempty"`
	Available uint64 `json:"available,omitempty"`
	Usage     F2     `json:"usage,omitempty"`
	SwapUsed  uint64 `json:"sused,omitempty"`
	SwapFree  uint64 `json:"sfree,omitempty"`
}

// HMUsagePart is the usage of one partition.
type HMUsagePart struct {
	Name           string `json:"name,omitempty"` // matches HMPartition.Mount
	Used           uint64 `json:"used,omitempty"`
	Free           uint64 `json:"free,omitempty"`
	Usage          F2     `json:"usage,omitempty"`
	InodeUsed      uint64 `json:"iused,omitempty"`
	InodeFree      uint64 `json:"ifree,omitempty"`
	InodeUsage     F2     `json:"iusage,omitempty"`
	ReadPerSecond  F2     `json:"rps,omitempty"`
	WritePerSecond F2     `json:"wps,omitempty"`
	IOPSInProgress uint64 `json:"iip,omitempty"`
}

// HMUsageNetwork is the traffic of one interface (counters since boot).
type HMUsageNetwork struct {
	Name        string `json:"name,omitempty"`
	BytesSent   uint64 `json:"bsent,omitempty"`
	BytesRecv   uint64 `json:"brecv,omitempty"`
	PacketsSent uint64 `json:"psent,omitempty"`
	PacketsRecv uint64 `json:"precv,omitempty"`
}

// HMProcess is one process.
type HMProcess struct {
	ID          int32    `json:"id,omitempty"`
	ParentID    int32    `json:"pid,omitempty"`
	User        string   `json:"user,omitempty"`
	CPUUsage    F2       `json:"cpu,omitempty"`
	RSS         uint64   `json:"rss,omitempty"`
	VMS         uint64   `json:"vms,omitempty"`
	Swap        uint64   `json:"swap,omitempty"`
	MemoryUsage F2       `json:"mem,omitempty"`
	Cmd         []string `json:"cmd,omitempty"`
	Listen      []uint32 `json:"listen,omitempty"`
	Conns       int      `json:"conns,omitempty"`
}

// HMConnection is one socket.
type HMConnection struct {
	FD     uint32 `json:"fd,omitempty"`
	Pid    int32  `json:"pid,omitempty"`
	Type   string `json:"type,omitempty"`
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	Status string `json:"status,omitempty"`
}

// HMTemperature is one sensor, in °C.
type HMTemperature struct {
	Name string `json:"name,omitempty"`
	Temp F2     `json:"temp,omitempty"`
}

// HMJob is a collection job and its interval.
type HMJob struct {
	Name     string        `json:"name,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
}

// HMStatusRep lists the running collection jobs (type 35, key "hm_status_rep").
type HMStatusRep struct {
	Jobs   []HMJob  `json:"jobs,omitempty"`
	AConns []string `json:"aconns,omitempty"`
}

// HMChangeStatus sets which jobs run (type 36, key "hm_change_status").
type HMChangeStatus struct {
	Jobs []string `json:"jobs,omitempty"`
}

// HMAgentJob is the state of one job in HMAgentStatus.
type HMAgentJob struct {
	Name      string `json:"name"`
	Interval  uint64 `json:"i"`  // seconds
	BytesSent uint64 `json:"bs"` // bytes sent by this job
	Count     uint64 `json:"ct"` // reports sent
}

// HMAgentStatus is the metrics-agent's own report (type 37).
type HMAgentStatus struct {
	Jobs     []HMAgentJob `json:"jobs,omitempty"`
	Warnings uint64       `json:"warns"` // failed collections
}
