// Package agent is log-agent on the libagent runtime: its config (the
// collect.* keys), one collector per log-collection project, and the
// projects' status in the self-report (key "logging", the seed's
// task_info per node).
//
// Projects come from agent-server over the session (protocol.CapLog:
// log_config, the node's whole list, cached in <data_dir>/server-projects.json
// so that a restart without the server resumes them) and from a local JSON
// file (collect.projects: an array of the objects package project
// describes; a server project of the same name is refused). The batches go
// where collect.sink says: to the server ("server", package remote, the
// default), stay in the spool ("spool"), into a directory ("file:<dir>",
// package sink) or nowhere ("discard"). The projects' status goes to the
// server as log_status when they change and every StatusEvery.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/jkframe/utils"
	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/logship"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/log-agent/internal/collector"
	"github.com/agentfleet/log-agent/internal/docker"
	"github.com/agentfleet/log-agent/internal/k8s"
	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/remote"
	"github.com/agentfleet/log-agent/internal/sink"
	"github.com/agentfleet/log-agent/internal/tail"
)

// Name is the agent type the server sees.
const Name = "log-agent"

// Config is conf/agent.conf.
type Config struct {
	Basic   libagent.Basic `kv:"basic"`
	Collect Collect        `kv:"collect"`
}

// Collect holds the collect.* keys.
type Collect struct {
	// Projects is the local projects file (JSON array); empty: none.
	Projects string `kv:"projects"`
	// DataDir holds one folder per project: checkpoints and spool.
	DataDir string `kv:"data_dir"`
	// Sink: server, spool, discard or file:<dir>.
	Sink      string         `kv:"sink"`
	SpoolSize utils.Bytes    `kv:"spool_size"`
	Poll      utils.Duration `kv:"poll"`
	Scan      utils.Duration `kv:"scan"`
	// RotateWait is how long a renamed or deleted file is read after it
	// stopped growing.
	RotateWait utils.Duration `kv:"rotate_wait"`
	// CheckpointInterval is how often checkpoints are saved (after an
	// fsync of the spool).
	CheckpointInterval utils.Duration `kv:"checkpoint_interval"`
	// HostRoot is put in front of every path (the agent in a container
	// with the host's / mounted there).
	HostRoot     string `kv:"host_root"`
	DockerSocket string `kv:"docker_socket"`
	// K8sNode is this node's name for the pods' spec.nodeName.
	K8sNode string `kv:"k8s_node,env"`
	// PodsDir is where the kubelet keeps the pods' logs.
	PodsDir string `kv:"pods_dir"`
	// ContainerdRoot holds the containers' root filesystems (the "dir"
	// of k8s projects).
	ContainerdRoot string `kv:"containerd_root"`
}

// Defaults of the collect.* keys.
const (
	DefaultSpoolSize      = 256 << 20
	MinSpoolSize          = 16 << 20
	DefaultDockerSocket   = "/var/run/docker.sock"
	DefaultPodsDir        = "/var/log/pods"
	DefaultContainerdRoot = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"
)

// DefaultConfig returns the defaults of every key.
func DefaultConfig() *Config {
	return &Config{Basic: libagent.DefaultBasic(), Collect: Collect{
		Projects: "./conf/projects.json", DataDir: "./data", Sink: "server",
		SpoolSize: DefaultSpoolSize, Poll: utils.Duration(tail.DefaultPoll), Scan: utils.Duration(tail.DefaultScan),
		RotateWait: utils.Duration(tail.DefaultRotateWait), CheckpointInterval: utils.Duration(collector.DefaultCheckpointEvery),
		DockerSocket: DefaultDockerSocket,
		PodsDir:      DefaultPodsDir, ContainerdRoot: DefaultContainerdRoot,
	}}
}

