package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/layout"
	"github.com/agentfleet/agent-server/internal/rollout"
	"github.com/agentfleet/agent-server/internal/store"
)

// Layout modes.
const (
	ModeSequence = "sequence"
	ModeParallel = "parallel"
	ModeEvenOdd  = "evenodd"
)

// LayoutRequest is POST /api/layout/run without the archive.
type LayoutRequest struct {
	IDs         []string      `json:"ids"`
	Mode        string        `json:"mode"`
	Continue    bool          `json:"continue"`
	User        string        `json:"user,omitempty"`
	Auth        string        `json:"auth,omitempty"`
	Concurrency rollout.Limit `json:"concurrency"`
	MaxErrors   rollout.Limit `json:"max_errors"`
}

// layoutSpec is the stored spec of a layout task.
type layoutSpec struct {
	LayoutRequest
	Name    string        `json:"name"`
	Timeout int           `json:"timeout"`
	Steps   []layout.Step `json:"tasks"`
}

// stepKey is the result key of step n (0-based) of an agent: the node's
// own result is under the agent id, its steps under "<agent>#<n+1>".
func stepKey(agent string, n int) string { return fmt.Sprintf("%s#%03d", agent, n+1) }

// RunLayout checks the agents (online exec-agents) and starts l on them.
// It takes l over: l is closed when the run ends, or at once when
// RunLayout fails.
func (s *Service) RunLayout(ctx context.Context, req LayoutRequest, l *layout.Layout, createdBy string) (id string, err error) {
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	switch req.Mode {
	case "":
		req.Mode = ModeSequence
	case ModeSequence, ModeParallel, ModeEvenOdd:
	default:
		return "", fault.Invalidf(ErrInvalid, "mode: %q is not sequence, parallel or evenodd", req.Mode)
	}
	switch req.Auth {
	case "", "su", "sudo":
	default:
		return "", fault.Invalidf(ErrInvalid, "auth: %q is not su or sudo", req.Auth)
	}
	var ids []string
	seen := map[string]bool{}
	for _, id := range req.IDs {
		for id := range strings.SplitSeq(id, ",") {
			if id = strings.TrimSpace(id); id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return "", fault.Invalidf(ErrInvalid, "missing parameter ids")
	}
	if len(ids) > store.MaxFilterIDs {
		return "", fault.Invalidf(ErrInvalid, "ids: more than %d", store.MaxFilterIDs)
	}
	for _, id := range ids {
		typ, ok := s.x.Online(id)
		if !ok {
			return "", fault.New(fault.NotFound, ErrAgentNotFound, "agent %s", id)
		}
		if typ != ExecAgent {
			return "", fmt.Errorf("%w want [%s] got [%s] (agent %s)", ErrAgentType, ExecAgent, typ, id)
		}
	}
	req.IDs = ids
	spec := layoutSpec{LayoutRequest: req, Name: l.Name, Timeout: l.Timeout, Steps: l.Steps}
	now := time.Now()
	t, err := s.createTask(ctx, store.Task{Kind: store.KindLayout, Spec: mustJSON(spec), State: store.TaskRunning, CreatedBy: createdBy, CreatedAt: now, StartedAt: now})
	if err != nil {
		return "", fmt.Errorf("create layout task: %w", err)
	}
	rs := make([]store.Result, 0, len(ids)*(1+len(l.Steps)))
	for _, id := range ids {
		rs = append(rs, store.Result{TaskID: t.ID, AgentID: id, State: store.ResultPending})
		for n := range l.Steps {
			rs = append(rs, store.Result{TaskID: t.ID, AgentID: stepKey(id, n), State: store.ResultPending})
		}
	}
	if err := s.st.PutResults(ctx, rs); err != nil {
		s.setState(t.ID, store.TaskFailed, "could not store the results: "+err.Error())
		s.disown(t.ID, t.Owner.Token)
		return "", fmt.Errorf("create layout results: %w", err)
	}
	lr := &layoutRun{s: s, id: t.ID, req: req, l: l, createdBy: createdBy}
	if err := s.start(t.ID, store.KindLayout, lr.run); err != nil {
		s.setState(t.ID, store.TaskFailed, err.Error())
		s.disown(t.ID, t.Owner.Token)
		return "", err
	}
	return t.ID, nil
}

type layoutRun struct {
	s         *Service
	id        string
	req       LayoutRequest
	l         *layout.Layout
	createdBy string
}

func (lr *layoutRun) run(ctx context.Context, r *run) {
	defer lr.l.Close()
	s, ids := lr.s, lr.req.IDs
	items := make([]int, len(ids))
	for i := range items {
		items[i] = i
	}
	o := rollout.Options{Plan: rollout.Plan{Concurrency: lr.req.Concurrency, MaxErrors: lr.req.MaxErrors, Timeout: lr.l.RunTimeout()}}
	if !o.MaxErrors.Set && lr.req.Mode != ModeParallel && !lr.req.Continue {
		o.MaxErrors = rollout.Count(0) // stop at the first failed agent
	}
	switch lr.req.Mode {
	case ModeSequence:
		o.Concurrency = rollout.Count(1)
	case ModeEvenOdd:
		items = items[:0]
		for i := 0; i < len(ids); i += 2 {
			items = append(items, i)
		}
		evens := len(items)
		for i := 1; i < len(ids); i += 2 {
			items = append(items, i)
		}
		o.Waves = []int{evens, len(ids) - evens}
	}
	rep := rollout.Run(ctx, items, o, func(ctx context.Context, i int) bool { return lr.node(ctx, r, i) })
	if s.halted(ctx) {
		return // shutting down: marked failed at the next start
	}
	now := time.Now().UTC()
	var rs []store.Result
	for _, i := range rep.NotStarted {
		msg := "not started: " + rep.Reason
		if rep.Reason == rollout.ReasonMaxErrors && o.MaxErrors == rollout.Count(0) && lr.req.Mode != ModeParallel && !lr.req.MaxErrors.Set {
			msg = "not started: an earlier agent failed (continue is false)"
		} else if rep.Reason == rollout.ReasonCancelled {
			msg = "not started: " + errCancelled.Error()
		}
		rs = append(rs, store.Result{TaskID: lr.id, AgentID: ids[i], State: store.ResultSkipped, Msg: msg, EndedAt: now})
		for n := range lr.l.Steps {
			rs = append(rs, store.Result{TaskID: lr.id, AgentID: stepKey(ids[i], n), State: store.ResultSkipped, Msg: msg, EndedAt: now})
		}
		r.events.publish(Event{Type: EventState, Agent: ids[i], State: string(store.ResultSkipped), Msg: msg})
	}
	s.putResults(rs...)
	state, msg := store.TaskDone, ""
	switch {
	case cancelled(ctx):
		state, msg = store.TaskCancelled, errCancelled.Error()
	case rep.Failed > 0:
		state, msg = store.TaskFailed, fmt.Sprintf("%d of %d agents failed", rep.Failed, len(ids))
	}
	s.setState(lr.id, state, msg)
	r.events.publish(Event{Type: EventDone, State: string(state), Msg: msg})
}

// node runs every step on agent i in order; the first failure ends it.
func (lr *layoutRun) node(ctx context.Context, r *run, i int) bool {
	s, id := lr.s, lr.req.IDs[i]
	start := time.Now()
	deadline, _ := ctx.Deadline()
	vars := layout.Vars(id, i, deadline.Unix())
	node := store.Result{TaskID: lr.id, AgentID: id, State: store.ResultRunning, StartedAt: start.UTC()}
	s.putResults(node)
	r.events.publish(Event{Type: EventState, Agent: id, State: string(store.ResultRunning)})
	failed := ""
	state := store.ResultOK
	for n := range lr.l.Steps {
		st := &lr.l.Steps[n]
		key := stepKey(id, n)
		if failed != "" {
			s.putResults(store.Result{TaskID: lr.id, AgentID: key, State: store.ResultSkipped, Msg: "an earlier step failed", EndedAt: time.Now().UTC()})
			continue
		}
		res := lr.step(ctx, r, id, st, key, vars)
		if s.halted(ctx) {
			return false // shutting down
		}
		res.TaskID, res.AgentID = lr.id, key
		s.putResults(res)
		if res.State != store.ResultOK && res.State != store.ResultSkipped {
			failed = fmt.Sprintf("step %d %q %s", n+1, st.Name, res.State)
			if res.Msg != "" {
				failed += ": " + res.Msg
			}
			state = store.ResultFailed
			if res.State == store.ResultTimedOut {
				state = store.ResultTimedOut
			}
		}
	}
	node.State, node.Msg, node.EndedAt = state, failed, time.Now().UTC()
	s.putResults(node)
	r.events.publish(Event{Type: EventState, Agent: id, State: string(state), Msg: failed})
	return state == store.ResultOK
}

// step runs one step and returns its result (TaskID and AgentID unset).
func (lr *layoutRun) step(ctx context.Context, r *run, agent string, st *layout.Step, key string, vars map[string]string) store.Result {
	s := lr.s
	now := time.Now().UTC()
	res := store.Result{StartedAt: now}
	fail := func(state store.ResultState, format string, a ...any) store.Result {
		res.State, res.Msg, res.EndedAt = state, fmt.Sprintf(format, a...), time.Now().UTC()
		return res
	}
	if ctx.Err() != nil {
		if cancelled(ctx) {
			return fail(store.ResultSkipped, "not started: %s", errCancelled)
		}
		return fail(store.ResultTimedOut, "the run's timeout (%s) passed", lr.l.RunTimeout())
	}
	if c := st.Cond(); c != nil {
		ok, err := c.Eval(vars)
		if err != nil {
			return fail(store.ResultFailed, "if: %v", err)
		}
		if !ok {
			if st.Output != "" {
				vars[st.Output] = ""
			}
			return fail(store.ResultSkipped, "if %s is false", c)
		}
	}
	timeout := lr.l.StepTimeout(st)
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Second)
	}
	auth, user := st.Auth, st.User
	if auth == "" && user == "" {
		auth, user = lr.req.Auth, lr.req.User
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch st.Plugin {
	case layout.PluginExec:
		cmd, err := layout.Expand(st.Cmd, vars)
		if err != nil {
			return fail(store.ResultFailed, "cmd: %v", err)
		}
		detail := mustJSON(map[string]any{"layout": lr.id, "agent": agent, "step": st.Name, "cmd": cmd})
		h, err := s.x.Start(sctx, agent, Command{Cmd: cmd, Auth: auth, User: user, Timeout: timeout}, StartOptions{CreatedBy: lr.createdBy, Detail: detail})
		if h == nil {
			return fail(store.ResultFailed, "not started: %v", err)
		}
		s.gauge(r, 1)
		out, ok := follow(sctx, s, r, agent, h)
		s.gauge(r, -1)
		if !ok && s.halted(ctx) {
			return fail(store.ResultLost, "the server is shutting down")
		}
		if !ok { // the step's or the run's timeout: kill it
			kill(s, lr.id, agent, h)
			out = h.Result()
			if isDone(h) {
				wctx, wcancel := context.WithTimeout(context.Background(), s.o.KillWait)
				out, _ = h.Wait(wctx)
				wcancel()
			}
			if !out.State.Final() || out.State == store.ResultFailed {
				out.State, out.Msg = store.ResultTimedOut, fmt.Sprintf("timed out after %s", timeout)
			}
		}
		res.State, res.ExitCode, res.Msg = out.State, out.ExitCode, out.Msg
		res.PID, res.OutputHead, res.OutputTail, res.Dropped, res.OutputBytes = out.PID, out.OutputHead, out.OutputTail, out.Dropped, out.OutputBytes
		if res.Msg == "" {
			res.Msg = "exec task " + h.TaskID()
		} else {
			res.Msg += " (exec task " + h.TaskID() + ")"
		}
		res.EndedAt = time.Now().UTC()
		if res.State == store.ResultOK && st.Output != "" {
			v, err := readAll(context.WithoutCancel(ctx), h, 1<<20)
			if err != nil {
				return fail(store.ResultFailed, "output: %v", err)
			}
			vars[st.Output] = strings.TrimSpace(string(v))
		}
		return res
	case layout.PluginFile:
		src, err := layout.Expand(st.Src, vars)
		if err != nil {
			return fail(store.ResultFailed, "src: %v", err)
		}
		dst, err := layout.Expand(st.Dst, vars)
		if err != nil {
			return fail(store.ResultFailed, "dst: %v", err)
		}
		if st.Action == layout.ActionPull {
			return lr.pull(sctx, agent, src, dst, res)
		}
		f, size, err := lr.l.Open(src)
		if err != nil {
			return fail(store.ResultFailed, "%v", err)
		}
		defer f.Close()
		if err := s.x.Push(sctx, agent, PushFile{Path: dst, Body: f, Size: size, Mode: os.FileMode(st.FileMode()), Owner: st.Owner, Group: st.Group, Auth: auth, User: user}); err != nil {
			if sctx.Err() == context.DeadlineExceeded {
				return fail(store.ResultTimedOut, "push %s: timed out after %s", dst, timeout)
			}
			return fail(store.ResultFailed, "push %s: %v", dst, err)
		}
		res.State, res.Msg, res.EndedAt = store.ResultOK, fmt.Sprintf("pushed %d bytes to %s", size, dst), time.Now().UTC()
		return res
	}
	return fail(store.ResultFailed, "unknown plugin %q", st.Plugin)
}

