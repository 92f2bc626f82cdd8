package tasks

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/rollout"
	"github.com/agentfleet/agent-server/internal/store"
)

// Limits of upgrade requests.
const (
	DefaultUpgradeDeadline = 2 * time.Minute
	DefaultUpgradeStay     = 10 * time.Second
	MaxUpgradeDeadline     = 24 * time.Hour
	maxSignatures          = 64
)

// ErrNoUpgrader: the service has no Upgrader (503).
var ErrNoUpgrader = errors.New("agent upgrades are not available on this server")

// UpgradeRequest is the body of POST /api/agents/upgrade: which agents
// (selector and agent type), which binary (a package of the repository,
// or a release version, i.e. the package <type>_<version>_<os>_<arch>),
// the watchdog's deadline and the rollout.
type UpgradeRequest struct {
	Selector  Selector `json:"selector"`
	AgentType string   `json:"agent_type"`
	Package   string   `json:"package,omitempty"`
	Version   string   `json:"version,omitempty"`
	// Signature is the .sig text of Package (make release writes it);
	// Signatures maps package names to theirs (with Version: one per
	// os/arch). Without one the repository's <name>.sig is used, if any.
	Signature  string            `json:"signature,omitempty"`
	Signatures map[string]string `json:"signatures,omitempty"`
	// Deadline: the new binary must connect and stay up Stay within it
	// (from the swap), or the agent's watchdog rolls back. Default 120 s.
	Deadline    Seconds       `json:"deadline,omitempty"`
	Stay        Seconds       `json:"stay,omitempty"` // default 10 s
	Concurrency rollout.Limit `json:"concurrency"`
	MaxErrors   rollout.Limit `json:"max_errors"`
	Canary      int           `json:"canary,omitempty"`
	BatchWait   Seconds       `json:"batch_wait,omitempty"`
	WaitOffline Seconds       `json:"wait_offline,omitempty"`
}

// UpgradeSpec is what an Upgrader does on each agent.
type UpgradeSpec struct {
	Task       string
	AgentType  string
	Package    string // "" with Version
	Version    string
	Signatures map[string]string // package name → .sig text
	Deadline   time.Duration
	Stay       time.Duration
}

// Upgrader upgrades one agent (package upgrade).
type Upgrader interface {
	// Check tells whether the spec's binary can be offered at all (the
	// package exists), before the task is created.
	Check(ctx context.Context, spec UpgradeSpec) error
	// Upgrade offers the binary to the agent and returns once the outcome
	// is known: a message saying what happened, and an error when the
	// agent refused, rolled back or did not come back.
	Upgrade(ctx context.Context, agentID string, spec UpgradeSpec) (string, error)
}

