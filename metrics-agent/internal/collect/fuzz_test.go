package collect

import (
	"errors"
	"math"
	"testing"
)

// The fuzz targets check that no input makes a parser panic, that every
// error wraps errSyntax or the scanner's, and that what is returned holds.

func wantSyntax(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, errSyntax) && err.Error() != "bufio.Scanner: token too long" {
		t.Fatalf("error %v does not wrap errSyntax", err)
	}
}

func FuzzParseCPUInfo(f *testing.F) {
	for _, c := range cpuinfoCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		list, err := parseCPUInfo([]byte(in))
		wantSyntax(t, err)
		if err == nil && len(list) == 0 {
			t.Fatal("no error and no entries")
		}
		for _, e := range list {
			if e.Processor < 0 || e.MHz < 0 || math.IsNaN(e.MHz) {
				t.Fatalf("entry %+v", e)
			}
		}
		summarizeCPU(list)
	})
}

func FuzzParseMountinfo(f *testing.F) {
	for _, c := range mountinfoCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, err := parseMountinfo([]byte(in))
		wantSyntax(t, err)
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, c := range routeCases {
		f.Add(c.in, false)
	}
	for _, c := range ipv6RouteCases {
		f.Add(c.in, true)
	}
	f.Fuzz(func(t *testing.T, in string, v6 bool) {
		var err error
		if v6 {
			_, err = parseIPv6Route([]byte(in))
		} else {
			_, err = parseRoute([]byte(in))
		}
		wantSyntax(t, err)
	})
}

func FuzzParsePidFiles(f *testing.F) {
	for _, c := range pidStatCases {
		f.Add(c.in)
	}
	for _, c := range pidStatusCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, err := parsePidStat([]byte(in))
		wantSyntax(t, err)
		_, err = parsePidStatus([]byte(in))
		wantSyntax(t, err)
		parseCmdline([]byte(in))
	})
}

func FuzzParseCounters(f *testing.F) {
	for _, c := range meminfoCases {
		f.Add(c.in)
	}
	for _, c := range statCases {
		f.Add(c.in)
	}
	for _, c := range diskstatsCases {
		f.Add(c.in)
	}
	for _, c := range netDevCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		_, err := parseMeminfo(b)
		wantSyntax(t, err)
		_, _, err = parseStat(b)
		wantSyntax(t, err)
		_, err = parseDiskstats(b)
		wantSyntax(t, err)
		_, err = parseNetDev(b)
		wantSyntax(t, err)
		_, err = parseLoadavg(b)
		wantSyntax(t, err)
		_, err = parseUptime(b)
		wantSyntax(t, err)
	})
}

func FuzzParseEtc(f *testing.F) {
	f.Add("nameserver 10.0.0.1\nnameserver fe80::1%eth0\n")
	f.Add("root:x:0:0:root:/root:/bin/sh\nbroken\n")
	f.Add("ID=debian\nVERSION_ID=\"12\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		parseResolvConf(b)
		users, _ := parsePasswd(b)
		for _, u := range users {
			if u.Name == "" {
				t.Fatalf("user without name: %+v", u)
			}
		}
		parseOSRelease(b)
	})
}