// pull copies src of the agent into the task's result area as dst.
func (lr *layoutRun) pull(ctx context.Context, agent, src, dst string, res store.Result) store.Result {
	s := lr.s
	fail := func(format string, a ...any) store.Result {
		res.State, res.Msg, res.EndedAt = store.ResultFailed, fmt.Sprintf(format, a...), time.Now().UTC()
		return res
	}
	rel, err := ResultPath(dst)
	if err != nil {
		return fail("dst: %v", err)
	}
	if !pathElem(lr.id) || !pathElem(agent) {
		// Agent ids are chosen by agents: one like "../x" must not place
		// the file outside the result area.
		return fail("pull: agent id %q cannot name a directory", agent)
	}
	if s.o.ResultDir == "" {
		return fail("pull: the server has no result directory")
	}
	full := filepath.Join(s.o.ResultDir, lr.id, agent, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		return fail("pull: %v", err)
	}
	f, err := os.CreateTemp(filepath.Dir(full), ".pull-*")
	if err != nil {
		return fail("pull: %v", err)
	}
	n, err := s.x.Pull(ctx, agent, src, f, s.o.PullLimit)
	cerr := f.Close()
	if err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), full)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		if ctx.Err() == context.DeadlineExceeded {
			res.State = store.ResultTimedOut
			res.Msg, res.EndedAt = fmt.Sprintf("pull %s: timed out", src), time.Now().UTC()
			return res
		}
		return fail("pull %s: %v", src, err)
	}
	res.State, res.Msg, res.EndedAt = store.ResultOK, fmt.Sprintf("pulled %d bytes from %s into %s", n, src, rel), time.Now().UTC()
	res.OutputBytes = n
	return res
}

