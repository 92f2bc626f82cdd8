package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/installsvc"
	"github.com/agentfleet/agent-server/internal/rollout"
	"github.com/agentfleet/agent-server/internal/store"
	japi "github.com/agentfleet/jkframe/api"
)

// Limits of fleet task requests.
const (
	MaxScript      = 64 << 10
	DefaultTimeout = 60 * time.Second
	MaxTimeout     = 7 * 24 * time.Hour
	outputChunk    = 64 << 10
)

// Selector chooses agents: IDs, or the filters (all must match). Only
// exec-agents are selected by filters.
type Selector struct {
	IDs      []string `json:"ids,omitempty"`
	Type     string   `json:"type,omitempty"`
	OS       string   `json:"os,omitempty"`
	Platform string   `json:"platform,omitempty"`
	Keyword  string   `json:"keyword,omitempty"`
	Labels   string   `json:"labels,omitempty"` // label selector, store.ParseSelector
}

func (s Selector) empty() bool {
	return len(s.IDs) == 0 && s.Type == "" && s.OS == "" && s.Platform == "" && s.Keyword == "" && s.Labels == ""
}

// Seconds is a duration given in JSON as seconds (a number) or as a Go
// duration string ("1m30s").
type Seconds time.Duration

// UnmarshalJSON reads a number of seconds or a duration string.
func (d *Seconds) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
				*d = Seconds(f * float64(time.Second))
				return nil
			}
			return japi.TypeError(b, reflect.TypeFor[Seconds]())
		}
		*d = Seconds(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return japi.TypeError(b, reflect.TypeFor[Seconds]())
	}
	*d = Seconds(f * float64(time.Second))
	return nil
}

// DescribeJSON names the values UnmarshalJSON accepts (jkframe/api.Describer).
func (Seconds) DescribeJSON() string { return "seconds or a duration such as 1m30s" }

// MarshalJSON writes seconds.
func (d Seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Seconds())
}

// Request is the body of POST /api/tasks.
type Request struct {
	Selector Selector `json:"selector"`
	// Cmd (with Args) or Script (with Type, default sh) is run.
	Cmd         string        `json:"cmd,omitempty"`
	Args        []string      `json:"args,omitempty"`
	Script      string        `json:"script,omitempty"`
	Type        string        `json:"type,omitempty"`
	Auth        string        `json:"auth,omitempty"`
	User        string        `json:"user,omitempty"`
	WorkDir     string        `json:"workdir,omitempty"`
	Env         []string      `json:"env,omitempty"`
	Concurrency rollout.Limit `json:"concurrency"`
	MaxErrors   rollout.Limit `json:"max_errors"`
	Canary      int           `json:"canary,omitempty"`
	BatchWait   Seconds       `json:"batch_wait,omitempty"`
	Timeout     Seconds       `json:"timeout,omitempty"`      // per agent; default 60 s
	WaitOffline Seconds       `json:"wait_offline,omitempty"` // wait this long for offline agents
	// Install, instead of a command, installs software on each agent
	// (install.go); its password is never stored.
	Install *installsvc.Spec `json:"install,omitempty"`
}

// scriptFlags says how a script type runs inline: the interpreter and the
// flag that takes the script text.
var scriptFlags = map[string][]string{
	"sh":         {"sh", "-c"},   // the script's $0 follows
	"bash":       {"bash", "-c"}, // the script's $0 follows
	"python":     {"python", "-c"},
	"python3":    {"python3", "-c"},
	"php":        {"php", "-r"},
	"lua":        {"lua", "-e"},
	"powershell": {"powershell", "-NoProfile", "-NonInteractive", "-Command"},
}

