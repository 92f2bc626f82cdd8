// Package agent is the metrics-agent on the libagent runtime: its config
// (the task.* keys of config.md), the schedules of its five collection jobs
// (static, usage, process, conns, temps), the pushes of hm_static_rep (31),
// hm_dynamic_rep (33) and hm_agent_status (37), and the handlers of the
// server's requests 30, 32, 34 and 36.
//
// # Schedules
//
// Each enabled job runs once as soon as the agent is connected and then
// every task.<job>.interval; intervals below their floor (config.md) are
// raised to it with a warning. Ticks missed while a collection ran late are
// skipped, not caught up. While the agent is disconnected due jobs wait (the
// link is checked every Options.Retry) and run as soon as it is back, so a
// reconnect is followed by fresh data. hm_agent_status (37) is pushed every
// basic.monitor.interval and right after the jobs change, ahead of the
// reports due at the same time (a process walk never delays it).
//
// # Push shapes
//
// Dynamic categories due at the same time are collected by one
// collect.Collector.Dynamic call (one /proc walk serves processes and
// connections). To our agent-server — one that announced any extension
// capability in its handshake — they go out as one hm_dynamic_rep holding
// every category; a v1 server (no capabilities) gets one hm_dynamic_rep per
// category, as the deployed 1.x agents send. Pushed process lists keep the
// task.process.top heaviest processes.
//
// # Requests
//
// hm_static_req (30) and hm_dynamic_req (32) are answered with fresh data
// from the same Collector the schedules use, concurrently with the pushes
// (libagent runs handlers on its worker pool; a process walk younger than
// the collector's share window serves both). A request's top 0 means every
// process; its aconns are narrowed to task.conns.allow. hm_query_collect (34)
// is answered with the running jobs and the allowed kinds.
//
// # Switching jobs
//
// hm_change_collect_status (36) sets the running jobs (unknown names are
// logged and ignored; there is no reply). The list is kept in the state file
// under the key "jobs" — the operator's config is never rewritten — and at
// start it wins over task.jobs. Stopped jobs keep their counters; a job
// started again runs at once.
//
// # Counters
//
// hm_agent_status lists the running jobs with their interval (seconds), the
// reports pushed (ct) and the JSON bytes of their payloads pushed (bs), and
// warns: every collect.Warning since start, scheduled or requested. Each
// warning field is logged at warn level the first time and at debug level
// after.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/metrics-agent/internal/collect"
)

// StateKey is the state file key holding the jobs set by the server.
const StateKey = "jobs"

// Defaults of Options.
const (
	DefaultRetry        = time.Second
	DefaultPushTimeout  = 10 * time.Second
	DefaultRequestLimit = time.Minute
)

// Options tune an Agent. The zero value is right for production.
type Options struct {
	// Clock drives the schedules (default: the real clock).
	Clock Clock
	// Collect is the base of the collector's options; the QPS limits come
	// from the config.
	Collect collect.Options
	// Retry is how often due jobs check for a connection while the agent
	// is disconnected (default 1 s).
	Retry time.Duration
	// StatusInterval is the period of hm_agent_status (default
	// basic.monitor.interval).
	StatusInterval time.Duration
	// PushTimeout bounds the wait for room in the send queue (default 10 s).
	PushTimeout time.Duration
}

// Agent is the metrics-agent. Its Setup and Report go into libagent.Agent;
// Wait waits for the scheduler after libagent.Run returned.
//
// An Agent is used for one run. Its methods are safe for concurrent use.
type Agent struct {
	cfg   *Config
	opts  Options
	clock Clock

	rt  *libagent.Runtime
	log *slog.Logger
	col *collect.Collector

	mu      sync.Mutex
	enabled []string // running jobs, in report order
	stats   map[string]*jobStats
	logged  map[string]bool // warning fields logged at warn level

	warns atomic.Uint64
	wake  chan struct{} // jobs changed: reschedule now
	wg    sync.WaitGroup
}

type jobStats struct {
	bytes, count uint64
}

// New returns the agent for cfg, which libagent fills from the config file
// before Setup runs (start from DefaultConfig).
func New(cfg *Config, opts Options) *Agent {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultRetry
	}
	if opts.PushTimeout <= 0 {
		opts.PushTimeout = DefaultPushTimeout
	}
	a := &Agent{cfg: cfg, opts: opts, clock: opts.Clock, wake: make(chan struct{}, 1),
		stats: map[string]*jobStats{}, logged: map[string]bool{}}
	for _, j := range jobNames {
		a.stats[j] = &jobStats{}
	}
	return a
}