// Check validates the collect.* keys.
func (c *Collect) Check() error {
	switch {
	case c.Sink == "server" || c.Sink == "spool" || c.Sink == "discard":
	case strings.HasPrefix(c.Sink, "file:") && len(c.Sink) > len("file:"):
	default:
		return fmt.Errorf("collect.sink: %q: want server, spool, discard or file:<dir>", c.Sink)
	}
	if c.SpoolSize < MinSpoolSize {
		return fmt.Errorf("collect.spool_size: %s: at least %s", c.SpoolSize, utils.Bytes(MinSpoolSize))
	}
	if c.DataDir == "" {
		return errors.New("collect.data_dir: required")
	}
	if c.Poll < utils.Duration(time.Millisecond) || c.Scan < utils.Duration(time.Millisecond) || c.RotateWait < 0 {
		return errors.New("collect.poll and collect.scan: at least 1ms")
	}
	if c.CheckpointInterval < utils.Duration(10*time.Millisecond) {
		return errors.New("collect.checkpoint_interval: at least 10ms")
	}
	return nil
}

// Options tune an Agent; the zero value is right for production.
type Options struct {
	// BaseDir resolves relative paths (default: the executable's folder).
	BaseDir string
	// Tail overrides the tailer's timing (tests).
	Tail tail.Options
	// CheckpointEvery overrides the checkpoint period (tests).
	CheckpointEvery time.Duration
	// StatusEvery is how often log_status is sent (default 10 s).
	StatusEvery time.Duration
}

// Agent is log-agent. Setup starts the collectors; they stop when the
// run's context ends, and Wait waits for them.
type Agent struct {
	cfg  *Config
	opts Options
	log  *slog.Logger

	rt      *libagent.Runtime
	ctx     context.Context
	sk      collector.Sink
	remote  *remote.Sink
	changed chan struct{} // a status worth sending now (buffered 1)
	cfgCh   chan struct{} // a pushed project list waits in pending (buffered 1)
	cfgMu   sync.Mutex
	pending *protocol.LogConfig

	mu    sync.Mutex
	runs  map[string]*run   // by project name
	known map[string]bool   // the server projects of the last list
	errs  map[string]string // project → error starting it
	wg    sync.WaitGroup
	sinkC func() error
}

// run is one project's collector goroutine.
type run struct {
	p      *project.Project
	spec   string // the JSON it was started from (server projects)
	local  bool   // from the local projects file
	col    *collector.Collector
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns the agent for cfg (filled by libagent from the config file
// before Setup).
func New(cfg *Config, opts Options) *Agent {
	return &Agent{cfg: cfg, opts: opts, errs: map[string]string{}, runs: map[string]*run{}, changed: make(chan struct{}, 1), cfgCh: make(chan struct{}, 1)}
}

// Describe returns the libagent.Agent.
func (a *Agent) Describe() *libagent.Agent {
	return &libagent.Agent{Name: Name, Config: a.cfg, Setup: a.Setup, Report: a.Report, Caps: []string{protocol.CapLog}}
}

func (a *Agent) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	base := a.opts.BaseDir
	if base == "" {
		if exe, err := os.Executable(); err == nil {
			base = filepath.Dir(exe)
		}
	}
	return filepath.Join(base, p)
}

// Setup checks the config, loads the projects and starts a collector per
// project.
func (a *Agent) Setup(rt *libagent.Runtime) error {
	a.log = rt.Logger()
	c := &a.cfg.Collect
	if err := c.Check(); err != nil {
		return err
	}
	projects, err := a.loadProjects()
	if err != nil {
		return err
	}
	var sk collector.Sink
	switch {
	case c.Sink == "server":
		a.remote = remote.New(rt, 0)
		sk = a.remote
	case c.Sink == "discard":
		sk = sink.Discard{}
	case strings.HasPrefix(c.Sink, "file:"):
		fs, err := sink.NewFile(a.path(strings.TrimPrefix(c.Sink, "file:")))
		if err != nil {
			return err
		}
		sk, a.sinkC = fs, fs.Close
	}
	ctx := rt.Context()
	a.rt, a.ctx, a.sk = rt, ctx, sk
	for _, p := range projects {
		a.start(p, "", true)
	}
	a.registerServer(rt)
	go func() {
		<-ctx.Done()
		a.wg.Wait()
		if a.sinkC != nil {
			_ = a.sinkC()
		}
	}()
	return nil
}

// Wait waits for the collectors after the run's context ended.
func (a *Agent) Wait() { a.wg.Wait() }

func (a *Agent) loadProjects() ([]*project.Project, error) {
	path := a.path(a.cfg.Collect.Projects)
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("collect.projects: %w", err)
	}
	ps, err := project.DecodeList(b)
	if err != nil {
		return nil, fmt.Errorf("collect.projects %s: %w", path, err)
	}
	return ps, nil
}

