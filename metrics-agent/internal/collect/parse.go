package collect

// Parsers of the text files of /proc and /etc. They are pure functions of the
// file's bytes (and build on every OS) so that they are table-tested and
// fuzzed without a Linux host. Errors name the line; lines of no interest
// are skipped so that fields added by newer kernels do not break them.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/agentfleet/libagent/protocol"
)

// errSyntax is wrapped by every parse error.
var errSyntax = errors.New("syntax error")

func syntaxErr(file string, line int, format string, args ...any) error {
	return fmt.Errorf("%s line %d: %s: %w", file, line, fmt.Sprintf(format, args...), errSyntax)
}

// lines calls fn for each line (1-based numbers), stopping at its first error.
func lines(data []byte, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// cpuEntry is one logical CPU of /proc/cpuinfo. Physical and Core are -1
// when the file does not say (most non-x86 kernels).
type cpuEntry struct {
	Processor int
	Model     string
	MHz       float64
	Physical  int
	Core      int
}

// parseCPUInfo parses /proc/cpuinfo. Blocks without a "processor" line (the
// trailing "Hardware" block of ARM kernels) are ignored.
func parseCPUInfo(data []byte) ([]cpuEntry, error) {
	var out []cpuEntry
	cur := -1 // index into out of the block being read
	err := lines(data, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			cur = -1
			return nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "processor" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 0 {
				return syntaxErr("cpuinfo", n, "processor %q", v)
			}
			out = append(out, cpuEntry{Processor: p, Physical: -1, Core: -1})
			cur = len(out) - 1
			return nil
		}
		if cur < 0 {
			return nil
		}
		e := &out[cur]
		var err error
		switch k {
		case "model name", "cpu model", "Processor", "uarch":
			if e.Model == "" {
				e.Model = v
			}
		case "cpu MHz", "clock":
			e.MHz, err = strconv.ParseFloat(strings.TrimSuffix(v, "MHz"), 64)
			if err == nil && (!(e.MHz >= 0) || math.IsInf(e.MHz, 0)) {
				err = errSyntax
			}
		case "physical id":
			e.Physical, err = strconv.Atoi(v)
		case "core id":
			e.Core, err = strconv.Atoi(v)
		}
		if err != nil {
			return syntaxErr("cpuinfo", n, "%s %q", k, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cpuinfo: no processor entries: %w", errSyntax)
	}
	return out, nil
}

// parseMeminfo parses /proc/meminfo into bytes (values given in kB are
// multiplied by 1024; counts such as HugePages_Total are kept as they are).
func parseMeminfo(data []byte) (map[string]uint64, error) {
	m := make(map[string]uint64, 64)
	err := lines(data, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return syntaxErr("meminfo", n, "no colon")
		}
		f := strings.Fields(v)
		if len(f) == 0 || len(f) > 2 {
			return syntaxErr("meminfo", n, "value %q", v)
		}
		x, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return syntaxErr("meminfo", n, "value %q", f[0])
		}
		if len(f) == 2 {
			if f[1] != "kB" {
				return syntaxErr("meminfo", n, "unit %q", f[1])
			}
			x *= 1024
		}
		m[k] = x
		return nil
	})
	return m, err
}

// cpuTimes are the jiffies of the "cpu" line of /proc/stat.
type cpuTimes struct {
	Total, Idle uint64 // Idle includes iowait
}

// parseStat parses the aggregate cpu line and btime of /proc/stat.
func parseStat(data []byte) (cpuTimes, int64, error) {
	var t cpuTimes
	var btime int64 = -1
	seenCPU := false
	err := lines(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		switch f[0] {
		case "cpu":
			if len(f) < 5 {
				return syntaxErr("stat", n, "cpu line has %d fields", len(f))
			}
			// user nice system idle iowait irq softirq steal guest guest_nice;
			// guest time is already part of user and nice.
			for i, s := range f[1:min(len(f), 9)] {
				v, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return syntaxErr("stat", n, "cpu field %q", s)
				}
				t.Total += v
				if i == 3 || i == 4 {
					t.Idle += v
				}
			}
			seenCPU = true
		case "btime":
			if len(f) != 2 {
				return syntaxErr("stat", n, "btime line")
			}
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || v < 0 {
				return syntaxErr("stat", n, "btime %q", f[1])
			}
			btime = v
		}
		return nil
	})
	if err == nil && (!seenCPU || btime < 0) {
		err = fmt.Errorf("stat: no cpu or btime line: %w", errSyntax)
	}
	return t, btime, err
}

// parseLoadavg parses the three load averages of /proc/loadavg.
func parseLoadavg(data []byte) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return l, fmt.Errorf("loadavg: %d fields: %w", len(f), errSyntax)
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || !(v >= 0) || math.IsInf(v, 0) {
			return l, fmt.Errorf("loadavg: field %q: %w", f[i], errSyntax)
		}
		l[i] = v
	}
	return l, nil
}

