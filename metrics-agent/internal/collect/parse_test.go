package collect

import (
	"errors"
	"slices"
	"testing"
)

// Each parser has a table of good inputs (checked against the wanted
// result) and bad ones (paired with the error text). The fuzz targets are
// seeded from the same tables.

var cpuinfoCases = []struct {
	name, in string
	want     []cpuEntry
	err      string
}{
	{"x86", "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.138\nphysical id\t: 0\ncore id\t\t: 3\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\nphysical id\t: 1\ncore id\t\t: 0\n",
		[]cpuEntry{{0, "AMD EPYC", 2596.138, 0, 3}, {1, "AMD EPYC", 0, 1, 0}}, ""},
	{"arm trailer block", "processor\t: 0\nBogoMIPS\t: 50.00\n\nHardware\t: BCM2835\nSerial\t\t: 1\n",
		[]cpuEntry{{0, "", 0, -1, -1}}, ""},
	{"s390 style clock", "processor : 0\nclock : 5200MHz\n", []cpuEntry{{0, "", 5200, -1, -1}}, ""},
	{"bad processor", "processor\t: x\n", nil, `cpuinfo line 1: processor "x": syntax error`},
	{"bad mhz", "processor\t: 0\ncpu MHz\t: fast\n", nil, `cpuinfo line 2: cpu MHz "fast": syntax error`},
	{"bad core id", "processor\t: 0\ncore id\t: -\n", nil, `cpuinfo line 2: core id "-": syntax error`},
	{"empty", "", nil, "cpuinfo: no processor entries: syntax error"},
}