// ResultPath cleans a pull dst into a path relative to an agent's result
// area; absolute or escaping paths are errors (layout.ResultPath).
func ResultPath(dst string) (string, error) { return layout.ResultPath(dst) }

// PulledFile returns the path on the server of a file a layout pulled.
func (s *Service) PulledFile(taskID, agent, rel string) (string, error) {
	if s.o.ResultDir == "" {
		return "", ErrNotFound
	}
	c, err := ResultPath(rel)
	if err != nil {
		return "", fault.Invalidf(ErrInvalid, "path: %v", err)
	}
	if !pathElem(taskID) || !pathElem(agent) {
		return "", fault.Invalidf(ErrInvalid, "bad task or agent id")
	}
	full := filepath.Join(s.o.ResultDir, taskID, agent, filepath.FromSlash(c))
	if fi, err := os.Stat(full); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("file %s of agent %s: %w", rel, agent, ErrNotFound)
	}
	return full, nil
}

// pathElem reports whether s can be used as one path element.
func pathElem(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

func isDone(h Handle) bool {
	select {
	case <-h.Done():
		return true
	default:
		return false
	}
}

// readAll reads a command's whole kept output, up to limit bytes.
func readAll(ctx context.Context, h Handle, limit int) ([]byte, error) {
	var buf bytes.Buffer
	var off int64
	for buf.Len() < limit {
		b, next, err := h.ReadOutput(ctx, off, min(outputChunk, limit-buf.Len()))
		if err != nil {
			return nil, err
		}
		if next == off {
			break
		}
		buf.Write(b)
		off = next
	}
	return buf.Bytes(), nil
}

// abandonLayout marks a layout left running by a previous process failed:
// layouts are not resumed.
func (s *Service) abandonLayout(ctx context.Context, t store.Task) error {
	return s.abandon(ctx, t, "the server restarted while this ran; see the step's exec task for its outcome",
		"the server restarted while the layout ran: layouts are not resumed (finished steps are kept, steps in flight may have completed on the agents)")
}

// abandon ends a task a previous process left running without resuming
// it: pending results become skipped, running ones lost with running, the
// task failed with msg.
func (s *Service) abandon(ctx context.Context, t store.Task, running, msg string) error {
	rs, err := s.allResults(ctx, t.ID)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	var out []store.Result
	for _, r := range rs {
		switch r.State {
		case store.ResultPending:
			r.State, r.Msg, r.EndedAt = store.ResultSkipped, "not started: the server restarted", now
		case store.ResultRunning:
			r.State, r.Msg = store.ResultLost, running
		default:
			continue
		}
		out = append(out, r)
	}
	s.putResults(out...)
	s.setState(t.ID, store.TaskFailed, msg)
	return nil
}

// unmarshalLayoutSpec reads a layout task's spec.
func unmarshalLayoutSpec(t store.Task) (layoutSpec, error) {
	var sp layoutSpec
	if err := json.Unmarshal(t.Spec, &sp); err != nil {
		return sp, fmt.Errorf("layout %s: bad spec: %w", t.ID, err)
	}
	return sp, nil
}