// parseUptime returns the first field of /proc/uptime in seconds.
func parseUptime(data []byte) (float64, error) {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("uptime: empty: %w", errSyntax)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("uptime: %q: %w", f[0], errSyntax)
	}
	return v, nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	Major, Minor uint32
	Root         string // the directory of the file system mounted there ("/" unless a bind mount)
	Point        string
	Opts         []string // per-mount options
	FSType       string
	Source       string
}

// parseMountinfo parses /proc/<pid>/mountinfo (proc(5)).
func parseMountinfo(data []byte) ([]mount, error) {
	var out []mount
	err := lines(data, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			return syntaxErr("mountinfo", n, "no fields after separator")
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return syntaxErr("mountinfo", n, "device %q", f[2])
		}
		out = append(out, mount{
			Major:  uint32(ma),
			Minor:  uint32(mi),
			Root:   unescapeOctal(f[3]),
			Point:  unescapeOctal(f[4]),
			Opts:   strings.Split(f[5], ","),
			FSType: unescapeOctal(f[sep+1]),
			Source: unescapeOctal(f[sep+2]),
		})
		return nil
	})
	return out, err
}

// unescapeOctal undoes the \ooo escapes the kernel writes for blanks and
// backslashes in paths; malformed escapes are kept as they are.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// diskStat is one line of /proc/diskstats.
type diskStat struct {
	Major, Minor  uint32
	Name          string
	SectorsRead   uint64
	SectorsWrite  uint64
	IOsInProgress uint64
}

// parseDiskstats parses /proc/diskstats (sectors are 512 bytes whatever the
// device's sector size).
func parseDiskstats(data []byte) ([]diskStat, error) {
	var out []diskStat
	err := lines(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		if len(f) < 14 {
			return syntaxErr("diskstats", n, "%d fields", len(f))
		}
		var v [14]uint64
		for _, i := range []int{0, 1, 5, 9, 11} {
			x, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return syntaxErr("diskstats", n, "field %d %q", i+1, f[i])
			}
			v[i] = x
		}
		if v[0] > 1<<32-1 || v[1] > 1<<32-1 {
			return syntaxErr("diskstats", n, "device %s:%s", f[0], f[1])
		}
		out = append(out, diskStat{Major: uint32(v[0]), Minor: uint32(v[1]), Name: f[2],
			SectorsRead: v[5], SectorsWrite: v[9], IOsInProgress: v[11]})
		return nil
	})
	return out, err
}

// parseNetDev parses /proc/net/dev.
func parseNetDev(data []byte) ([]protocol.HMUsageNetwork, error) {
	var out []protocol.HMUsageNetwork
	err := lines(data, func(n int, line string) error {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			if n <= 2 {
				return nil // the two header lines
			}
			return syntaxErr("net/dev", n, "no colon")
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return syntaxErr("net/dev", n, "%d counters", len(f))
		}
		var v [4]uint64
		for i, j := range []int{0, 1, 8, 9} {
			x, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				return syntaxErr("net/dev", n, "counter %q", f[j])
			}
			v[i] = x
		}
		out = append(out, protocol.HMUsageNetwork{Name: strings.TrimSpace(name),
			BytesRecv: v[0], PacketsRecv: v[1], BytesSent: v[2], PacketsSent: v[3]})
		return nil
	})
	return out, err
}

// parseRoute returns the IPv4 default gateway of /proc/net/route: the
// gateway of the up, gateway-flagged 0.0.0.0/0 route with the lowest metric;
// "" when there is none.
func parseRoute(data []byte) (string, error) {
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	err := lines(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "Iface" {
			return nil
		}
		if len(f) < 8 {
			return syntaxErr("route", n, "%d fields", len(f))
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.ParseUint(f[6], 10, 64)
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return syntaxErr("route", n, "%v", err)
		}
		const rtfUp, rtfGateway = 0x1, 0x2
		if dst != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || metric >= bestMetric {
			return nil
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(gw))
		best, bestMetric = netip.AddrFrom4(b), metric
		return nil
	})
	if err != nil || !best.IsValid() {
		return "", err
	}
	return best.String(), nil
}

// parseIPv6Route returns the IPv6 default gateway of /proc/net/ipv6_route,
// chosen as parseRoute does; "" when there is none.
func parseIPv6Route(data []byte) (string, error) {
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	err := lines(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		if len(f) < 10 {
			return syntaxErr("ipv6_route", n, "%d fields", len(f))
		}
		plen, err1 := strconv.ParseUint(f[1], 16, 8)
		metric, err2 := strconv.ParseUint(f[5], 16, 32)
		flags, err3 := strconv.ParseUint(f[8], 16, 32)
		hop, err4 := hex.DecodeString(f[4])
		if err := errors.Join(err1, err2, err3, err4); err != nil || len(hop) != 16 || len(f[0]) != 32 {
			return syntaxErr("ipv6_route", n, "route fields")
		}
		const rtfUp, rtfGateway, rtfReject = 0x1, 0x2, 0x200
		if plen != 0 || strings.Trim(f[0], "0") != "" || flags&(rtfUp|rtfGateway|rtfReject) != rtfUp|rtfGateway || metric >= bestMetric {
			return nil
		}
		best, bestMetric = netip.AddrFrom16([16]byte(hop)), metric
		if best.IsLinkLocalUnicast() {
			best = best.WithZone(f[9])
		}
		return nil
	})
	if err != nil || !best.IsValid() {
		return "", err
	}
	return best.String(), nil
}

