package limit

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tree creates files (path → content) under a new temp root; a path ending
// in "/" is a directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// absent marks a file that must not exist.
const absent = "\x00absent"

// check compares files under root with want.
func check(t *testing.T, root string, want map[string]string) {
	t.Helper()
	for p, w := range want {
		b, err := os.ReadFile(filepath.Join(root, p))
		if w == absent {
			if err == nil {
				t.Errorf("%s exists with %q, want no file", p, b)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if string(b) != w {
			t.Errorf("%s = %q, want %q", p, b, w)
		}
	}
}

var allLimits = Config{
	CPUQuota:    150,
	MemoryLimit: 1 << 30,
	DiskLimit: DiskLimits{
		{Major: 8, ReadBytes: 10 << 20, WriteBytes: 10 << 20, ReadIOPS: 1000, WriteIOPS: 1000},
		{Major: 8, Minor: 16, WriteBytes: 1024},
	},
}

func v2Root(t *testing.T) string {
	return tree(t, map[string]string{
		"cgroup.controllers":     "cpuset cpu io memory pids\n",
		"cgroup.subtree_control": "",
		"agent/cpu.max":          "max 100000\n",
		"agent/memory.max":       "max\n",
		"agent/io.max":           "",
		"agent/cgroup.procs":     "",
		"other/memory.max":       "max\n",
	})
}

func TestApplyV2(t *testing.T) {
	t.Run("cpu only", func(t *testing.T) {
		root := v2Root(t)
		a, err := Apply(Config{CPUQuota: 100}, Options{CgroupRoot: root, Name: "agent", PID: 4242})
		if err != nil {
			t.Fatal(err)
		}
		check(t, root, map[string]string{
			"cgroup.subtree_control": "+cpu",
			"agent/cpu.max":          "100000 100000",
			"agent/memory.max":       "max\n",
			"agent/io.max":           "",
			"agent/cgroup.procs":     "4242",
		})
		want := Applied{Mode: "cgroup2", Paths: []string{filepath.Join(root, "agent")}, Settings: []string{"cpu.max=100000 100000"}}
		if !reflect.DeepEqual(a, want) {
			t.Fatalf("Applied %+v, want %+v", a, want)
		}
	})
	t.Run("all", func(t *testing.T) {
		root := v2Root(t)
		if _, err := Apply(allLimits, Options{CgroupRoot: root, Name: "agent", PID: 7}); err != nil {
			t.Fatal(err)
		}
		check(t, root, map[string]string{
			"cgroup.subtree_control": "+cpu +memory +io",
			"agent/cpu.max":          "150000 100000",
			"agent/memory.max":       "1073741824",
			"agent/io.max":           "8:0 rbps=10485760 wbps=10485760 riops=1000 wiops=1000\n8:16 wbps=1024\n",
			"agent/cgroup.procs":     "7",
			"other/memory.max":       "max\n",
		})
	})
}

func TestApplyV1(t *testing.T) {
	files := map[string]string{
		"cpu/":                               "",
		"blkio/":                             "",
		"memory/agent/memory.limit_in_bytes": "9223372036854771712\n",
		"unified/cgroup.controllers":         "", // hybrid: controllers are on v1
	}
	t.Run("cpu only", func(t *testing.T) {
		root := tree(t, files)
		a, err := Apply(Config{CPUQuota: 250}, Options{CgroupRoot: root, Name: "agent", PID: 4242})
		if err != nil {
			t.Fatal(err)
		}
		check(t, root, map[string]string{
			"cpu/agent/cpu.cfs_period_us":        "100000\n",
			"cpu/agent/cpu.cfs_quota_us":         "250000\n",
			"cpu/agent/cgroup.procs":             "4242\n",
			"memory/agent/memory.limit_in_bytes": "9223372036854771712\n",
			"memory/agent/cgroup.procs":          absent,
			"blkio/agent/cgroup.procs":           absent,
		})
		if a.Mode != "cgroup1" || len(a.Paths) != 1 {
			t.Fatalf("Applied %+v", a)
		}
	})
	t.Run("all", func(t *testing.T) {
		root := tree(t, files)
		a, err := Apply(allLimits, Options{CgroupRoot: root, Name: "agent", PID: 7})
		if err != nil {
			t.Fatal(err)
		}
		check(t, root, map[string]string{
			"cpu/agent/cpu.cfs_quota_us":                   "150000\n",
			"memory/agent/memory.limit_in_bytes":           "1073741824\n",
			"memory/agent/cgroup.procs":                    "7\n",
			"blkio/agent/blkio.throttle.read_bps_device":   "8:0 10485760\n",
			"blkio/agent/blkio.throttle.write_bps_device":  "8:0 10485760\n8:16 1024\n",
			"blkio/agent/blkio.throttle.read_iops_device":  "8:0 1000\n",
			"blkio/agent/blkio.throttle.write_iops_device": "8:0 1000\n",
			"blkio/agent/cgroup.procs":                     "7\n",
		})
		if len(a.Paths) != 3 {
			t.Fatalf("joined %v, want cpu, memory and blkio", a.Paths)
		}
	})
}

func TestApplyErrors(t *testing.T) {
	if a, err := Apply(Config{}, Options{CgroupRoot: "/nonexistent"}); err != nil || a.Mode != "" {
		t.Fatalf("empty config: %+v %v", a, err)
	}
	empty := t.TempDir()
	_, err := Apply(Config{CPUQuota: 100}, Options{CgroupRoot: empty, Name: "agent"})
	if !errors.Is(err, ErrNoCgroups) {
		t.Fatalf("no cgroups: %v", err)
	}
	noIO := tree(t, map[string]string{"cgroup.controllers": "cpu memory\n", "cgroup.subtree_control": ""})
	noBlkio := tree(t, map[string]string{"cpu/": ""})
	for _, tc := range []struct {
		name string
		c    Config
		o    Options
		want string
	}{
		{"no name", Config{CPUQuota: 1}, Options{CgroupRoot: empty}, `limit: bad cgroup name "" (want the agent name, no slashes)`},
		{"escaping name", Config{CPUQuota: 1}, Options{CgroupRoot: empty, Name: "../x"}, `limit: bad cgroup name "../x" (want the agent name, no slashes)`},
		{"v2 without io", allLimits, Options{CgroupRoot: noIO, Name: "a"}, `limit: cgroup v2 controller "io" not available in ` + noIO + ` (have "cpu memory")`},
		{"v1 without blkio", Config{DiskLimit: allLimits.DiskLimit}, Options{CgroupRoot: noBlkio, Name: "a"}, `limit: cgroup v1 controller "blkio" not mounted at ` + filepath.Join(noBlkio, "blkio")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Apply(tc.c, tc.o)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}