// command validates r and returns what runs on each agent.
func (r *Request) command() (Command, error) {
	bad := func(f string, a ...any) (Command, error) {
		return Command{}, fault.Invalidf(ErrInvalid, f, a...)
	}
	if r.Install != nil {
		return r.installCommand()
	}
	c := Command{Auth: r.Auth, User: r.User, WorkDir: r.WorkDir, Env: r.Env, Timeout: time.Duration(r.Timeout)}
	switch {
	case strings.TrimSpace(r.Cmd) != "" && r.Script != "":
		return bad("cmd and script: give one")
	case strings.TrimSpace(r.Cmd) != "":
		c.Cmd, c.Args = r.Cmd, r.Args
		if r.Type != "" {
			return bad("type: only with script")
		}
	case strings.TrimSpace(r.Script) != "":
		if len(r.Script) > MaxScript {
			return bad("script: over %d bytes", MaxScript)
		}
		typ := r.Type
		if typ == "" {
			typ = "sh"
		}
		f, ok := scriptFlags[typ]
		if !ok {
			return bad("type: %q is not one of sh, bash, python, python3, php, lua, powershell", r.Type)
		}
		c.Cmd, c.Args = f[0], append(append([]string(nil), f[1:]...), r.Script)
		if typ == "sh" || typ == "bash" {
			c.Args = append(c.Args, "fleet-script") // $0; args are $1...
		}
		c.Args = append(c.Args, r.Args...)
	default:
		return bad("missing cmd or script")
	}
	switch r.Auth {
	case "":
	case "su", "sudo":
		if r.User == "" {
			return bad("user: needed with auth")
		}
	default:
		return bad("auth: %q is not su or sudo", r.Auth)
	}
	for _, kv := range r.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return bad("env: %q is not K=V", kv)
		}
	}
	switch {
	case c.Timeout < 0 || c.Timeout > MaxTimeout:
		return bad("timeout: must be between 0 and %s", MaxTimeout)
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case r.WaitOffline < 0 || time.Duration(r.WaitOffline) > MaxTimeout:
		return bad("wait_offline: must be between 0 and %s", MaxTimeout)
	}
	p := r.plan()
	if err := p.Validate(); err != nil {
		return bad("%s", fault.Message(err))
	}
	return c, nil
}

func (r *Request) plan() rollout.Plan {
	return rollout.Plan{Concurrency: r.Concurrency, MaxErrors: r.MaxErrors, Canary: r.Canary, BatchWait: time.Duration(r.BatchWait), Timeout: time.Duration(r.Timeout)}
}

// fleetSpec is the stored spec of a fleet task.
type fleetSpec struct {
	Request
	// Agents are the selected agents in launch order.
	Agents []string `json:"agents"`
}

// resolve returns the ids of the exec-agents the selector names, in order.
func (s *Service) resolve(ctx context.Context, sel Selector) ([]string, error) {
	return s.resolveType(ctx, sel, ExecAgent)
}