func TestParseCPUInfo(t *testing.T) {
	for _, tt := range cpuinfoCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUInfo([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("error %v", err)
	case want != "" && (err == nil || err.Error() != want):
		t.Fatalf("error %v, want %q", err, want)
	case want != "" && !errors.Is(err, errSyntax):
		t.Fatalf("error %v does not wrap errSyntax", err)
	}
}

var mountinfoCases = []struct {
	name, in string
	want     []mount
	err      string
}{
	{"plain", "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n",
		[]mount{{Major: 254, Root: "/", Point: "/", Opts: []string{"rw", "relatime"}, FSType: "ext4", Source: "/dev/vda"}}, ""},
	{"escapes and no optional fields", `41 27 0:55 /a\134b /mnt/my\040share rw - nfs4 srv:/x\011y rw` + "\n",
		[]mount{{Major: 0, Minor: 55, Root: `/a\b`, Point: "/mnt/my share", Opts: []string{"rw"}, FSType: "nfs4", Source: "srv:/x\ty"}}, ""},
	{"bad escape kept", `1 1 8:1 / /x\09 rw - ext4 /dev/sda1 rw` + "\n",
		[]mount{{Major: 8, Minor: 1, Root: "/", Point: `/x\09`, Opts: []string{"rw"}, FSType: "ext4", Source: "/dev/sda1"}}, ""},
	{"no separator", "27 1 254:0 / / rw ext4 /dev/vda rw\n", nil, "mountinfo line 1: no fields after separator: syntax error"},
	{"bad device", "27 1 254 / / rw - ext4 /dev/vda rw\n", nil, `mountinfo line 1: device "254": syntax error`},
	{"short after separator", "27 1 8:0 / / rw - ext4\n", nil, "mountinfo line 1: no fields after separator: syntax error"},
}

func TestParseMountinfo(t *testing.T) {
	for _, tt := range mountinfoCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountinfo([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && !slices.EqualFunc(got, tt.want, func(a, b mount) bool {
				return a.Major == b.Major && a.Minor == b.Minor && a.Root == b.Root && a.Point == b.Point &&
					slices.Equal(a.Opts, b.Opts) && a.FSType == b.FSType && a.Source == b.Source
			}) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var routeCases = []struct {
	name, in, want, err string
}{
	{"default", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\neth1\t00000000\t0101A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n", "192.168.1.1", ""},
	{"down or not a gateway", "eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\neth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n", "", ""},
	{"short", "eth0\t00000000\t010200C0\n", "", "route line 1: 3 fields: syntax error"},
	{"bad gateway", "eth0\t00000000\tXX\t0003\t0\t0\t0\t00000000\n", "", `route line 1: strconv.ParseUint: parsing "XX": invalid syntax: syntax error`},
}

func TestParseRoute(t *testing.T) {
	for _, tt := range routeCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRoute([]byte(tt.in))
			checkErr(t, err, tt.err)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

var ipv6RouteCases = []struct {
	name, in, want, err string
}{
	{"lowest metric", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000000000000000000000001 00000800 00000001 00000000 00000003 eth1\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n", "fe80::1%eth0", ""},
	{"reject route on lo ignored", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n", "", ""},
	{"short", "0000 00\n", "", "ipv6_route line 1: 2 fields: syntax error"},
	{"bad hop", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 xx 00000800 00000001 00000000 00000003 eth1\n", "", "ipv6_route line 1: route fields: syntax error"},
}

func TestParseIPv6Route(t *testing.T) {
	for _, tt := range ipv6RouteCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIPv6Route([]byte(tt.in))
			checkErr(t, err, tt.err)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

var pidStatCases = []struct {
	name, in string
	want     pidStat
	err      string
}{
	{"plain", "107 (mariadbd) S 1 107 107 0 -1 4194560 100 0 0 0 30000 6000 0 0 20 0 1 0 100 1000 10 0\n", pidStat{1, 30000, 6000, 100}, ""},
	{"name with blanks and parens", "4242 (a) b (c)) R 7 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 99 0 0 0\n", pidStat{7, 5, 6, 99}, ""},
	{"no name", "42 S 1", pidStat{}, "stat: no command name: syntax error"},
	{"short", "42 (x) S 1 2 3", pidStat{}, "stat: 6 fields: syntax error"},
	{"bad ppid", "42 (x) S y 107 107 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 99 0 0 0\n", pidStat{}, `stat: ppid "y": syntax error`},
	{"bad utime", "42 (x) S 1 107 107 0 -1 0 0 0 0 0 -5 6 0 0 20 0 1 0 99 0 0 0\n", pidStat{}, `stat: field 14 "-5": syntax error`},
}

func TestParsePidStat(t *testing.T) {
	for _, tt := range pidStatCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePidStat([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var pidStatusCases = []struct {
	name, in string
	want     pidStatus
	err      string
}{
	{"process", "Name:\tnginx\nPPid:\t1\nUid:\t1001\t1001\t1001\t1001\nVmSize:\t   50000 kB\nVmRSS:\t    8000 kB\nVmSwap:\t       4 kB\n",
		pidStatus{Name: "nginx", UID: 1001, VMS: 50000 << 10, RSS: 8000 << 10, Swap: 4 << 10, hasName: true, hasUID: true}, ""},
	{"kernel thread", "Name:\tkthreadd\nUid:\t0\t0\t0\t0\n", pidStatus{Name: "kthreadd", hasName: true, hasUID: true}, ""},
	{"bad uid", "Name:\tx\nUid:\tabc\n", pidStatus{}, `status line 2: Uid "abc": syntax error`},
	{"bad size", "Name:\tx\nUid:\t0\nVmRSS:\t12 MB\n", pidStatus{}, `status line 3: VmRSS "12 MB": syntax error`},
	{"no uid", "Name:\tx\n", pidStatus{}, "status: no Name or Uid line: syntax error"},
}

func TestParsePidStatus(t *testing.T) {
	for _, tt := range pidStatusCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePidStatus([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var meminfoCases = []struct {
	name, in string
	want     map[string]uint64
	err      string
}{
	{"kB and counts", "MemTotal:       16318004 kB\nHugePages_Total:       4\n", map[string]uint64{"MemTotal": 16318004 << 10, "HugePages_Total": 4}, ""},
	{"no colon", "MemTotal 1 kB\n", nil, "meminfo line 1: no colon: syntax error"},
	{"bad unit", "MemTotal: 1 MB\n", nil, `meminfo line 1: unit "MB": syntax error`},
	{"bad value", "MemTotal: x kB\n", nil, `meminfo line 1: value "x": syntax error`},
}

func TestParseMeminfo(t *testing.T) {
	for _, tt := range meminfoCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMeminfo([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil {
				for k, v := range tt.want {
					if got[k] != v {
						t.Errorf("%s = %d, want %d", k, got[k], v)
					}
				}
			}
		})
	}
}

var statCases = []struct {
	name, in string
	want     cpuTimes
	btime    int64
	err      string
}{
	{"plain", "cpu  100 5 50 800 20 1 2 3 7 0\ncpu0 1 1 1 1 1 1 1 1\nbtime 1764000000\n", cpuTimes{Total: 981, Idle: 820}, 1764000000, ""},
	{"old kernel, four fields", "cpu 1 2 3 4\nbtime 5\n", cpuTimes{Total: 10, Idle: 4}, 5, ""},
	{"no btime", "cpu 1 2 3 4\n", cpuTimes{}, 0, "stat: no cpu or btime line: syntax error"},
	{"bad field", "cpu 1 2 x 4\nbtime 5\n", cpuTimes{}, 0, `stat line 1: cpu field "x": syntax error`},
	{"bad btime", "cpu 1 2 3 4\nbtime -5\n", cpuTimes{}, 0, `stat line 2: btime "-5": syntax error`},
}

func TestParseStat(t *testing.T) {
	for _, tt := range statCases {
		t.Run(tt.name, func(t *testing.T) {
			got, bt, err := parseStat([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && (got != tt.want || bt != tt.btime) {
				t.Errorf("got %+v %d, want %+v %d", got, bt, tt.want, tt.btime)
			}
		})
	}
}

var diskstatsCases = []struct {
	name, in string
	want     []diskStat
	err      string
}{
	{"plain", " 253       0 dm-0 800 0 80000 0 1500 0 150000 0 1 0 0 0 0 0 0 0 0\n", []diskStat{{253, 0, "dm-0", 80000, 150000, 1}}, ""},
	{"short", "8 0 sda 1 2 3\n", nil, "diskstats line 1: 6 fields: syntax error"},
	{"bad sectors", "8 0 sda 1 0 x 0 1 0 1 0 0 0 0\n", nil, `diskstats line 1: field 6 "x": syntax error`},
	{"device out of range", "4294967296 0 sda 1 0 1 0 1 0 1 0 0 0 0\n", nil, "diskstats line 1: device 4294967296:0: syntax error"},
}

func TestParseDiskstats(t *testing.T) {
	for _, tt := range diskstatsCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDiskstats([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var netDevCases = []struct {
	name, in string
	err      string
}{
	{"plain", "Inter-|   Receive\n face |bytes\n  eth0: 451243212   26773    0    0    0     0          0         0  2082116   18923    0    0    0     0       0          0\n", ""},
	{"no colon", "h1\nh2\n eth0 1 2 3\n", "net/dev line 3: no colon: syntax error"},
	{"short", "eth0: 1 2 3\n", "net/dev line 1: 3 counters: syntax error"},
}

func TestParseNetDev(t *testing.T) {
	for _, tt := range netDevCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetDev([]byte(tt.in))
			checkErr(t, err, tt.err)
			if err == nil && (len(got) != 1 || got[0].Name != "eth0" || got[0].BytesRecv != 451243212 || got[0].PacketsSent != 18923) {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestParseEtc(t *testing.T) {
	ns := parseResolvConf([]byte("# c\nnameserver 10.0.0.1\nnameserver 2001:db8::53\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver\nsearch x\n"))
	if want := []string{"10.0.0.1", "2001:db8::53", "fe80::1%eth0"}; !slices.Equal(ns, want) {
		t.Errorf("nameservers = %q, want %q", ns, want)
	}
	users, bad := parsePasswd([]byte("root:x:0:0:root:/root:/bin/sh\n#c\n\nbroken\nx:x:notanumber:0::/:/bin/sh\n+::::::\n"))
	if len(users) != 1 || users[0].Name != "root" || !slices.Equal(bad, []int{4, 5, 6}) {
		t.Errorf("users %+v, bad lines %v", users, bad)
	}
	m := parseOSRelease([]byte("ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME='Debian'\n# c\nbad\n"))
	if m["ID"] != "debian" || m["VERSION_ID"] != "12" || m["PRETTY_NAME"] != "Debian" || len(m) != 3 {
		t.Errorf("os-release = %v", m)
	}
	if got := parseCmdline([]byte("nginx: worker\x00\x00")); !slices.Equal(got, []string{"nginx: worker"}) {
		t.Errorf("cmdline = %q", got)
	}
	if got := parseCmdline([]byte("/bin/sh\x00-c\x00echo a\x00")); !slices.Equal(got, []string{"/bin/sh", "-c", "echo a"}) {
		t.Errorf("cmdline = %q", got)
	}
}

func TestLoadavgUptime(t *testing.T) {
	if l, err := parseLoadavg([]byte("0.52 0.31 0.25 2/310 5901\n")); err != nil || l != [3]float64{0.52, 0.31, 0.25} {
		t.Errorf("loadavg = %v, %v", l, err)
	}
	_, err := parseLoadavg([]byte("1 2\n"))
	checkErr(t, err, "loadavg: 2 fields: syntax error")
	_, err = parseLoadavg([]byte("1 x 3\n"))
	checkErr(t, err, `loadavg: field "x": syntax error`)
	if u, err := parseUptime([]byte("3600.51 6900.12\n")); err != nil || u != 3600.51 {
		t.Errorf("uptime = %v, %v", u, err)
	}
	_, err = parseUptime([]byte(""))
	checkErr(t, err, "uptime: empty: syntax error")
	_, err = parseUptime([]byte("NaN"))
	checkErr(t, err, `uptime: "NaN": syntax error`)
	_, err = parseLoadavg([]byte("1 Inf 3"))
	checkErr(t, err, `loadavg: field "Inf": syntax error`)
}
