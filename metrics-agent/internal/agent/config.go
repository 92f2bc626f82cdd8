package agent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/utils"
	"github.com/agentfleet/libagent"
)

// Job names: the five collection jobs, in the order they are reported.
const (
	JobStatic  = "static"
	JobUsage   = "usage"
	JobProcess = "process"
	JobConns   = "conns"
	JobTemps   = "temps"
)

// Jobs lists every job name in report order.
var jobNames = [...]string{JobStatic, JobUsage, JobProcess, JobConns, JobTemps}

// Jobs returns the names of the five jobs in report order.
func Jobs() []string { return slices.Clone(jobNames[:]) }

// Floors and defaults of task.*.interval (config.md). A configured value
// below the floor is raised to it with a warning.
var (
	floors = map[string]time.Duration{
		JobStatic: time.Minute, JobUsage: time.Second, JobProcess: 5 * time.Second,
		JobConns: 5 * time.Second, JobTemps: 5 * time.Second,
	}
	defaults = map[string]time.Duration{
		JobStatic: 24 * time.Hour, JobUsage: 5 * time.Second, JobProcess: time.Minute,
		JobConns: time.Minute, JobTemps: time.Minute,
	}
)

// Floor returns the smallest interval job may run at (0 for an unknown job).
func Floor(job string) time.Duration { return floors[job] }

// Connection kinds of task.conns.allow and hm_dynamic_req.aconns.
var connKinds = []string{"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix"}

// Config errors, for errors.Is.
var (
	// ErrUnknownJob: a job name that is none of the five.
	ErrUnknownJob = errors.New("unknown job")
	// ErrUnknownKind: a connection kind that is none of tcp, tcp4, tcp6,
	// udp, udp4, udp6, unix.
	ErrUnknownKind = errors.New("unknown connection kind")
)

// Config is the metrics-agent's conf/agent.conf: the basic.* keys of every
// agent and the task.* keys of config.md.
type Config struct {
	Basic libagent.Basic `kv:"basic"`
	Task  Task           `kv:"task"`
}

// Task is task.*.
type Task struct {
	// Jobs are the jobs enabled at start (a job list set by the server and
	// kept in the state file wins).
	Jobs    []string `kv:"jobs"`
	Static  Schedule `kv:"static"`
	Usage   Schedule `kv:"usage"`
	Process Process  `kv:"process"`
	Conns   Conns    `kv:"conns"`
	Temps   Schedule `kv:"temps"`
}

// Schedule is task.<job>.interval.
type Schedule struct {
	Interval utils.Duration `kv:"interval"`
}

// Process is task.process.*.
type Process struct {
	Interval utils.Duration `kv:"interval"`
	// Top keeps the N heaviest processes in pushed reports (0 = all).
	Top uint `kv:"top"`
	// QPSLimit bounds the /proc/<pid> directories read per second (0 =
	// unlimited).
	QPSLimit uint `kv:"qps_limit"`
}

// Conns is task.conns.*.
type Conns struct {
	Interval utils.Duration `kv:"interval"`
	QPSLimit uint           `kv:"qps_limit"`
	// Allow are the connection kinds collected.
	Allow []string `kv:"allow"`
}

// DefaultConfig returns the defaults of config.md. The config file is
// decoded over it (kvconf sets only the keys present).
func DefaultConfig() *Config {
	return &Config{
		Basic: libagent.DefaultBasic(),
		Task: Task{
			Jobs:    Jobs(),
			Static:  Schedule{Interval: utils.Duration(defaults[JobStatic])},
			Usage:   Schedule{Interval: utils.Duration(defaults[JobUsage])},
			Process: Process{Interval: utils.Duration(defaults[JobProcess]), QPSLimit: 200},
			Conns:   Conns{Interval: utils.Duration(defaults[JobConns]), QPSLimit: 500, Allow: []string{"tcp", "udp", "unix"}},
			Temps:   Schedule{Interval: utils.Duration(defaults[JobTemps])},
		},
	}
}

// Interval returns the configured interval of job.
func (t *Task) Interval(job string) time.Duration {
	switch job {
	case JobStatic:
		return time.Duration(t.Static.Interval)
	case JobUsage:
		return time.Duration(t.Usage.Interval)
	case JobProcess:
		return time.Duration(t.Process.Interval)
	case JobConns:
		return time.Duration(t.Conns.Interval)
	case JobTemps:
		return time.Duration(t.Temps.Interval)
	}
	return 0
}

func (t *Task) setInterval(job string, d time.Duration) {
	v := utils.Duration(d)
	switch job {
	case JobStatic:
		t.Static.Interval = v
	case JobUsage:
		t.Usage.Interval = v
	case JobProcess:
		t.Process.Interval = v
	case JobConns:
		t.Conns.Interval = v
	case JobTemps:
		t.Temps.Interval = v
	}
}

// Normalize enforces the floors of the intervals (raising a value below its
// floor, with a warning) and checks the job names and connection kinds.
// It returns the warnings; an error means the config cannot be used.
func (t *Task) Normalize() (warnings []string, err error) {
	for _, job := range jobNames {
		d, floor := t.Interval(job), floors[job]
		if d < floor {
			warnings = append(warnings, fmt.Sprintf("task.%s.interval %v is below its floor %v: using %v",
				job, utils.Duration(d), utils.Duration(floor), utils.Duration(floor)))
			t.setInterval(job, floor)
		}
	}
	jobs, err := ParseJobs(t.Jobs)
	if err != nil {
		return warnings, fmt.Errorf("task.jobs: %w", err)
	}
	t.Jobs = jobs
	kinds, err := parseKinds(t.Conns.Allow)
	if err != nil {
		return warnings, fmt.Errorf("task.conns.allow: %w", err)
	}
	t.Conns.Allow = kinds
	return warnings, nil
}

// ParseJobs checks job names (trimmed, case-insensitive) and returns them
// deduplicated in report order.
func ParseJobs(names []string) ([]string, error) {
	set := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if _, ok := floors[n]; !ok {
			return nil, fmt.Errorf("%w %q (want %s)", ErrUnknownJob, n, strings.Join(jobNames[:], ", "))
		}
		set[n] = true
	}
	jobs := []string{}
	for _, j := range jobNames {
		if set[j] {
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
}

func parseKinds(kinds []string) ([]string, error) {
	var out []string
	for _, k := range kinds {
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			continue
		}
		if !slices.Contains(connKinds, k) {
			return nil, fmt.Errorf("%w %q (want %s)", ErrUnknownKind, k, strings.Join(connKinds, ", "))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// allowedKinds narrows the kinds a request asks for to those task.conns.allow
// permits: a kind is kept when it is allowed itself or its family is
// ("tcp4" under "tcp"); a family asked for under narrower allowed kinds
// becomes those ("tcp" under "tcp4" is "tcp4"). An empty request asks for
// every allowed kind. Unknown requested kinds are dropped and returned.
func allowedKinds(req, allow []string) (kinds, dropped []string) {
	if len(req) == 0 {
		return slices.Clone(allow), nil
	}
	add := func(k string) {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for _, k := range req {
		k = strings.ToLower(strings.TrimSpace(k))
		switch {
		case k == "":
		case !slices.Contains(connKinds, k):
			dropped = append(dropped, k)
		case slices.Contains(allow, k):
			add(k)
		case len(k) == 4 && slices.Contains(allow, k[:3]): // tcp4 under tcp
			add(k)
		case k == "tcp" || k == "udp":
			for _, a := range allow {
				if strings.HasPrefix(a, k) {
					add(a)
				}
			}
		}
	}
	return kinds, dropped
}