// resolveType returns the ids of the agents of type want the selector
// names, in order.
func (s *Service) resolveType(ctx context.Context, sel Selector, want string) ([]string, error) {
	if sel.empty() {
		return nil, fault.Invalidf(ErrInvalid, "selector: empty (give ids or a filter)")
	}
	if len(sel.IDs) > 0 {
		if sel.Type != "" || sel.OS != "" || sel.Platform != "" || sel.Keyword != "" || sel.Labels != "" {
			return nil, fault.Invalidf(ErrInvalid, "selector: ids and filters do not mix")
		}
		if len(sel.IDs) > store.MaxFilterIDs {
			return nil, fault.Invalidf(ErrInvalid, "selector: more than %d ids", store.MaxFilterIDs)
		}
		seen := map[string]bool{}
		var ids []string
		for _, id := range sel.IDs {
			id = strings.TrimSpace(id)
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			typ, online := s.x.Online(id)
			if !online {
				a, err := s.st.GetAgent(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return nil, fault.New(fault.NotFound, ErrAgentNotFound, "agent %s", id)
				}
				if err != nil {
					return nil, err
				}
				typ = a.Type
			}
			if typ != want {
				return nil, fmt.Errorf("%w want [%s] got [%s] (agent %s)", ErrAgentType, want, typ, id)
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	if sel.Type != "" && sel.Type != want {
		return nil, fmt.Errorf("%w want [%s] got [%s]", ErrAgentType, want, sel.Type)
	}
	labels, err := store.ParseSelector(sel.Labels)
	if err != nil {
		return nil, fault.Invalidf(ErrInvalid, "selector: labels: %v", err)
	}
	f := store.AgentFilter{Type: want, OS: sel.OS, Platform: sel.Platform, Keyword: sel.Keyword, Labels: labels}
	var ids []string
	for page := 1; ; page++ {
		f.Paging = store.Paging{Page: page, Size: store.MaxPageSize}
		as, total, err := s.st.ListAgents(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("select agents: %w", err)
		}
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		if len(as) == 0 || len(ids) >= total {
			break
		}
		if len(ids) > store.MaxFilterIDs {
			return nil, fault.Invalidf(ErrInvalid, "selector: matches more than %d agents", store.MaxFilterIDs)
		}
	}
	return ids, nil
}

// Submit validates req, selects the agents, stores the task and starts it.
func (s *Service) Submit(ctx context.Context, req Request, createdBy string) (store.Task, error) {
	cmd, err := req.command()
	if err != nil {
		return store.Task{}, err
	}
	ids, err := s.resolve(ctx, req.Selector)
	if err != nil {
		return store.Task{}, err
	}
	if len(ids) == 0 {
		return store.Task{}, fault.Invalidf(ErrInvalid, "selector: matches no agents")
	}
	now := time.Now()
	t, err := s.createTask(ctx, store.Task{Kind: store.KindFleet, Spec: mustJSON(fleetSpec{Request: req, Agents: ids}), State: store.TaskRunning, CreatedBy: createdBy, CreatedAt: now, StartedAt: now})
	if err != nil {
		return store.Task{}, fmt.Errorf("create task: %w", err)
	}
	rs := make([]store.Result, len(ids))
	for i, id := range ids {
		rs[i] = store.Result{TaskID: t.ID, AgentID: id, State: store.ResultPending}
		if _, ok := s.x.Online(id); !ok {
			if req.WaitOffline > 0 {
				rs[i].Msg = "agent offline; waiting for it"
			} else {
				rs[i].State, rs[i].Msg = store.ResultLost, "agent offline at start"
			}
		}
	}
	fr := &fleetRun{s: s, id: t.ID, spec: fleetSpec{Request: req, Agents: ids}, cmd: cmd, createdBy: createdBy,
		waitUntil: now.Add(time.Duration(req.WaitOffline))}
	for i, r := range rs {
		if r.State == store.ResultPending {
			fr.todo = append(fr.todo, i)
		}
	}
	return s.launch(ctx, t, rs, fr.run)
}

// launch stores the first results of a new task and starts its runner.
func (s *Service) launch(ctx context.Context, t store.Task, rs []store.Result, fn func(ctx context.Context, r *run)) (store.Task, error) {
	if err := s.st.PutResults(ctx, rs); err != nil {
		s.setState(t.ID, store.TaskFailed, "could not store the results: "+err.Error())
		s.disown(t.ID, t.Owner.Token)
		return store.Task{}, fmt.Errorf("create task results: %w", err)
	}
	if err := s.start(t.ID, t.Kind, fn); err != nil {
		s.setState(t.ID, store.TaskFailed, err.Error())
		s.disown(t.ID, t.Owner.Token)
		return store.Task{}, err
	}
	return s.st.GetTask(ctx, t.ID)
}

// fleetRun is one fleet task being run.
type fleetRun struct {
	s         *Service
	id        string
	spec      fleetSpec
	cmd       Command
	createdBy string
	todo      []int     // indexes into spec.Agents to launch
	doubt     []int     // running or lost before a restart: wait for their results
	waitUntil time.Time // offline agents are waited for until then
	prior     struct{ failures, done int }
}

func (f *fleetRun) run(ctx context.Context, r *run) {
	s := f.s
	var wg sync.WaitGroup
	for _, i := range f.doubt {
		wg.Go(func() { f.awaitJournaled(ctx, r, f.spec.Agents[i]) })
	}
	o := rollout.Options{
		Plan:          rollout.Plan{Concurrency: f.spec.Concurrency, MaxErrors: f.spec.MaxErrors, Canary: f.spec.Canary, BatchWait: time.Duration(f.spec.BatchWait)},
		Total:         len(f.spec.Agents),
		PriorFailures: f.prior.failures,
		PriorDone:     f.prior.done,
	}
	rep := rollout.Run(ctx, f.todo, o, func(ctx context.Context, i int) bool { return f.agent(ctx, r, i) })
	wg.Wait()
	if s.halted(ctx) {
		return // shutting down: resumed at the next start
	}
	s.skipNotStarted(r, f.spec.Agents, rep)
	state, msg := rolloutEnd(ctx, rep)
	s.setState(f.id, state, msg)
	r.events.publish(Event{Type: EventDone, State: string(state), Msg: msg})
}

// skipNotStarted records the agents a rollout never launched as skipped,
// with the reason.
func (s *Service) skipNotStarted(r *run, agents []string, rep rollout.Report) {
	if len(rep.NotStarted) == 0 {
		return
	}
	msg := "not started: " + rep.Reason
	if rep.Reason == rollout.ReasonCancelled {
		msg = "not started: " + errCancelled.Error()
	} else if rep.Detail != "" {
		msg += " (" + rep.Detail + ")"
	}
	rs := make([]store.Result, len(rep.NotStarted))
	now := time.Now().UTC()
	for k, i := range rep.NotStarted {
		id := agents[i]
		rs[k] = store.Result{TaskID: r.id, AgentID: id, State: store.ResultSkipped, Msg: msg, EndedAt: now}
		r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultSkipped), Msg: msg})
	}
	s.putResults(rs...)
}