// parseResolvConf returns the nameserver addresses of resolv.conf(5), in
// order; entries that are not addresses are skipped.
func parseResolvConf(data []byte) []string {
	var out []string
	_ = lines(data, func(_ int, line string) error {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, a.String())
			}
		}
		return nil
	})
	return out
}

// parsePasswd parses passwd(5); it returns the entries and the numbers of
// malformed lines, which are skipped.
func parsePasswd(data []byte) ([]protocol.HMUser, []int) {
	var out []protocol.HMUser
	var bad []int
	_ = lines(data, func(n int, line string) error {
		if line == "" || line[0] == '#' {
			return nil
		}
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] == "" {
			bad = append(bad, n)
			return nil
		}
		if _, err := strconv.ParseUint(f[2], 10, 32); err != nil {
			bad = append(bad, n)
			return nil
		}
		out = append(out, protocol.HMUser{Name: f[0], ID: f[2], GID: f[3]})
		return nil
	})
	return out, bad
}

// parseOSRelease parses os-release(5) KEY=value lines.
func parseOSRelease(data []byte) map[string]string {
	m := make(map[string]string)
	_ = lines(data, func(_ int, line string) error {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || k == "" || k[0] == '#' {
			return nil
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `"'`)
		}
		m[k] = v
		return nil
	})
	return m
}

// pidStat holds the fields of /proc/<pid>/stat the collector uses.
type pidStat struct {
	PPid         int32
	UTime, STime uint64 // clock ticks
	StartTime    uint64 // clock ticks after boot
}

// parsePidStat parses /proc/<pid>/stat. The command name may hold blanks and
// parentheses, so fields are counted from the last ')'.
func parsePidStat(data []byte) (pidStat, error) {
	var s pidStat
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return s, fmt.Errorf("stat: no command name: %w", errSyntax)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state) of proc(5).
	if len(f) < 20 {
		return s, fmt.Errorf("stat: %d fields: %w", len(f)+2, errSyntax)
	}
	ppid, err := strconv.ParseInt(f[1], 10, 32)
	if err != nil {
		return s, fmt.Errorf("stat: ppid %q: %w", f[1], errSyntax)
	}
	s.PPid = int32(ppid)
	for _, x := range []struct {
		idx int
		dst *uint64
	}{{11, &s.UTime}, {12, &s.STime}, {19, &s.StartTime}} {
		v, err := strconv.ParseUint(f[x.idx], 10, 64)
		if err != nil {
			return s, fmt.Errorf("stat: field %d %q: %w", x.idx+3, f[x.idx], errSyntax)
		}
		*x.dst = v
	}
	return s, nil
}

// pidStatus holds the fields of /proc/<pid>/status the collector uses.
type pidStatus struct {
	Name            string
	UID             uint32
	VMS, RSS, Swap  uint64 // bytes
	hasName, hasUID bool
}

// parsePidStatus parses /proc/<pid>/status. Kernel threads have no Vm*
// lines: their sizes stay 0.
func parsePidStatus(data []byte) (pidStatus, error) {
	var s pidStatus
	err := lines(data, func(n int, line string) error {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			s.Name, s.hasName = v, true
		case "Uid":
			f := strings.Fields(v)
			if len(f) == 0 {
				return syntaxErr("status", n, "Uid %q", v)
			}
			u, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				return syntaxErr("status", n, "Uid %q", v)
			}
			s.UID, s.hasUID = uint32(u), true
		case "VmSize", "VmRSS", "VmSwap":
			num, unit, _ := strings.Cut(v, " ")
			x, err := strconv.ParseUint(num, 10, 64)
			if err != nil || strings.TrimSpace(unit) != "kB" {
				return syntaxErr("status", n, "%s %q", k, v)
			}
			x *= 1024
			switch k {
			case "VmSize":
				s.VMS = x
			case "VmRSS":
				s.RSS = x
			default:
				s.Swap = x
			}
		}
		return nil
	})
	if err == nil && (!s.hasName || !s.hasUID) {
		err = fmt.Errorf("status: no Name or Uid line: %w", errSyntax)
	}
	return s, err
}

// parseCmdline splits /proc/<pid>/cmdline at its NUL bytes. A process that
// rewrote its argv into one blank-separated string (nginx, postgres) yields
// one element.
func parseCmdline(data []byte) []string {
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil
	}
	return strings.Split(string(data), "\x00")
}
