// Package collect gathers the host facts and usage figures the metrics-agent
// reports: the static payload (type 31) and the usage, process, connection and
// temperature categories of the dynamic payload (type 33). It fills the
// structs of github.com/agentfleet/libagent/protocol exactly.
//
// On Linux every figure is read from the text files of /proc, /sys and /etc,
// whose locations come from [Roots], so the tests run against fixture trees;
// the two system calls that cannot be redirected (statfs of a mount point, the
// interface list) are injectable through [Options]. Other operating systems
// are served by gopsutil.
//
// # Warnings
//
// A collector never fails as a whole: what it cannot read is left out (the
// JSON key is then omitted) and reported as a [Warning] next to the data. The
// caller counts them (hm_agent_status.warns) and may log them.
// [ErrUnsupported] marks figures this OS does not provide.
//
// # Rates
//
// Rates need two samples and the collector keeps the previous one itself; no
// call sleeps. The host CPU usage of the first [Collector.Usage] call is the
// average since boot; disk read/write rates of the first call are 0 (no
// spike); a process's CPU usage is measured between this process snapshot and
// the previous one, and over the process's whole life when it was not in the
// previous snapshot. Process CPU usage is in percent of one logical CPU (a
// process using two CPUs fully shows 200), as top does; the host CPU usage is
// in percent of all CPUs.
//
// # Snapshots and limits
//
// The process list and the connection list both need a walk of /proc/<pid>
// (the connection list to find the owner of each socket). One walk serves
// every caller that asks within [Options.ShareWindow]: a [Collector.Dynamic]
// call asking for both, or a scheduled push and an on-demand request that
// overlap. The walk honours a token bucket: one token per /proc/<pid>
// directory visited (its stat, status, cmdline and fd reads), at most
// qps per second with a burst of qps, so a host with fewer processes than the
// limit is walked at full speed and a larger one is spread out; 0 means
// unlimited. A usage sample never walks processes.
//
// # Field decisions
//
//   - Static: cpu.physical counts packages (distinct physical ids), cores[].core
//     is the core id, cores[].cores the position of the logical CPU within its
//     package, cores[].physical the package id; Static.PhysicalCores counts
//     distinct (package, core) pairs (come.cpu_core). Topology and MHz missing
//     from /proc/cpuinfo (ARM) come from /sys/devices/system/cpu.
//   - Install time: the oldest plausible (after 1990, not in the future) birth
//     time, else modification time, of the root directory, /lost+found,
//     /var/log/installer and /etc/machine-id; omitted with a warning when none.
//   - Gateway: the IPv4 default route of lowest metric; the IPv6 one when the
//     host has no IPv4 default route (Static.Gateway6 always holds IPv6).
//   - Partitions: block-device, network and ZFS file systems and "/";
//     pseudo file systems and bind mounts of sub-directories are left out. A
//     mount is tied to its block device by device number, else by source
//     (/dev/mapper/<name> via /sys/block/dm-N/dm/name, /dev/disk/by-* links);
//     a disk lists the mounts on it, its partitions and the dm/md devices
//     stacked on them.
//   - Memory: used = total − available (free(1)); swap used = total − free.
//   - Processes: cmd is the argv (NUL-separated elements); a kernel thread
//     shows as "[name]"; user is the passwd name, else the uid; conns counts
//     the sockets the process holds; listen the TCP ports it listens on.
//   - Connections: type tcp4, tcp6, udp4, udp6 or unix (every AF_UNIX
//     socket, path or abstract "@name" in local); remote is omitted for
//     listening and unconnected sockets; IPv6 as [addr]:port; sockets no
//     process holds (TIME_WAIT) have no pid and fd.
//   - Temperatures: hwmon sensors as "<chip>_<label>" (label lower-cased,
//     blanks removed) or "<chip>_tempN", thermal zones by type.
//
// # Concurrency
//
// A Collector is safe for concurrent use; calls of the same category are
// serialized because they share the previous sample.
package collect
