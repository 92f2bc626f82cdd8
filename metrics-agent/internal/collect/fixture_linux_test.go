package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time      { return f.t }
func (f *fakeClock) Add(d time.Duration) { f.t = f.t.Add(d) }
func fakeInterfaces() ([]protocol.HMInterface, error) {
	return []protocol.HMInterface{
		{Index: 1, Name: "lo", MTU: 65536, Flags: []string{"up", "loopback", "running"}, Addrs: []string{"127.0.0.1/8", "::1/128"}},
		{Index: 2, Name: "eth0", MTU: 1500, Flags: []string{"up", "broadcast", "multicast", "running"}, MAC: "02:fc:00:00:00:01", Addrs: []string{"192.0.2.2/24", "fd00::2/64"}},
	}, nil
}

// fakeStatfs knows a few mount points; others fail as statfs would.
func fakeStatfs(path string) (FSStat, error) {
	const gib = 1 << 30
	switch path {
	case "/":
		return FSStat{Total: 100 * gib, Free: 60 * gib, Avail: 55 * gib, Files: 6553600, FilesFree: 6453600}, nil
	case "/boot":
		return FSStat{Total: gib, Free: gib / 2, Avail: gib / 2, Files: 65536, FilesFree: 65000}, nil
	case "/home", "/mnt/my share":
		return FSStat{Total: 50 * gib, Free: 50 * gib, Avail: 50 * gib}, nil
	}
	return FSStat{}, &fs.PathError{Op: "statfs", Path: path, Err: errors.New("no such file or directory")}
}

// fixture returns a collector on a private copy of testdata/<name> (tests
// may change its files) and the copy's root.
func fixture(t *testing.T, name string, opts Options) (*Collector, *fakeClock, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: t0}
	opts.Roots = Roots{Proc: root + "/proc", Sys: root + "/sys", Etc: root + "/etc", Dev: root + "/dev"}
	opts.Now = clk.Now
	opts.Statfs = fakeStatfs
	opts.Interfaces = fakeInterfaces
	if opts.ShareWindow == 0 {
		opts.ShareWindow = -1
	}
	c := New(opts)
	c.fileTime = func(p string) (time.Time, error) {
		if _, err := os.Lstat(p); err != nil {
			return time.Time{}, err
		}
		if filepath.Base(p) == "machine-id" {
			return time.Date(2025, 6, 24, 14, 37, 40, 0, time.UTC), nil
		}
		return time.Unix(0, 0), nil // no birth time recorded: not plausible
	}
	return c, clk, root
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// golden is everything a fixture yields, warnings as text with the
// fixture's root replaced by <root>.
type golden struct {
	Static          Static                   `json:"static"`
	StaticWarnings  []string                 `json:"static_warnings"`
	Usage           protocol.HMUsage         `json:"usage"`
	UsageWarnings   []string                 `json:"usage_warnings"`
	Process         []protocol.HMProcess     `json:"process"`
	ProcessWarnings []string                 `json:"process_warnings"`
	Conns           []protocol.HMConnection  `json:"conns"`
	ConnsWarnings   []string                 `json:"conns_warnings"`
	Temps           []protocol.HMTemperature `json:"temps"`
	TempsWarnings   []string                 `json:"temps_warnings"`
}

func texts(root string, ws []Warning) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, strings.ReplaceAll(w.Error(), root, "<root>"))
	}
	return out
}

func TestFixturesGolden(t *testing.T) {
	for _, name := range []string{"debian", "lvm", "arm"} {
		t.Run(name, func(t *testing.T) {
			c, _, root := fixture(t, name, Options{})
			ctx := context.Background()
			var g golden
			var ws []Warning
			g.Static, ws = c.Static(ctx)
			g.StaticWarnings = texts(root, ws)
			g.Usage, ws = c.Usage(ctx)
			g.UsageWarnings = texts(root, ws)
			g.Process, ws = c.Processes(ctx, 0)
			g.ProcessWarnings = texts(root, ws)
			g.Conns, ws = c.Connections(ctx, nil)
			g.ConnsWarnings = texts(root, ws)
			g.Temps, ws = c.Temperatures(ctx)
			g.TempsWarnings = texts(root, ws)
			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the collected data (run with -update after checking):\n%s", file, got)
			}
		})
	}
}
