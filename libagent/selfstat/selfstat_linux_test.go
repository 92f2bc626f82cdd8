package selfstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const statLine = "4242 (my (odd) agent) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 12 0 50000 123456789 2048 18446744073709551615\n"

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
		want          procStat
	}{
		{name: "ok", in: statLine, want: procStat{cpu: 4 * time.Second, threads: 12, startUnix: 1_000_000 + 500, rss: 2048 * 4096}},
		{name: "no comm", in: "4242 agent S 1", err: "stat: no command name"},
		{name: "short", in: "1 (a) S 1 2 3", err: "stat: 6 fields, want at least 24"},
		{name: "bad number", in: strings.Replace(statLine, " 250 ", " x ", 1), err: `stat field 14: strconv.ParseUint: parsing "x": invalid syntax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in), 1_000_000, 4096)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFakeProcRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "4242"), 0o755)
	os.WriteFile(filepath.Join(root, "4242", "stat"), []byte(statLine), 0o644)
	os.WriteFile(filepath.Join(root, "stat"), []byte("cpu 1 2 3\nbtime 1000000\n"), 0o644)
	os.WriteFile(filepath.Join(root, "meminfo"), []byte("MemTotal:       16384 kB\nMemFree: 1 kB\n"), 0o644)
	s := NewWithOptions(4242, Options{ProcRoot: root})
	got, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	pg := uint64(os.Getpagesize())
	if got.StartTime != 1_000_500 || got.Threads != 12 || got.RSS != 2048*pg {
		t.Fatalf("got %+v", got)
	}
	if want := 100 * float64(2048*pg) / (16384 * 1024); got.MemPercent != want {
		t.Fatalf("MemPercent %v, want %v", got.MemPercent, want)
	}
	if got.CPUPercent != 0 {
		t.Fatalf("CPU %v with unchanged counters", got.CPUPercent)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (a) S 1 2 3"))
	f.Add([]byte("4242 agent S 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseStat(b, 0, 4096)
	})
}