// rolloutEnd is the state of a task whose rollout ended with rep.
func rolloutEnd(ctx context.Context, rep rollout.Report) (store.TaskState, string) {
	switch {
	case cancelled(ctx):
		return store.TaskCancelled, errCancelled.Error()
	case rep.Reason != "":
		return store.TaskFailed, rep.Reason + ": " + rep.Detail
	}
	return store.TaskDone, ""
}

// agent runs the command on agent i and reports success.
func (f *fleetRun) agent(ctx context.Context, r *run, i int) bool {
	s, id := f.s, f.spec.Agents[i]
	if !f.awaitOnline(ctx, id) {
		if ctx.Err() != nil && !cancelled(ctx) {
			return false
		}
		msg := "agent offline when its turn came"
		if cancelled(ctx) {
			msg = "not started: " + errCancelled.Error()
			s.putResults(store.Result{TaskID: f.id, AgentID: id, State: store.ResultSkipped, Msg: msg, EndedAt: time.Now().UTC()})
			r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultSkipped), Msg: msg})
			return false
		}
		s.putResults(store.Result{TaskID: f.id, AgentID: id, State: store.ResultLost, Msg: msg})
		r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultLost), Msg: msg})
		return false
	}
	s.gauge(r, 1)
	defer s.gauge(r, -1)
	h, err := f.start(ctx, id)
	if h == nil {
		if ctx.Err() != nil && !cancelled(ctx) {
			return false
		}
		res := store.Result{TaskID: f.id, AgentID: id, State: store.ResultFailed, Msg: "not started: " + err.Error(), EndedAt: time.Now().UTC()}
		if errors.Is(err, context.Canceled) && cancelled(ctx) {
			res.State, res.Msg = store.ResultSkipped, "not started: "+errCancelled.Error()
		}
		s.putResults(res)
		r.events.publish(Event{Type: EventState, Agent: id, State: string(res.State), Msg: res.Msg})
		return false
	}
	r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultRunning)})
	res, ok := follow(ctx, s, r, id, h)
	if !ok {
		return false // shutting down
	}
	return res.State == store.ResultOK
}

