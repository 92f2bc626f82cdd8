package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"
	"github.com/agentfleet/libagent/statefile"

	"github.com/agentfleet/log-agent/internal/project"
)

// ServerProjectsFile caches the last project list the server pushed, under
// collect.data_dir.
const ServerProjectsFile = "server-projects.json"

// DefaultStatusEvery is how often the projects' status is sent.
const DefaultStatusEvery = 10 * time.Second

// registerServer installs the handlers of the log.v1 messages, resumes the
// cached server projects and starts the status loop.
func (a *Agent) registerServer(rt *libagent.Runtime) {
	// Inline, in arrival order: the newest list wins, and one goroutine
	// applies them (handlers on the worker pool could overtake each other).
	rt.Handle(protocol.TypeLogConfig, func(ctx context.Context, m *protocol.Msg, _ libagent.Replier) error {
		var cfg protocol.LogConfig
		if err := m.GetExtra(protocol.KeyLogConfig, &cfg); err != nil {
			return err
		}
		a.cfgMu.Lock()
		a.pending = &cfg
		a.cfgMu.Unlock()
		select {
		case a.cfgCh <- struct{}{}:
		default:
		}
		return nil
	}, libagent.Inline())
	if a.remote != nil {
		rt.Handle(protocol.TypeLogAck, func(_ context.Context, m *protocol.Msg, _ libagent.Replier) error {
			if err := a.remote.Ack(m); err != nil {
				a.log.Debug("log ack dropped", "tid", m.TID, "err", err)
			}
			return nil
		}, libagent.Inline())
	}
	if cfg, err := a.loadServerProjects(); err != nil {
		a.log.Error("cached server projects not resumed", "err", err)
	} else if cfg != nil {
		a.apply(cfg.Projects)
	}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		a.statusLoop(a.ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.applyLoop(a.ctx)
	}()
}

// applyLoop applies the newest project list the server pushed.
func (a *Agent) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.cfgCh:
		}
		a.cfgMu.Lock()
		cfg := a.pending
		a.pending = nil
		a.cfgMu.Unlock()
		if cfg == nil {
			continue
		}
		if err := a.saveServerProjects(cfg); err != nil {
			a.log.Error("cannot cache the server's projects", "err", err)
		}
		a.apply(cfg.Projects)
	}
}

func (a *Agent) serverProjectsPath() string {
	return filepath.Join(a.path(a.cfg.Collect.DataDir), ServerProjectsFile)
}

func (a *Agent) saveServerProjects(cfg *protocol.LogConfig) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.path(a.cfg.Collect.DataDir), 0o755); err != nil {
		return err
	}
	return statefile.WriteAtomic(a.serverProjectsPath(), b, 0o600) // k8s tokens inside
}

func (a *Agent) loadServerProjects() (*protocol.LogConfig, error) {
	b, err := os.ReadFile(a.serverProjectsPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfg protocol.LogConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", a.serverProjectsPath(), err)
	}
	return &cfg, nil
}

// apply makes the server projects the running set: new or changed running
// ones start (a changed one restarts from its checkpoints), stopped ones
// stop, and the ones missing from the list stop and lose their state.
func (a *Agent) apply(list []protocol.LogProject) {
	want := map[string]protocol.LogProject{}
	for _, lp := range list {
		want[lp.Name] = lp
	}
	a.mu.Lock()
	var stop []*run
	var remove []string
	for name, r := range a.runs {
		if r.local {
			continue
		}
		lp, ok := want[name]
		if !ok || !lp.Running || string(lp.Spec) != r.spec {
			stop = append(stop, r)
			delete(a.runs, name)
		}
	}
	// Projects of the previous list missing from this one are removed,
	// stopped ones included.
	for name := range a.known {
		if _, ok := want[name]; !ok {
			if r := a.runs[name]; r == nil || !r.local {
				remove = append(remove, name)
			}
		}
	}
	a.known = map[string]bool{}
	for name := range want {
		a.known[name] = true
	}
	for name := range a.errs {
		if lp, ok := want[name]; !ok || !lp.Running {
			delete(a.errs, name)
		}
	}
	a.mu.Unlock()
	for _, r := range stop {
		r.cancel()
		<-r.done
		a.log.Info("project stopped", "project", r.p.Name)
	}
	for _, name := range remove {
		if !validName(name) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(a.path(a.cfg.Collect.DataDir), name)); err != nil {
			a.log.Error("state of a removed project not deleted", "project", name, "err", err)
		}
	}
	for _, lp := range list {
		if !lp.Running {
			continue
		}
		a.mu.Lock()
		r, exists := a.runs[lp.Name]
		a.mu.Unlock()
		if exists {
			if r.local {
				a.setErr(lp.Name, "a project of this name is in the local projects file")
			}
			continue
		}
		p, err := project.Decode(lp.Spec)
		if err == nil && p.Name != lp.Name {
			err = fmt.Errorf("name %q in a project pushed as %q", p.Name, lp.Name)
		}
		if err != nil {
			a.log.Error("project from the server refused", "project", lp.Name, "err", err)
			a.setErr(lp.Name, err.Error())
			continue
		}
		a.start(p, string(lp.Spec), false)
		a.log.Info("project started", "project", p.Name, "type", p.Type)
	}
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *Agent) setErr(name, msg string) {
	a.mu.Lock()
	a.errs[name] = msg
	a.mu.Unlock()
}

func validName(n string) bool {
	_, err := project.Decode([]byte(`{"name":` + mustJSON(n) + `,"type":"logtail","paths":["/x"]}`))
	return err == nil
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// statusLoop sends log_status every StatusEvery and after each change,
// while connected to a server that takes it.
func (a *Agent) statusLoop(ctx context.Context) {
	every := a.opts.StatusEvery
	if every <= 0 {
		every = DefaultStatusEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.changed:
		}
		if !a.rt.HasCap(protocol.CapLog) {
			continue
		}
		var st protocol.LogStatus
		for _, s := range a.Status() {
			b, err := json.Marshal(s)
			if err != nil {
				continue
			}
			st.Projects = append(st.Projects, b)
		}
		m := &protocol.Msg{Type: protocol.TypeLogStatus}
		if err := m.SetExtra(protocol.KeyLogStatus, &st); err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.rt.Push(pctx, m); err != nil && !errors.Is(err, libagent.ErrNotConnected) {
			a.log.Warn("log status not sent", "err", err)
		}
		cancel()
	}
}
