// Package limit applies the basic.limit.* resource limits of an agent's
// config: a CPU quota in percent of one core (100 = one core), a memory cap
// and per-device disk throttles.
//
// On Linux the limits go to a cgroup named after the agent directly under
// the cgroup root, on cgroup v1 and v2 with the same meaning:
//
//	cpu_quota 150     v2 cpu.max "150000 100000"      v1 cpu.cfs_quota_us 150000, cpu.cfs_period_us 100000
//	memory_limit 1G   v2 memory.max 1073741824         v1 memory.limit_in_bytes 1073741824
//	disk_limit        v2 io.max "8:0 rbps=... wbps=... riops=... wiops=..."
//	                  v1 blkio.throttle.{read,write}_{bps,iops}_device "8:0 N"
//
// Only configured limits are written; an unset limit (0 / empty) is never
// written as 0 and its controller is not touched. The process is then moved
// into the cgroup (v2: one cgroup.procs; v1: the cgroup.procs of each
// controller that got a limit).
//
// On Windows and macOS cpu_quota sets runtime.GOMAXPROCS to
// ceil(cpu_quota/100) and memory_limit sets the Go runtime's soft memory
// limit (debug.SetMemoryLimit); disk limits are not supported and logged as
// a warning. Both affect the whole process, which is what an agent wants.
package limit

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/agentfleet/jkframe/utils"
)

// Config is the basic.limit section of an agent config.
type Config struct {
	// CPUQuota is in percent of one core; 0 = no limit.
	CPUQuota uint64 `kv:"cpu_quota"`
	// MemoryLimit caps memory; 0 = no limit.
	MemoryLimit utils.Bytes `kv:"memory_limit"`
	// DiskLimit throttles block devices (Linux with cgroups only).
	DiskLimit DiskLimits `kv:"disk_limit"`
}

// Empty reports whether no limit is configured.
func (c Config) Empty() bool {
	return c.CPUQuota == 0 && c.MemoryLimit == 0 && len(c.DiskLimit) == 0
}

// Options say where and to what the limits apply.
type Options struct {
	// CgroupRoot is the cgroup file system root (default /sys/fs/cgroup).
	CgroupRoot string
	// Name is the cgroup to create under the root: the agent's name.
	Name string
	// PID is the process to move into the cgroup (0 = this process).
	PID int
	// Logger receives warnings (nil = discard).
	Logger *slog.Logger
}

// Applied describes what Apply did.
type Applied struct {
	// Mode is "cgroup2", "cgroup1", "runtime" (Windows/macOS) or "" when
	// nothing was configured.
	Mode string
	// Paths are the cgroup directories the process joined.
	Paths []string
	// Settings lists each value written, "file=value" or "GOMAXPROCS=n".
	Settings []string
}

// ErrNoCgroups means the cgroup root holds neither a v1 nor a v2 hierarchy.
var ErrNoCgroups = errors.New("no cgroup hierarchy")

// period is the CFS period used for cpu_quota, in microseconds.
const period = 100000

// Apply applies c. Nothing is done, and no error returned, when c is empty.
func Apply(c Config, o Options) (Applied, error) {
	if c.Empty() {
		return Applied{}, nil
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = "/sys/fs/cgroup"
	}
	return apply(c, o)
}

// checkName rejects cgroup names that would escape the root.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("limit: bad cgroup name %q (want the agent name, no slashes)", name)
	}
	return nil
}