// Setup checks the task.* config, restores the jobs kept in the state file,
// registers the handlers of 30, 32, 34 and 36 and starts the scheduler,
// which stops when the run's context is done.
func (a *Agent) Setup(rt *libagent.Runtime) error {
	a.rt, a.log = rt, rt.Logger()
	warnings, err := a.cfg.Task.Normalize()
	for _, w := range warnings {
		a.log.Warn("config: " + w)
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if a.opts.StatusInterval <= 0 {
		a.opts.StatusInterval = time.Duration(a.cfg.Basic.Monitor.Interval)
		if a.opts.StatusInterval < libagent.MinMonitorInterval {
			a.opts.StatusInterval = libagent.MinMonitorInterval
		}
	}
	co := a.opts.Collect
	co.ProcessQPS, co.ConnsQPS = int(a.cfg.Task.Process.QPSLimit), int(a.cfg.Task.Conns.QPSLimit)
	a.col = collect.New(co)

	a.enabled = a.cfg.Task.Jobs
	if st := rt.State(); st != nil {
		var saved []string
		ok, err := st.Get(StateKey, &saved)
		switch {
		case err != nil:
			a.log.Warn("state file: cannot read the jobs set by the server; using task.jobs", "err", err)
		case ok:
			a.enabled = a.validJobs(saved)
			a.log.Info("jobs set by the server (state file) replace task.jobs", "jobs", a.enabled)
		}
	}

	rt.Handle(protocol.TypeHMStaticReq, a.handleStatic, libagent.WithTimeout(DefaultRequestLimit))
	rt.Handle(protocol.TypeHMDynamicReq, a.handleDynamic, libagent.WithTimeout(DefaultRequestLimit))
	rt.Handle(protocol.TypeHMQueryCollect, a.handleQuery)
	rt.Handle(protocol.TypeHMChangeCollectStatus, a.handleChange)
	ctx := rt.Context()
	a.wg.Go(func() { a.loop(ctx) })
	return nil
}

// Wait waits for the scheduler started by Setup to return (after the run's
// context is done).
func (a *Agent) Wait() { a.wg.Wait() }

// Report adds the running jobs and the warnings count to the self-report.
func (a *Agent) Report(extra map[string]any) {
	extra["jobs"] = a.Enabled()
	extra["warns"] = a.warns.Load()
}

// Enabled returns the running jobs in report order.
func (a *Agent) Enabled() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.enabled)
}

// Status returns the hm_agent_status payload: the running jobs with their
// counters and the warnings since start.
func (a *Agent) Status() *protocol.HMAgentStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &protocol.HMAgentStatus{Jobs: []protocol.HMAgentJob{}, Warnings: a.warns.Load()}
	for _, j := range a.enabled {
		s := a.stats[j]
		st.Jobs = append(st.Jobs, protocol.HMAgentJob{Name: j, Interval: uint64(a.cfg.Task.Interval(j) / time.Second),
			BytesSent: s.bytes, Count: s.count})
	}
	return st
}

// validJobs keeps the known names of jobs, logging the others.
func (a *Agent) validJobs(jobs []string) []string {
	var ok []string
	for _, j := range jobs {
		if _, err := ParseJobs([]string{j}); err != nil {
			a.log.Warn("ignoring job", "err", err)
			continue
		}
		ok = append(ok, j)
	}
	jobs, _ = ParseJobs(ok)
	return jobs
}

// setJobs makes jobs the running set, keeps it in the state file and wakes
// the scheduler.
func (a *Agent) setJobs(jobs []string) {
	a.mu.Lock()
	a.enabled = jobs
	a.mu.Unlock()
	if st := a.rt.State(); st != nil {
		if err := st.Set(StateKey, jobs); err != nil {
			a.log.Error("state file: cannot keep the jobs", "err", err)
		} else if err := st.Save(); err != nil {
			a.log.Error("state file: cannot keep the jobs", "err", err)
		}
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// warn counts and logs the warnings of one collection.
func (a *Agent) warn(what string, ws []collect.Warning) {
	if len(ws) == 0 {
		return
	}
	a.warns.Add(uint64(len(ws)))
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range ws {
		level := slog.LevelDebug
		if !a.logged[w.Field] {
			a.logged[w.Field] = true
			level = slog.LevelWarn
		}
		a.log.Log(context.Background(), level, "collect: "+what+": figure left out", "field", w.Field, "err", w.Err)
	}
}

// multiCategory reports whether the server takes several categories in one
// hm_dynamic_rep: ours announces extension capabilities, a v1 server none.
func (a *Agent) multiCategory() bool {
	return slices.ContainsFunc(protocol.Caps(), a.rt.HasCap)
}

var errNoConnection = errors.New("not connected")
