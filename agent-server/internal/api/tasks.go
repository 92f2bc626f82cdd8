package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/layout"
	"github.com/agentfleet/agent-server/internal/store"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// taskRoutes serves /api/tasks and /api/layout.
type taskRoutes struct {
	s   *Server
	svc *tasks.Service
	lim layout.Limits
	// spoolDir holds the files of layouts being checked and run
	// (cache_dir).
	spoolDir string
	// heartbeat is the interval of SSE comments that keep proxies from
	// closing an idle stream.
	heartbeat time.Duration
}

// RoutesTasks registers the fleet task and layout routes, served by svc.
// lim bounds layout archives.
func (s *Server) RoutesTasks(svc *tasks.Service, lim layout.Limits) {
	x := &taskRoutes{s: s, svc: svc, lim: lim, heartbeat: 15 * time.Second}
	if s.o.Config != nil {
		x.spoolDir = s.o.Config.CacheDir
	}
	if x.lim.ArchiveBytes <= 0 {
		x.lim.ArchiveBytes = 256 << 20
	}
	// {id} is a task here: the agents a task reaches are checked when it
	// is created; a token limited by a selector sees only its own tasks.
	// In a cluster, the routes that read the run in its owner's memory
	// (events, cancel, the in-flight high-water mark) or its owner's data
	// dir (pulled files) go to the member that owns the task (TaskOwner);
	// the others read the shared store on any member (docs/cluster.md).
	s.Handle("POST /api/tasks", x.create, Scope(authz.TasksWrite), Expensive())
	s.Handle("GET /api/tasks", x.list, Scope(authz.TasksRead))
	s.Handle("GET /api/tasks/{id}", x.get, Scope(authz.TasksRead), AgentParam(""), TaskOwner())
	s.Handle("GET /api/tasks/{id}/agents/{agent}/output", x.output, Scope(authz.TasksRead), AgentParam("agent"), Audit(), Local())
	s.Handle("GET /api/tasks/{id}/events", x.events, Scope(authz.TasksRead), AgentParam(""), TaskOwner())
	s.Handle("DELETE /api/tasks/{id}", x.cancel, Scope(authz.TasksWrite), AgentParam(""), TaskOwner())
	s.Handle("POST /api/layout/run", x.layoutRun, Scope(authz.TasksWrite), Expensive(), DiskHungry(), MaxBody(x.lim.ArchiveBytes+1<<20))
	s.Handle("GET /api/layout/{id}", x.layoutGet, Scope(authz.TasksRead), AgentParam(""))
	s.Handle("DELETE /api/layout/{id}", x.layoutCancel, Scope(authz.TasksWrite), AgentParam(""), TaskOwner())
	s.Handle("GET /api/layout/{id}/file", x.layoutFile, Scope(authz.TasksRead), AgentParam(""), Audit(), TaskOwner())
	s.Handle("POST /api/agents/upgrade", x.upgrade, Scope(authz.AgentsUpgrade), Expensive())
}

// taskAudit is the detail of a fleet task's audit entry.
type taskAudit struct {
	Selector tasks.Selector `json:"selector"`
	Cmd      string         `json:"cmd,omitempty"`
	Args     []string       `json:"args,omitempty"`
	Script   bool           `json:"script,omitempty"`
	Agents   int            `json:"agents"`
}

// TaskCreated is the payload of POST /api/tasks.
type TaskCreated struct {
	ID     string `json:"id"`
	Agents int    `json:"agents"`
	Lost   int    `json:"lost"` // offline at start
}

func (x *taskRoutes) create(w http.ResponseWriter, r *http.Request) error {
	var req tasks.Request
	if err := japi.DecodeJSON(r, &req, x.s.maxBody); err != nil {
		return err
	}
	if err := x.s.limitSelector(r, &req.Selector); err != nil {
		return err
	}
	au := taskAudit{Selector: req.Selector, Cmd: req.Cmd, Args: req.Args, Script: req.Script != ""}
	SetAudit(r, "", au)
	t, err := x.svc.Submit(r.Context(), req, actor(r))
	return created(w, r, t, err, func(n int) any { au.Agents = n; return au })
}

// created answers the submission of a task: its id and agent counts; the
// audit entry (audit returns it for the number of agents) gets the task id.
func created(w http.ResponseWriter, r *http.Request, t store.Task, err error, audit func(agents int) any) error {
	if err != nil {
		return mapError(err)
	}
	SetAudit(r, t.ID, audit(t.Summary.Total))
	japi.OK(w, r, TaskCreated{ID: t.ID, Agents: t.Summary.Total, Lost: t.Summary.Lost})
	return nil
}

func (x *taskRoutes) paging(p *japi.ParamReader, def int) store.Paging {
	return store.Paging{Page: p.Int("page", 1, 1, 1<<30), Size: p.Int("size", def, 1, store.MaxPageSize)}
}

func (x *taskRoutes) list(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	var states []store.TaskState
	for _, st := range p.Strings("state") {
		for st := range strings.SplitSeq(st, ",") {
			switch ts := store.TaskState(strings.TrimSpace(st)); ts {
			case store.TaskPending, store.TaskRunning, store.TaskDone, store.TaskCancelled, store.TaskFailed:
				states = append(states, ts)
			default:
				return japi.BadParam("state", "must be pending, running, done, cancelled or failed")
			}
		}
	}
	pg := x.paging(p, store.DefaultPageSize)
	if err := p.Err(); err != nil {
		return err
	}
	createdBy := ""
	if id, _ := IdentityFrom(r.Context()); id.Limited() {
		createdBy = id.Name // only the token's own tasks (see visibleTask)
	}
	ts, total, err := x.svc.List(r.Context(), states, createdBy, pg)
	if err != nil {
		return mapError(err)
	}
	return okPage(w, r, orEmptySlice(ts), total)
}

