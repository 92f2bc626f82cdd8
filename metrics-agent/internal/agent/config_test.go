package agent

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/jkframe/utils"
	"github.com/agentfleet/libagent/agenttest"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*Task)
		want     func(*Task)
		warnings []string
		err      string
		is       error
	}{
		{name: "defaults", mod: func(*Task) {}},
		{
			name: "below floors raised",
			mod: func(t *Task) {
				t.Static.Interval = utils.Duration(time.Second)
				t.Usage.Interval = 0
				t.Process.Interval = utils.Duration(time.Second)
				t.Conns.Interval = utils.Duration(4 * time.Second)
				t.Temps.Interval = utils.Duration(time.Millisecond)
			},
			want: func(t *Task) {
				t.Static.Interval = utils.Duration(time.Minute)
				t.Usage.Interval = utils.Duration(time.Second)
				t.Process.Interval = utils.Duration(5 * time.Second)
				t.Conns.Interval = utils.Duration(5 * time.Second)
				t.Temps.Interval = utils.Duration(5 * time.Second)
			},
			warnings: []string{
				"task.static.interval 1s is below its floor 1m: using 1m",
				"task.usage.interval 0s is below its floor 1s: using 1s",
				"task.process.interval 1s is below its floor 5s: using 5s",
				"task.conns.interval 4s is below its floor 5s: using 5s",
				"task.temps.interval 1ms is below its floor 5s: using 5s",
			},
		},
		{
			name: "at the floors kept",
			mod: func(t *Task) {
				t.Static.Interval = utils.Duration(time.Minute)
				t.Usage.Interval = utils.Duration(time.Second)
			},
		},
		{
			name: "jobs normalized",
			mod:  func(t *Task) { t.Jobs = []string{" Temps", "usage", "", "usage"} },
			want: func(t *Task) { t.Jobs = []string{"usage", "temps"} },
		},
		{
			name: "no jobs",
			mod:  func(t *Task) { t.Jobs = nil },
			want: func(t *Task) { t.Jobs = []string{} },
		},
		{
			name: "kinds normalized",
			mod:  func(t *Task) { t.Conns.Allow = []string{"TCP4", "unix", "tcp4"} },
			want: func(t *Task) { t.Conns.Allow = []string{"tcp4", "unix"} },
		},
		{
			name: "unknown job",
			mod:  func(t *Task) { t.Jobs = []string{"usage", "disk"} },
			err:  `task.jobs: unknown job "disk" (want static, usage, process, conns, temps)`,
			is:   ErrUnknownJob,
		},
		{
			name: "unknown kind",
			mod:  func(t *Task) { t.Conns.Allow = []string{"tcp", "raw"} },
			err:  `task.conns.allow: unknown connection kind "raw" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix)`,
			is:   ErrUnknownKind,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := DefaultConfig().Task
			tc.mod(&task)
			warnings, err := task.Normalize()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || !errors.Is(err, tc.is) {
					t.Fatalf("err = %v, want %q (is %v)", err, tc.err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultConfig().Task
			if tc.want != nil {
				tc.want(&want)
			} else {
				tc.mod(&want)
			}
			if !reflect.DeepEqual(task, want) {
				t.Errorf("task = %+v\nwant   %+v", task, want)
			}
			if !slices.Equal(warnings, tc.warnings) {
				t.Errorf("warnings = %q\nwant       %q", warnings, tc.warnings)
			}
		})
	}
}

func TestAllowedKinds(t *testing.T) {
	tests := []struct {
		req, allow    []string
		want, dropped []string
	}{
		{req: nil, allow: []string{"tcp", "unix"}, want: []string{"tcp", "unix"}},
		{req: []string{"tcp4", "udp"}, allow: []string{"tcp", "unix"}, want: []string{"tcp4"}},
		{req: []string{"tcp"}, allow: []string{"tcp4", "tcp6"}, want: []string{"tcp4", "tcp6"}},
		{req: []string{"TCP", " unix "}, allow: []string{"tcp", "unix"}, want: []string{"tcp", "unix"}},
		{req: []string{"udp6", "raw", ""}, allow: []string{"udp"}, want: []string{"udp6"}, dropped: []string{"raw"}},
		{req: []string{"unix"}, allow: []string{"tcp"}, want: nil},
		{req: []string{"tcp"}, allow: nil, want: nil},
	}
	for _, tc := range tests {
		got, dropped := allowedKinds(tc.req, tc.allow)
		if !slices.Equal(got, tc.want) || !slices.Equal(dropped, tc.dropped) {
			t.Errorf("allowedKinds(%q, %q) = %q, %q; want %q, %q", tc.req, tc.allow, got, dropped, tc.want, tc.dropped)
		}
	}
}

