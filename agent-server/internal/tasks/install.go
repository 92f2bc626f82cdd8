package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentfleet/agent-server/internal/store"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/installsvc"
)

// Fleet installs: a fleet task whose Request has Install instead of a
// command runs the install service on each agent, with the same rollout
// control (concurrency, max_errors, canary), results and events. The
// agent's action log is its output in the event stream (one JSON action
// per line) and AgentResult.Actions in the task. A cancel starts no new
// install and does not stop running ones (an installer cut short leaves
// the host worse off); they run to their end. The password is kept in
// memory only: a task resumed after a server restart installs on its
// remaining agents without it.

// InstallAction is one action of a host's install log, as the seed's
// /install/status shows it.
type InstallAction struct {
	Action string `json:"action"`
	Name   string `json:"name"`
	Time   int64  `json:"time"`
	OK     bool   `json:"ok"`
	Msg    string `json:"msg"`
}

// Actions returns an agent's action log of an install task ([] when none
// or when the store keeps no install logs).
func (s *Service) Actions(ctx context.Context, taskID, agentID string) ([]InstallAction, error) {
	as, err := s.storedActions(ctx, taskID, agentID)
	if err != nil {
		return nil, err
	}
	return seedActions(as), nil
}

func (s *Service) storedActions(ctx context.Context, taskID, agentID string) ([]store.InstallAction, error) {
	is, ok := s.st.(store.InstallStore)
	if !ok {
		return nil, nil
	}
	return is.ListInstallActions(ctx, taskID, agentID)
}

func seedActions(as []store.InstallAction) []InstallAction {
	out := make([]InstallAction, 0, len(as))
	for _, a := range as {
		out = append(out, InstallAction{Action: a.Action, Name: a.Name, Time: a.Time, OK: a.OK, Msg: a.Msg})
	}
	return out
}

// isInstall reports whether a stored task is a fleet install.
func isInstall(t store.Task) bool {
	if t.Kind != store.KindFleet {
		return false
	}
	var spec struct {
		Install *json.RawMessage `json:"install"`
	}
	return json.Unmarshal(t.Spec, &spec) == nil && spec.Install != nil
}

// Install output: an install's output is its host's action log, one JSON
// action per line (installsvc.RenderLog), the same bytes the event stream
// carries in its output events. The result of an install host in the API
// (GET /api/tasks/{id}, .../agents/{agent}/output) has it as its output:
// output_bytes its size, output_head and output_tail its ends, and the
// output route serves it, so that a client that saw part of it (or none:
// the task ended before its stream opened) reads the rest from the offset
// it reached, as for commands.

// installHead and installTail are the ends of the log in a task view (as
// the exec service keeps for commands); the rest is at the output route.
const installHead, installTail = 4 << 10, 4 << 10

// withInstallOutput returns r with the action log as its output.
func withInstallOutput(r store.Result, log []byte) store.Result {
	r.OutputBytes, r.Dropped = int64(len(log)), 0
	h := log[:min(len(log), installHead)]
	t := log[len(h):]
	if len(t) > installTail {
		t = t[len(t)-installTail:]
	}
	r.OutputHead, r.OutputTail = h, t
	return r
}

// InstallOutput returns an agent's output of an install task (its action
// log, see above); ok is false for a task that is not an install.
func (s *Service) InstallOutput(ctx context.Context, id, agent string) (log []byte, ok bool, err error) {
	t, err := s.st.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil || !isInstall(t) {
		return nil, false, err
	}
	as, err := s.storedActions(ctx, id, agent)
	if err != nil {
		return nil, true, err
	}
	return installsvc.RenderLog(as), true, nil
}

// InstallStatus is an install task as the seed's /install/status shows
// it, per host.
type InstallStatus struct {
	ID    string `json:"id"`
	State string `json:"state"` // the task's
	// Done: the task has ended (every host's install with it).
	Done bool `json:"done"`
	// Actions is the log of the install's only host (the seed's body);
	// for several hosts each has its own in Hosts.
	Actions []InstallAction `json:"actions"`
	Hosts   []InstallHost   `json:"hosts"`
}

// InstallHost is one host's part of an install task.
type InstallHost struct {
	Agent   string          `json:"agent"`
	State   string          `json:"state"`
	Msg     string          `json:"msg,omitempty"`
	Done    bool            `json:"done"`
	Actions []InstallAction `json:"actions"`
}