var (
	reAgentType = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	reVersion   = regexp.MustCompile(`^v?[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$`)
	rePackage   = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+~-]{0,199}$`)
	reSig       = regexp.MustCompile(`^\s*[A-Za-z0-9+/]{86}==\s*$`)
)

// spec validates r.
func (r *UpgradeRequest) spec() (UpgradeSpec, error) {
	bad := func(f string, a ...any) (UpgradeSpec, error) {
		return UpgradeSpec{}, fault.Invalidf(ErrInvalid, f, a...)
	}
	sp := UpgradeSpec{AgentType: r.AgentType, Package: r.Package, Version: r.Version, Deadline: time.Duration(r.Deadline), Stay: time.Duration(r.Stay)}
	switch {
	case r.AgentType == "":
		return bad("agent_type: missing (exec-agent, metrics-agent, …)")
	case !reAgentType.MatchString(r.AgentType):
		return bad("agent_type: %q is not an agent type", r.AgentType)
	case r.Package == "" && r.Version == "":
		return bad("package or version: give one")
	case r.Package != "" && r.Version != "":
		return bad("package and version: give one")
	case r.Package != "" && !rePackage.MatchString(r.Package):
		return bad("package: %q is not a package name", r.Package)
	case r.Version != "" && !reVersion.MatchString(r.Version):
		return bad("version: %q is not a version", r.Version)
	case r.Signature != "" && r.Package == "":
		return bad("signature: only with package (use signatures with version)")
	case len(r.Signatures) > maxSignatures:
		return bad("signatures: more than %d", maxSignatures)
	case sp.Deadline < 0 || sp.Deadline > MaxUpgradeDeadline:
		return bad("deadline: must be between 0 and %s", MaxUpgradeDeadline)
	case sp.Stay < 0:
		return bad("stay: must not be negative")
	case r.WaitOffline < 0 || time.Duration(r.WaitOffline) > MaxTimeout:
		return bad("wait_offline: must be between 0 and %s", MaxTimeout)
	}
	sp.Signatures = map[string]string{}
	for name, sig := range r.Signatures {
		if !rePackage.MatchString(name) {
			return bad("signatures: %q is not a package name", name)
		}
		if !reSig.MatchString(sig) {
			return bad("signatures: %s: not a base64 signature", name)
		}
		sp.Signatures[name] = sig
	}
	if r.Signature != "" {
		if !reSig.MatchString(r.Signature) {
			return bad("signature: not a base64 signature")
		}
		sp.Signatures[r.Package] = r.Signature
	}
	if sp.Deadline == 0 {
		sp.Deadline = DefaultUpgradeDeadline
	}
	if sp.Stay == 0 {
		sp.Stay = min(DefaultUpgradeStay, (sp.Deadline / 2).Truncate(time.Second))
	}
	if sp.Stay == 0 {
		return bad("deadline: at least 2s")
	}
	if sp.Stay >= sp.Deadline {
		return bad("stay: must be shorter than deadline (%s)", sp.Deadline)
	}
	if sp.Deadline%time.Second != 0 || sp.Stay%time.Second != 0 {
		return bad("deadline and stay: whole seconds")
	}
	p := rollout.Plan{Concurrency: r.Concurrency, MaxErrors: r.MaxErrors, Canary: r.Canary, BatchWait: time.Duration(r.BatchWait)}
	if err := p.Validate(); err != nil {
		return bad("%s", fault.Message(err))
	}
	return sp, nil
}

// upgradeSpec is the stored spec of an upgrade task.
type upgradeSpec struct {
	UpgradeRequest
	Agents []string `json:"agents"`
}

// SubmitUpgrade validates req, selects the agents of its type, stores the
// task (kind upgrade) and starts it.
func (s *Service) SubmitUpgrade(ctx context.Context, req UpgradeRequest, createdBy string) (store.Task, error) {
	if s.o.Upgrader == nil {
		return store.Task{}, ErrNoUpgrader
	}
	sp, err := req.spec()
	if err != nil {
		return store.Task{}, err
	}
	ids, err := s.resolveType(ctx, req.Selector, req.AgentType)
	if err != nil {
		return store.Task{}, err
	}
	if len(ids) == 0 {
		return store.Task{}, fault.Invalidf(ErrInvalid, "selector: matches no agents of type %s", req.AgentType)
	}
	if err := s.o.Upgrader.Check(ctx, sp); err != nil {
		return store.Task{}, err
	}
	now := time.Now()
	t, err := s.createTask(ctx, store.Task{Kind: store.KindUpgrade, Spec: mustJSON(upgradeSpec{UpgradeRequest: req, Agents: ids}), State: store.TaskRunning, CreatedBy: createdBy, CreatedAt: now, StartedAt: now})
	if err != nil {
		return store.Task{}, fmt.Errorf("create task: %w", err)
	}
	sp.Task = t.ID
	for k, v := range sp.Signatures {
		sp.Signatures[k] = strings.TrimSpace(v)
	}
	rs := make([]store.Result, len(ids))
	ur := &upgradeRun{s: s, id: t.ID, req: req, spec: sp, agents: ids, waitUntil: now.Add(time.Duration(req.WaitOffline))}
	for i, id := range ids {
		rs[i] = store.Result{TaskID: t.ID, AgentID: id, State: store.ResultPending}
		if _, ok := s.x.Online(id); !ok && req.WaitOffline <= 0 {
			rs[i].State, rs[i].Msg = store.ResultLost, "agent offline at start"
			continue
		}
		ur.todo = append(ur.todo, i)
	}
	return s.launch(ctx, t, rs, ur.run)
}

// upgradeRun is one upgrade task being run.
type upgradeRun struct {
	s         *Service
	id        string
	req       UpgradeRequest
	spec      UpgradeSpec
	agents    []string
	todo      []int
	waitUntil time.Time
}

func (u *upgradeRun) run(ctx context.Context, r *run) {
	s := u.s
	o := rollout.Options{
		Plan:  rollout.Plan{Concurrency: u.req.Concurrency, MaxErrors: u.req.MaxErrors, Canary: u.req.Canary, BatchWait: time.Duration(u.req.BatchWait)},
		Total: len(u.agents),
	}
	var failed atomic.Int64
	rep := rollout.Run(ctx, u.todo, o, func(ctx context.Context, i int) bool {
		ok := u.agent(ctx, r, i)
		if !ok {
			failed.Add(1)
		}
		return ok
	})
	if s.halted(ctx) {
		return // shutting down: abandoned at the next start (abandonUpgrade)
	}
	s.skipNotStarted(r, u.agents, rep)
	state, msg := rolloutEnd(ctx, rep)
	if state == store.TaskDone && (failed.Load() > 0 || len(u.todo) < len(u.agents)) {
		// An upgrade is done when the whole selection runs the new binary.
		n := int(failed.Load()) + len(u.agents) - len(u.todo)
		state, msg = store.TaskFailed, fmt.Sprintf("%d of %d agents not upgraded", n, len(u.agents))
	}
	s.setState(u.id, state, msg)
	r.events.publish(Event{Type: EventDone, State: string(state), Msg: msg})
}

// agent upgrades agent i and reports success.
func (u *upgradeRun) agent(ctx context.Context, r *run, i int) bool {
	s, id := u.s, u.agents[i]
	if !awaitOnline(ctx, s, id, u.waitUntil) {
		msg, state := "agent offline when its turn came", store.ResultLost
		if cancelled(ctx) {
			msg, state = "not started: "+errCancelled.Error(), store.ResultSkipped
		}
		s.putResults(store.Result{TaskID: u.id, AgentID: id, State: state, Msg: msg, EndedAt: time.Now().UTC()})
		r.events.publish(Event{Type: EventState, Agent: id, State: string(state), Msg: msg})
		return false
	}
	s.gauge(r, 1)
	defer s.gauge(r, -1)
	started := time.Now().UTC()
	s.putResults(store.Result{TaskID: u.id, AgentID: id, State: store.ResultRunning, StartedAt: started})
	r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultRunning)})
	msg, err := s.o.Upgrader.Upgrade(ctx, id, u.spec)
	if s.halted(ctx) {
		return false
	}
	res := store.Result{TaskID: u.id, AgentID: id, State: store.ResultOK, Msg: msg, StartedAt: started, EndedAt: time.Now().UTC()}
	if err != nil {
		res.State, res.Msg, res.ExitCode = store.ResultFailed, err.Error(), 1
	}
	s.putResults(res)
	code := res.ExitCode
	r.events.publish(Event{Type: EventState, Agent: id, State: string(res.State), Msg: res.Msg, ExitCode: &code})
	return err == nil
}

// awaitOnline waits, until waitUntil, for the agent to be online.
func awaitOnline(ctx context.Context, s *Service, id string, waitUntil time.Time) bool {
	if _, ok := s.x.Online(id); ok {
		return true
	}
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for time.Now().Before(waitUntil) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if _, ok := s.x.Online(id); ok {
			return true
		}
	}
	return false
}

// abandonUpgrade ends an upgrade task a previous process left running: an
// agent's upgrade in flight is decided by the agent (its watchdog), not
// by the server, so the task is not resumed.
func (s *Service) abandonUpgrade(ctx context.Context, t store.Task) error {
	return s.abandon(ctx, t, "the server restarted during this agent's upgrade; its version in GET /api/agents tells the outcome",
		"the server restarted while the upgrade ran: upgrade tasks are not resumed")
}