// start runs one project's collector, restarting it with backoff when it
// fails, until its run is stopped or the agent shuts down.
func (a *Agent) start(p *project.Project, spec string, local bool) {
	ctx, cancel := context.WithCancel(a.ctx)
	sk := a.sk
	c := &a.cfg.Collect
	to := a.opts.Tail
	if to.Poll == 0 {
		to.Poll = time.Duration(c.Poll)
	}
	if to.Scan == 0 {
		to.Scan = time.Duration(c.Scan)
	}
	if to.RotateWait == 0 {
		to.RotateWait = time.Duration(c.RotateWait)
	}
	to.Root = a.path(c.HostRoot)
	var disc collector.Discovery
	switch p.Type {
	case logship.TypeDocker:
		disc = docker.NewDiscovery(docker.Options{Project: p, Socket: a.path(c.DockerSocket), HostRoot: to.Root, Log: a.log})
	case logship.TypeK8s:
		disc = k8s.NewDiscovery(k8s.Options{Project: p, Node: c.K8sNode, PodsDir: c.PodsDir,
			ContainerdRoot: c.ContainerdRoot, HostRoot: to.Root, Log: a.log})
	}
	every := a.opts.CheckpointEvery
	if every == 0 {
		every = time.Duration(c.CheckpointInterval)
	}
	col, err := collector.New(collector.Options{
		Project: p, Dir: filepath.Join(a.path(c.DataDir), p.Name), Sink: sk, Discovery: disc,
		SpoolBytes: int64(c.SpoolSize), Log: a.log, Tail: to, CheckpointEvery: every,
	})
	if err != nil {
		cancel()
		a.log.Error("project not started", "project", p.Name, "err", err)
		a.mu.Lock()
		a.errs[p.Name] = err.Error()
		a.mu.Unlock()
		return
	}
	r := &run{p: p, spec: spec, local: local, col: col, cancel: cancel, done: make(chan struct{})}
	a.mu.Lock()
	delete(a.errs, p.Name)
	a.runs[p.Name] = r
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(r.done)
		bo := &backoff.Backoff{Min: time.Second, Max: time.Minute}
		for {
			err := col.Run(ctx)
			if ctx.Err() != nil {
				return
			}
			a.log.Error("project stopped; restarting", "project", p.Name, "err", err)
			if backoff.Sleep(ctx, nil, bo.Next()) != nil {
				return
			}
			// A failed run closed its spool: start a fresh collector.
			ncol, nerr := collector.New(collector.Options{
				Project: p, Dir: filepath.Join(a.path(c.DataDir), p.Name), Sink: sk, Discovery: disc,
				SpoolBytes: int64(c.SpoolSize), Log: a.log, Tail: to, CheckpointEvery: every,
			})
			if nerr != nil {
				a.log.Error("project not restarted", "project", p.Name, "err", nerr)
				continue
			}
			a.mu.Lock()
			r.col = ncol
			a.mu.Unlock()
			col = ncol
		}
	}()
}

// Status returns every project's status, by name.
func (a *Agent) Status() []collector.Status {
	a.mu.Lock()
	cols := make([]*collector.Collector, 0, len(a.runs))
	for _, r := range a.runs {
		cols = append(cols, r.col)
	}
	errs := make(map[string]string, len(a.errs))
	for k, v := range a.errs {
		errs[k] = v
	}
	// The server's projects stopped here are reported too (not running),
	// so that the server sees a stop done, not only asked for.
	var stopped []string
	for name := range a.known {
		if _, ok := a.runs[name]; !ok && errs[name] == "" {
			stopped = append(stopped, name)
		}
	}
	a.mu.Unlock()
	out := make([]collector.Status, 0, len(cols)+len(errs)+len(stopped))
	for _, c := range cols {
		out = append(out, c.Status())
	}
	for name, e := range errs {
		out = append(out, collector.Status{Name: name, LastError: e, Errors: 1})
	}
	for _, name := range stopped {
		out = append(out, collector.Status{Name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Report adds the projects' status to the self-report.
func (a *Agent) Report(extra map[string]any) { extra["logging"] = a.Status() }