// follow waits for a command's end, streaming its output to subscribers,
// and kills it when the task is cancelled. ok is false when the service
// closes first (the command goes on and is resumed later).
func follow(ctx context.Context, s *Service, r *run, agent string, h Handle) (store.Result, bool) {
	var off int64
	emit := func() {
		for {
			b, next, err := h.ReadOutput(context.WithoutCancel(ctx), off, outputChunk)
			if err != nil || next == off {
				return
			}
			if len(b) > 0 {
				at := next - int64(len(b))
				r.events.publish(Event{Type: EventOutput, Agent: agent, Offset: &at, Data: string(b)})
			}
			off = next
		}
	}
	killed := false
	for {
		listening, joined := r.events.active()
		var changed <-chan struct{}
		if listening {
			changed = h.Changed()
			emit()
		}
		select {
		case <-h.Done():
		case <-changed:
			continue
		case <-joined:
			continue
		case <-ctx.Done():
			if !cancelled(ctx) {
				return store.Result{}, false
			}
			if u, ok := h.(unkillable); ok && u.Unkillable() {
				ctx = s.ctx // runs to its end; only the service's close ends the wait
				continue
			}
			if !killed {
				killed = true
				kill(s, r.id, agent, h)
			}
		}
		if listening, _ := r.events.active(); listening {
			emit()
		}
		break
	}
	var res store.Result
	select {
	case <-h.Done():
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		res, err = h.Wait(wctx) // the result is stored when Wait returns
		cancel()
		if err != nil {
			s.log.Warn("tasks: wait for a result", "task", r.id, "agent", agent, "err", err)
		}
	default: // killed, but the agent did not confirm within KillWait
		res = h.Result()
	}
	if killed && !res.State.Final() || killed && res.State == store.ResultFailed {
		res.Msg = "killed: " + errCancelled.Error()
		if !res.State.Final() {
			res.State = store.ResultFailed
		}
		if res.TaskID == r.id {
			s.putResults(res)
		}
	}
	ev := Event{Type: EventState, Agent: agent, State: string(res.State), Msg: res.Msg}
	if res.State.Final() {
		code := res.ExitCode
		ev.ExitCode = &code
	}
	r.events.publish(ev)
	return res, true
}

// kill kills a command and waits up to KillWait for its end. A command
// cancelled while it was being started may not be known to the agent yet
// ("no such task"): the kill is repeated until the agent confirms it.
func kill(s *Service, taskID, agent string, h Handle) {
	deadline := time.NewTimer(s.o.KillWait)
	defer deadline.Stop()
	retry := time.NewTicker(s.o.Poll)
	defer retry.Stop()
	for {
		kctx, cancel := context.WithTimeout(context.Background(), s.o.KillWait)
		err := h.Kill(kctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-h.Done():
			return
		case <-deadline.C:
			s.log.Warn("tasks: kill on cancel", "task", taskID, "agent", agent, "err", err)
			return
		case <-retry.C:
		}
	}
	select {
	case <-h.Done():
	case <-deadline.C:
	}
}

// awaitOnline waits (when the task allows it) for the agent to be online.
func (f *fleetRun) awaitOnline(ctx context.Context, id string) bool {
	if _, ok := f.s.x.Online(id); ok {
		return true
	}
	if !time.Now().Before(f.waitUntil) {
		return false
	}
	t := time.NewTicker(f.s.o.Poll)
	defer t.Stop()
	for time.Now().Before(f.waitUntil) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if _, ok := f.s.x.Online(id); ok {
			return true
		}
	}
	return false
}
