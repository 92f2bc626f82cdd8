package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentfleet/agent-server/internal/installsvc"
	"github.com/agentfleet/agent-server/internal/store"
)

// AgentResult is one agent's part of a fleet task as the API shows it.
type AgentResult struct {
	Agent      string    `json:"agent"`
	State      string    `json:"state"`
	ExitCode   int       `json:"exit_code"`
	Msg        string    `json:"msg,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	OutputHead string    `json:"output_head"`
	OutputTail string    `json:"output_tail"`
	// Dropped counts the output bytes between head and tail (in neither);
	// the full output (as far as stored) is at .../agents/{agent}/output.
	Dropped     int64 `json:"dropped"`
	OutputBytes int64 `json:"output_bytes"`
	// NotStored counts output bytes beyond the store's cap (not in the
	// full output either).
	NotStored int64 `json:"not_stored,omitempty"`
	// Actions is the agent's action log of an install task (seed-shaped:
	// action, name, time, ok, msg).
	Actions []InstallAction `json:"actions,omitempty"`
}

// TaskView is a fleet task with its per-agent results.
type TaskView struct {
	store.Task
	Request *Request `json:"request,omitempty"`
	// Upgrade is the request of an upgrade task (kind upgrade).
	Upgrade *UpgradeRequest `json:"upgrade,omitempty"`
	// MaxInFlight is the largest number of commands running at once, as
	// counted by this server's scheduler (absent after a restart).
	MaxInFlight *int          `json:"max_in_flight,omitempty"`
	Agents      []AgentResult `json:"agents"`
}

// headTail splits a result's output into head, tail and the bytes between.
func headTail(r store.Result) (head, tail string, between int64) {
	h, t := r.OutputHead, r.OutputTail
	total := max(r.OutputBytes, int64(len(h)))
	if total <= int64(len(h)) {
		return string(h), "", 0
	}
	rest := total - int64(len(h)) // bytes after the head
	if int64(len(t)) > rest {
		t = t[int64(len(t))-rest:] // the tail overlaps the head
	}
	return string(h), string(t), rest - int64(len(t))
}

// Output renders head, a marker for the bytes between, and tail.
func Output(r store.Result) string {
	h, t, gap := headTail(r)
	if gap > 0 {
		return h + fmt.Sprintf("\n[... %d bytes ...]\n", gap) + t
	}
	return h + t
}

func agentResult(r store.Result) AgentResult {
	h, t, gap := headTail(r)
	a := AgentResult{Agent: r.AgentID, State: string(r.State), ExitCode: r.ExitCode, Msg: r.Msg, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
		OutputHead: h, OutputTail: t, Dropped: gap, OutputBytes: r.OutputBytes, NotStored: r.Dropped}
	return a
}

// Task returns a fleet task with a page of its per-agent results (in
// agent id order) and the number of agents.
func (s *Service) Task(ctx context.Context, id string, p store.Paging) (TaskView, int, error) {
	t, err := s.st.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && t.Kind != store.KindFleet && t.Kind != store.KindUpgrade {
		return TaskView{}, 0, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return TaskView{}, 0, err
	}
	v := TaskView{Task: t, Agents: []AgentResult{}}
	var spec fleetSpec
	if t.Kind == store.KindUpgrade {
		var up upgradeSpec
		if err := json.Unmarshal(t.Spec, &up); err == nil {
			v.Upgrade = &up.UpgradeRequest
			v.Task.Spec = nil
		}
	} else if err := json.Unmarshal(t.Spec, &spec); err == nil {
		v.Request = &spec.Request
		v.Task.Spec = nil
	}
	if hw, ok := s.HighWater(id); ok {
		v.MaxInFlight = &hw
	}
	rs, total, err := s.st.ListResults(ctx, id, store.ResultFilter{Paging: p})
	if err != nil {
		return TaskView{}, 0, err
	}
	for _, r := range rs {
		if spec.Install == nil {
			v.Agents = append(v.Agents, agentResult(r))
			continue
		}
		as, err := s.storedActions(ctx, id, r.AgentID)
		if err != nil {
			return TaskView{}, 0, err
		}
		a := agentResult(withInstallOutput(r, installsvc.RenderLog(as)))
		a.Actions = seedActions(as)
		v.Agents = append(v.Agents, a)
	}
	return v, total, nil
}

// ListedKinds are the kinds of task GET /api/tasks lists: fleet tasks
// (commands, scripts, installs) and upgrades, those followed through
// /api/tasks/{id}. Layouts have their own routes.
var ListedKinds = []store.TaskKind{store.KindFleet, store.KindUpgrade}

// List returns a page of fleet and upgrade tasks (ListedKinds), newest
// first, and the total; createdBy ("": anyone's) limits it to the tasks of
// one creator.
func (s *Service) List(ctx context.Context, states []store.TaskState, createdBy string, p store.Paging) ([]store.Task, int, error) {
	ts, total, err := s.st.ListTasks(ctx, store.TaskFilter{Kinds: ListedKinds, States: states, CreatedBy: createdBy, Paging: p})
	for i := range ts {
		ts[i].Spec = nil
	}
	return ts, total, err
}

// ResultOf returns one agent's result of a fleet task (an install's with
// its action log as output, install.go).
func (s *Service) ResultOf(ctx context.Context, id, agent string) (store.Result, error) {
	t, err := s.st.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && t.Kind != store.KindFleet {
		return store.Result{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return store.Result{}, err
	}
	r, err := s.st.GetResult(ctx, id, agent)
	if errors.Is(err, store.ErrNotFound) {
		return store.Result{}, fmt.Errorf("agent %s in task %s: %w", agent, id, ErrNotFound)
	}
	if err != nil || !isInstall(t) {
		return r, err
	}
	as, err := s.storedActions(ctx, id, agent)
	if err != nil {
		return store.Result{}, err
	}
	return withInstallOutput(r, installsvc.RenderLog(as)), nil
}

// LayoutStatus is GET /api/layout/{id} (layout.md), times in unix seconds.
type LayoutStatus struct {
	ID            string       `json:"id"`
	Name          string       `json:"name"`
	Mode          string       `json:"mode"`
	State         string       `json:"state"`
	Msg           string       `json:"msg,omitempty"`
	Done          bool         `json:"done"`
	Created       int64        `json:"created"`
	Finished      int64        `json:"finished"`
	TotalCount    int          `json:"total_count"`
	FinishedCount int          `json:"finished_count"`
	Nodes         []LayoutNode `json:"nodes"`
}

// LayoutNode is one agent's run of a layout.
type LayoutNode struct {
	ID       string       `json:"id"`
	State    string       `json:"state"`
	Created  int64        `json:"created"`
	Finished int64        `json:"finished"`
	OK       bool         `json:"ok"`
	Msg      string       `json:"msg"`
	Steps    []LayoutStep `json:"steps"`
}

// LayoutStep is one step's result on one agent.
type LayoutStep struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped"`
	Code    int    `json:"code"`
	Output  string `json:"output"` // head, a "[... N bytes ...]" marker, tail
	Msg     string `json:"msg"`
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Layout returns a layout's status.
func (s *Service) Layout(ctx context.Context, id string) (LayoutStatus, error) {
	t, err := s.st.GetTask(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && t.Kind != store.KindLayout {
		return LayoutStatus{}, fmt.Errorf("layout %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return LayoutStatus{}, err
	}
	spec, err := unmarshalLayoutSpec(t)
	if err != nil {
		return LayoutStatus{}, err
	}
	rs, err := s.allResults(ctx, id)
	if err != nil {
		return LayoutStatus{}, err
	}
	by := make(map[string]store.Result, len(rs))
	for _, r := range rs {
		by[r.AgentID] = r
	}
	st := LayoutStatus{ID: id, Name: spec.Name, Mode: spec.Mode, State: string(t.State), Msg: t.Msg, Done: t.State.Final(),
		Created: unix(t.CreatedAt), TotalCount: len(spec.IDs), Nodes: make([]LayoutNode, 0, len(spec.IDs))}
	if st.Done {
		st.Finished = unix(t.FinishedAt)
	}
	for _, agent := range spec.IDs {
		r := by[agent]
		n := LayoutNode{ID: agent, State: string(r.State), Created: unix(r.StartedAt), OK: r.State == store.ResultOK, Msg: r.Msg, Steps: make([]LayoutStep, 0, len(spec.Steps))}
		if r.State.Final() || r.State == store.ResultLost {
			n.Finished = unix(r.EndedAt)
			st.FinishedCount++
		}
		for k, step := range spec.Steps {
			sr := by[stepKey(agent, k)]
			n.Steps = append(n.Steps, LayoutStep{Name: step.Name, State: string(sr.State), OK: sr.State == store.ResultOK,
				Skipped: sr.State == store.ResultSkipped, Code: sr.ExitCode, Output: Output(sr), Msg: sr.Msg})
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st, nil
}

// ReadOutput reads an agent's stored output of a fleet task.
func (s *Service) ReadOutput(ctx context.Context, id, agent string, off, n int64) ([]byte, error) {
	b, _, err := s.st.ReadOutput(ctx, id, agent, off, n)
	return b, err
}

// OutputSize returns the stored size of an agent's output of a fleet task.
func (s *Service) OutputSize(ctx context.Context, id, agent string) (int64, error) {
	return s.st.OutputSize(ctx, id, agent)
}