// MaxInstallHosts bounds the hosts InstallStatus returns (a fleet task's
// full per-host view is GET /api/tasks/{id}, paged).
const MaxInstallHosts = store.MaxPageSize

// InstallStatus returns an install task's status; ErrNotFound for a task
// that is not an install.
func (s *Service) InstallStatus(ctx context.Context, id string) (InstallStatus, error) {
	t, err := s.st.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && t.Kind != store.KindFleet {
		return InstallStatus{}, fmt.Errorf("install task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return InstallStatus{}, err
	}
	var spec fleetSpec
	if err := json.Unmarshal(t.Spec, &spec); err != nil || spec.Install == nil {
		return InstallStatus{}, fmt.Errorf("install task %s: %w", id, ErrNotFound)
	}
	st := InstallStatus{ID: id, State: string(t.State), Done: t.State.Final(), Actions: []InstallAction{}, Hosts: []InstallHost{}}
	rs, _, err := s.st.ListResults(ctx, id, store.ResultFilter{Paging: store.Paging{Page: 1, Size: MaxInstallHosts}})
	if err != nil {
		return InstallStatus{}, err
	}
	for _, r := range rs {
		acts, err := s.Actions(ctx, id, r.AgentID)
		if err != nil {
			return InstallStatus{}, err
		}
		st.Hosts = append(st.Hosts, InstallHost{Agent: r.AgentID, State: string(r.State), Msg: r.Msg, Done: r.State.Final(), Actions: acts})
	}
	if len(st.Hosts) == 1 {
		st.Actions = st.Hosts[0].Actions
		st.Done = st.Hosts[0].Done
	}
	return st, nil
}

// Installer starts one agent's install of a fleet task, and asks an agent
// about an install started before a restart (its answer is stored by the
// install service).
type Installer interface {
	StartInstall(ctx context.Context, agentID, taskID string, spec installsvc.Spec) (Handle, error)
	AskInstall(ctx context.Context, agentID, taskID string) error
}

// NewInstaller adapts the install service.
func NewInstaller(svc *installsvc.Service) Installer { return installer{svc} }

type installer struct{ svc *installsvc.Service }

func (i installer) StartInstall(ctx context.Context, agentID, taskID string, spec installsvc.Spec) (Handle, error) {
	r, err := i.svc.Start(ctx, agentID, taskID, spec)
	if r == nil {
		return nil, err
	}
	return r, err
}

func (i installer) AskInstall(ctx context.Context, agentID, taskID string) error {
	return i.svc.Ask(ctx, agentID, taskID)
}

// unkillable is a Handle that is waited for, not killed, on cancel.
type unkillable interface{ Unkillable() bool }

// installCommand validates an install request. The Command only carries
// the timeout (how long a resumed task waits for a result).
func (r *Request) installCommand() (Command, error) {
	bad := func(f string, a ...any) (Command, error) {
		return Command{}, fault.Invalidf(ErrInvalid, f, a...)
	}
	switch {
	case r.Cmd != "" || r.Script != "" || len(r.Args) > 0 || r.Type != "":
		return bad("install: no cmd, args, script or type with it")
	case r.Auth != "" || r.User != "" || r.WorkDir != "" || len(r.Env) > 0 || r.Timeout != 0:
		return bad("install: auth, user, timeout go inside install; workdir and env do not apply")
	case r.WaitOffline < 0 || time.Duration(r.WaitOffline) > MaxTimeout:
		return bad("wait_offline: must be between 0 and %s", MaxTimeout)
	}
	if err := r.Install.Check(); err != nil {
		return Command{}, err
	}
	p := r.plan()
	if err := p.Validate(); err != nil {
		return bad("%s", fault.Message(err))
	}
	return Command{Timeout: r.Install.Duration()}, nil
}

// start launches agent id's part: its command, or its install.
func (f *fleetRun) start(ctx context.Context, id string) (Handle, error) {
	s := f.s
	if f.spec.Install == nil {
		return s.x.Start(ctx, id, f.cmd, StartOptions{TaskID: f.id, CreatedBy: f.createdBy})
	}
	if s.o.Install == nil {
		return nil, fault.Invalidf(ErrInvalid, "install: this server does not run installs")
	}
	return s.o.Install.StartInstall(ctx, id, f.id, *f.spec.Install)
}