// FuzzParseJobs: job lists come from the server (hm_change_status.jobs).
func FuzzParseJobs(f *testing.F) {
	for _, s := range []string{"static,usage", " Temps,usage,,usage", "usage,disk", "", "\x00,process"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		jobs, err := ParseJobs(strings.Split(s, ","))
		if err != nil {
			if !errors.Is(err, ErrUnknownJob) {
				t.Fatalf("error %v is not ErrUnknownJob", err)
			}
			return
		}
		for i, j := range jobs {
			if Floor(j) == 0 || (i > 0 && slices.Index(jobNames[:], jobs[i-1]) >= slices.Index(jobNames[:], j)) {
				t.Fatalf("ParseJobs(%q) = %q: not known jobs in report order", s, jobs)
			}
		}
	})
}

// FuzzAllowedKinds: connection kinds come from the server (aconns).
func FuzzAllowedKinds(f *testing.F) {
	f.Add("tcp4,udp", "tcp,unix")
	f.Add("tcp", "tcp4,tcp6")
	f.Add("raw,,UDP6", "udp")
	f.Fuzz(func(t *testing.T, req, allow string) {
		allowed, err := parseKinds(strings.Split(allow, ","))
		if err != nil {
			return
		}
		kinds, _ := allowedKinds(strings.Split(req, ","), allowed)
		for _, k := range kinds {
			if !slices.Contains(allowed, k) && (len(k) != 4 || !slices.Contains(allowed, k[:3])) {
				t.Fatalf("allowedKinds(%q, %q) = %q: %q is not allowed", req, allowed, kinds, k)
			}
		}
	})
}

// The shipped manifest is valid together with the basic.* keys, the shipped
// config passes it, and both hold the defaults of DefaultConfig: the three
// cannot drift apart.
func TestManifestAndDefaultConfig(t *testing.T) {
	m, conf := agenttest.ShippedConfig(t, filepath.Join("..", "..", "conf"))

	// The shipped file decodes (strict) to the defaults.
	got := &Config{}
	if err := kvconf.Unmarshal(conf, got, kvconf.File("conf/agent.conf"), kvconf.Strict(true)); err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(got.Task, want.Task) {
		t.Errorf("conf/agent.conf task = %+v\nDefaultConfig      %+v", got.Task, want.Task)
	}

	// Every task.* key has a manifest item whose default and floor are the code's.
	entries, err := kvconf.Parse(strings.NewReader(string(conf)), "conf/agent.conf")
	if err != nil {
		t.Fatal(err)
	}
	var taskKeys int
	for _, e := range entries {
		if !strings.HasPrefix(e.Key, "task.") {
			continue
		}
		taskKeys++
		it := m.Lookup(e.Key)
		if it == nil {
			t.Errorf("%s: no manifest item", e.Key)
			continue
		}
		if it.Default == nil || *it.Default != e.Value {
			t.Errorf("%s: manifest default %v, conf/agent.conf %q", e.Key, it.Default, e.Value)
		}
		if job, ok := strings.CutSuffix(strings.TrimPrefix(e.Key, "task."), ".interval"); ok {
			var min utils.Duration
			if it.Min == nil || min.UnmarshalText([]byte(*it.Min)) != nil || time.Duration(min) != Floor(job) {
				t.Errorf("%s: manifest min %v, floor in code %v", e.Key, it.Min, Floor(job))
			}
		}
	}
	if taskKeys != 10 {
		t.Errorf("conf/agent.conf has %d task.* keys, config.md has 10", taskKeys)
	}
}