func (x *taskRoutes) get(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	pg := x.paging(p, store.MaxPageSize)
	if err := p.Err(); err != nil {
		return err
	}
	t, err := x.s.visibleTask(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	v, total, err := x.svc.Task(r.Context(), r.PathValue("id"), pg)
	if err != nil {
		return mapError(err)
	}
	if !ownsOutput(r, t.CreatedBy) {
		for i := range v.Agents {
			v.Agents[i].OutputHead, v.Agents[i].OutputTail = "", ""
		}
		w.Header().Set(headerWithheld, withheldValue)
	}
	return okPage(w, r, v, total)
}

func (x *taskRoutes) cancel(w http.ResponseWriter, r *http.Request) error {
	t, err := x.s.visibleTask(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	if t.Kind == store.KindUpgrade {
		return x.doCancel(w, r, store.KindUpgrade)
	}
	return x.doCancel(w, r, store.KindFleet)
}

func (x *taskRoutes) doCancel(w http.ResponseWriter, r *http.Request, kind store.TaskKind) error {
	if _, err := x.s.visibleTask(r, r.PathValue("id")); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := x.svc.Cancel(ctx, r.PathValue("id"), kind); err != nil {
		return mapError(err)
	}
	japi.OK(w, r, nil)
	return nil
}

// outputReader reads a stored output stream for http.ServeContent.
type outputReader struct {
	ctx       context.Context
	svc       *tasks.Service
	id, agent string
	size, off int64
}

func (o *outputReader) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	b, err := o.svc.ReadOutput(o.ctx, o.id, o.agent, o.off, int64(min(len(p), 1<<20)))
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b)
	o.off += int64(n)
	return n, nil
}

func (o *outputReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += o.off
	case io.SeekEnd:
		off += o.size
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	o.off = off
	return off, nil
}

// output serves an agent's full stored output, with Range support.
func (x *taskRoutes) output(w http.ResponseWriter, r *http.Request) error {
	id, agent := r.PathValue("id"), r.PathValue("agent")
	if _, err := x.s.visibleTask(r, id); err != nil {
		return err
	}
	if err := x.s.mayReadOutput(r, id); err != nil {
		return err
	}
	res, err := x.svc.ResultOf(r.Context(), id, agent)
	if err != nil {
		return mapError(err)
	}
	// An install's output is its action log (tasks.InstallOutput).
	log, install, err := x.svc.InstallOutput(r.Context(), id, agent)
	if err != nil {
		return mapError(err)
	}
	var body io.ReadSeeker = bytes.NewReader(log)
	if !install {
		size, err := x.svc.OutputSize(r.Context(), id, agent)
		if err != nil {
			return mapError(err)
		}
		body = &outputReader{ctx: r.Context(), svc: x.svc, id: id, agent: agent, size: size}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Output-Bytes", fmt.Sprint(res.OutputBytes))
	w.Header().Set("X-Result-State", string(res.State))
	http.ServeContent(w, r, "", time.Time{}, body)
	return nil
}

// notRunHere is the msg of the done event of a task that is neither
// final nor run by this server: its state is as stored; follow it again
// later.
const notRunHere = "the task is not run by this server now (awaiting its resume or a takeover by another cluster member): read it again later"

// events streams a task's events as Server-Sent Events: "event: <type>",
// "id: <n>", "data: <Event JSON>". The stream ends after the done event;
// a task that no longer runs gets its done event at once.
func (x *taskRoutes) events(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	t, err := x.s.visibleTask(r, id)
	if err != nil {
		return err
	}
	if t.Kind != store.KindFleet && t.Kind != store.KindLayout && t.Kind != store.KindUpgrade {
		return japi.NotFound("task")
	}
	// Output events of another token's task only with exec:read-any.
	withhold := !ownsOutput(r, t.CreatedBy)
	if withhold {
		w.Header().Set(headerWithheld, withheldValue)
	}
	sub, serr := x.svc.Subscribe(id)
	es := newEventStream(w)
	send := func(e tasks.Event) error {
		b, _ := json.Marshal(e)
		if err := es.event("id: %d\nevent: %s\ndata: %s", e.ID, e.Type, b); err != nil {
			return err
		}
		return es.flush()
	}
	if serr != nil { // not running here: the stored outcome
		if t, err = x.s.o.Store.GetTask(r.Context(), id); err == nil {
			msg := t.Msg
			if !t.State.Final() && msg == "" {
				// In a cluster: no live member owns it (its owner's lease
				// ended, it awaits a takeover); on one server: not resumed yet.
				msg = notRunHere
			}
			_ = send(tasks.Event{Type: tasks.EventDone, State: string(t.State), Msg: msg})
		}
		return nil
	}
	defer sub.Close()
	_ = es.flush()
	pump(r.Context(), es, x.heartbeat, sub.C, func(e tasks.Event) bool {
		return withhold && e.Type == tasks.EventOutput || send(e) == nil
	}, func() {
		if sub.Dropped() {
			_ = es.event("event: dropped\ndata: {\"msg\":\"client too slow: reconnect and read the task afresh\"}")
			_ = es.flush()
		}
	})
	return nil
}
