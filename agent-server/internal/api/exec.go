package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/store"
)

// ExecAgent is the agent type the exec, file and script routes talk to.
const ExecAgent = "exec-agent"

// Limits of the exec routes.
const (
	maxPty       = 4 << 20  // bytes per pty call
	maxScript    = 16 << 20 // script file
	maxFieldSize = 64 << 10 // one multipart form value
)

// execRoutes serves /api/exec, /api/file, /api/script and /api/transfer.
type execRoutes struct {
	s    *Server
	svc  *execsvc.Service
	http *http.Client // fetches upload URLs
}

// RoutesExec registers the exec, file and script routes, served by svc.
func (s *Server) RoutesExec(svc *execsvc.Service) {
	x := &execRoutes{s: s, svc: svc, http: fetchClient(s.o.Config)}
	uploadMax := int64(s.o.Config.API.UploadMaxBody)
	s.Handle("POST /api/exec/{id}/run", x.run, Scope(authz.ExecRun), Expensive())
	s.Handle("GET /api/exec/{id}/status/{pid}", x.status, Scope(authz.ExecRead))
	s.Handle("GET /api/exec/{id}/pty/{pid}", x.pty, Scope(authz.ExecRead), Audit())
	s.Handle("DELETE /api/exec/{id}/kill/{pid}", x.kill, Scope(authz.ExecRun), Expensive())
	s.Handle("GET /api/exec/{id}/ps", x.ps, Scope(authz.ExecRead), Expensive())
	s.Handle("GET /api/file/{id}/ls", x.ls, Scope(authz.FilesRead), Expensive())
	s.Handle("GET /api/file/{id}/download", x.download, Scope(authz.FilesRead), Expensive())
	s.Handle("POST /api/file/{id}/upload", x.upload, Scope(authz.FilesWrite), Expensive(), DiskHungry(), MaxBody(uploadMax+1<<20))
	s.Handle("POST /api/script/{id}/run", x.script, Scope(authz.ExecRun), Expensive(), DiskHungry(), MaxBody(maxScript+1<<20))
	// One-shot URLs the agents use: the transfer id is the credential.
	s.Handle("GET /api/transfer/{xid}", x.transfer, Public(), NoAudit())
	s.Handle("PUT /api/transfer/{xid}", x.transfer, Public(), NoAudit(), MaxBody(-1))
}

// ExecRunRequest is the body of POST /api/exec/{id}/run.
type ExecRunRequest struct {
	Cmd     string   `json:"cmd"`
	Args    []string `json:"args"`
	Auth    string   `json:"auth"`
	User    string   `json:"user"`
	Pass    string   `json:"pass"`
	WorkDir string   `json:"workdir"`
	Env     []string `json:"env"`
	Timeout int      `json:"timeout"` // seconds; <= 0: 60
	Result  *bool    `json:"result"`  // wait for the end; default true
	// Pipe runs the command with pipes instead of a pty (output without
	// terminal processing, stdout and stderr interleaved as written); only
	// agents announcing stream.v1 honour it, others use a pty as v1 did.
	Pipe bool `json:"pipe"`
}

// ExecRunReply is the payload of POST /api/exec/{id}/run. The fields of
// 1.5 keep its names and JSON types (times in unix seconds); the RFC 3339
// forms are the *_at fields beside them.
type ExecRunReply struct {
	ID      string      `json:"id"`    // the task id
	Begin   int64       `json:"begin"` // unix seconds, as 1.5
	BeginAt time.Time   `json:"begin_at"`
	PID     int         `json:"pid"`
	Result  *ExecResult `json:"result,omitempty"`
}

// CodeServerTimeout is the exit code 1.5 reported when the server stopped
// waiting for a command (result.running is then true).
const CodeServerTimeout = -65535

// ExecResult is the outcome part of a run reply.
type ExecResult struct {
	Running     bool      `json:"running"`
	Code        int       `json:"code"`          // CodeServerTimeout while running
	End         int64     `json:"end,omitempty"` // unix seconds, as 1.5; absent while running
	EndAt       time.Time `json:"end_at,omitzero"`
	Data        []byte    `json:"data"` // base64 in JSON, never null
	State       string    `json:"state"`
	Msg         string    `json:"msg,omitempty"`
	Dropped     int64     `json:"dropped"`
	OutputBytes int64     `json:"output_bytes"`
}

// unix is t in unix seconds, 0 for the zero time (as 1.5 wrote it).
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// execAudit is the audit detail of a run: never the password.
type execAudit struct {
	TaskID  string   `json:"task_id,omitempty"`
	Cmd     string   `json:"cmd"`
	Args    []string `json:"args,omitempty"`
	Auth    string   `json:"auth,omitempty"`
	User    string   `json:"user,omitempty"`
	WorkDir string   `json:"workdir,omitempty"`
	Env     []string `json:"env,omitempty"`
	Timeout int      `json:"timeout"`
	Pipe    bool     `json:"pipe,omitempty"`
	Type    string   `json:"type,omitempty"` // script
}

func (x *execRoutes) maxTimeout() time.Duration { return time.Duration(x.s.o.Config.API.MaxTimeout) }

// cmdTimeout checks a command timeout in seconds (<= 0: the default).
func (x *execRoutes) cmdTimeout(sec int) (time.Duration, error) {
	if sec <= 0 {
		return execsvc.DefaultTimeout, nil
	}
	maxSec := int(x.maxTimeout() / time.Second)
	if sec > maxSec {
		return 0, japi.BadParam("timeout", fmt.Sprintf("must be at most %d seconds", maxSec))
	}
	return time.Duration(sec) * time.Second, nil
}

func (x *execRoutes) run(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req ExecRunRequest
	if err := japi.DecodeJSON(r, &req, x.s.maxBody); err != nil {
		return err
	}
	if strings.TrimSpace(req.Cmd) == "" {
		return japi.MissingParam("cmd")
	}
	timeout, err := x.cmdTimeout(req.Timeout)
	if err != nil {
		return err
	}
	spec := execsvc.Spec{Cmd: req.Cmd, Args: req.Args, Auth: req.Auth, User: req.User, Pass: req.Pass, WorkDir: req.WorkDir, Env: req.Env, Timeout: timeout, Pipe: req.Pipe}
	if err := spec.Validate(); err != nil {
		return x.err(r.Context(), 0, err)
	}
	audit := execAudit{Cmd: req.Cmd, Args: req.Args, Auth: req.Auth, User: req.User, WorkDir: req.WorkDir, Env: req.Env, Timeout: int(timeout / time.Second), Pipe: req.Pipe}
	SetAudit(r, "", audit)
	if err := x.s.agentType(id, ExecAgent); err != nil {
		return err
	}
	wait := req.Result == nil || *req.Result
	e, rep, err := x.start(r, id, spec, execsvc.RunOptions{CreatedBy: actor(r)})
	if e != nil {
		audit.TaskID = e.TaskID()
		SetAudit(r, "", audit)
	}
	if err != nil {
		return err
	}
	if wait {
		res, err := x.wait(r, e)
		if err != nil {
			return err
		}
		rep.Result = res
	}
	japi.OK(w, r, rep)
	return nil
}

// start runs spec and waits for its start (bounded by the API timeout).
func (x *execRoutes) start(r *http.Request, id string, spec execsvc.Spec, o execsvc.RunOptions) (*execsvc.Exec, ExecRunReply, error) {
	limit := time.Duration(x.s.o.Config.API.Timeout)
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	e, err := x.svc.Run(ctx, id, spec, o)
	if err != nil {
		return e, ExecRunReply{}, x.err(ctx, limit, err)
	}
	res := e.Result()
	return e, ExecRunReply{ID: e.TaskID(), Begin: unix(res.StartedAt), BeginAt: res.StartedAt, PID: res.PID}, nil
}

// wait waits for the end of e (its timeout plus a little) and builds the
// result part of the reply; when the wait ends first the result says
// running.
func (x *execRoutes) wait(r *http.Request, e *execsvc.Exec) (*ExecResult, error) {
	// As 1.5: the command's timeout plus 5 s, then the reply says running.
	// A legacy agent's result that is only waiting for its late output
	// after the end (execsvc.Options.LateDataMax) is waited for on top.
	ctx, cancel := context.WithTimeout(r.Context(), e.Timeout()+5*time.Second)
	defer cancel()
	res, err := e.Wait(ctx)
	if err != nil && r.Context().Err() == nil && e.Settling() {
		lctx, lcancel := context.WithTimeout(r.Context(), x.svc.LateDataMax())
		res, err = e.Wait(lctx)
		lcancel()
	}
	if err != nil && r.Context().Err() != nil {
		return nil, errClientGone
	}
	if res.State == store.ResultLost && !isRunning(e) {
		return nil, &japi.Error{Code: http.StatusGone, Msg: "agent went away: " + res.Msg}
	}
	limit := int(x.s.o.Config.Task.OutputCap) + 64<<10
	if limit <= 64<<10 {
		limit = math.MaxInt32
	}
	data, derr := e.Output(context.WithoutCancel(r.Context()), limit)
	if derr != nil {
		return nil, derr
	}
	if data == nil {
		data = []byte{}
	}
	out := &ExecResult{
		Running: isRunning(e), Code: res.ExitCode, End: unix(res.EndedAt), EndAt: res.EndedAt, Data: data, State: string(res.State),
		Msg: res.Msg, Dropped: res.Dropped, OutputBytes: res.OutputBytes,
	}
	if out.Running {
		out.Code, out.End, out.EndAt = CodeServerTimeout, 0, time.Time{}
	}
	return out, nil
}

func isRunning(e *execsvc.Exec) bool {
	select {
	case <-e.Done():
		return false
	default:
		return true
	}
}

// ExecStatus is the payload of GET /api/exec/{id}/status/{pid}: 1.5's
// fields (unix seconds) and the richer ones beside them.
type ExecStatus struct {
	Begin   int64     `json:"begin"`         // unix seconds
	End     int64     `json:"end,omitempty"` // unix seconds, once done
	Done    bool      `json:"done"`
	Code    int       `json:"code"`
	TaskID  string    `json:"task_id"`
	BeginAt time.Time `json:"begin_at"`
	EndAt   time.Time `json:"end_at,omitzero"`
	State   string    `json:"state"`
	Msg     string    `json:"msg,omitempty"`
}

// lookup finds the exec of {id} with {pid}: in memory, or after a restart
// from the store.
func (x *execRoutes) lookup(r *http.Request) (*execsvc.Exec, error) {
	p := japi.Params(r)
	id := p.Path("id")
	pid := p.PathInt("pid", 1, math.MaxInt32)
	if err := p.Err(); err != nil {
		return nil, err
	}
	e, err := x.svc.Find(r.Context(), id, pid)
	if err != nil {
		return nil, mapError(err)
	}
	if e == nil {
		return nil, japi.NotFound("task")
	}
	return e, nil
}

func (x *execRoutes) status(w http.ResponseWriter, r *http.Request) error {
	e, err := x.lookup(r)
	if err != nil {
		return err
	}
	res := e.Result()
	st := ExecStatus{Begin: unix(res.StartedAt), Done: !isRunning(e), Code: res.ExitCode, TaskID: e.TaskID(), BeginAt: res.StartedAt,
		State: string(res.State), Msg: res.Msg}
	if st.Done {
		st.End, st.EndAt = unix(res.EndedAt), res.EndedAt
	}
	japi.OK(w, r, st)
	return nil
}

// pty serves the output of a command as 1.5 clients poll it: the bytes
// produced since the caller's previous call. The cursor is the token's own,
// so readers never take output from one another; ?offset=N reads from
// byte N instead and moves no cursor. X-Next-Offset names where the next
// read starts. Output of a command started by another token needs
// exec:read-any.
func (x *execRoutes) pty(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	hasOff := p.Has("offset")
	off := p.Int("offset", 0, 0, math.MaxInt)
	if err := p.Err(); err != nil {
		return err
	}
	e, err := x.lookup(r)
	if err != nil {
		return err
	}
	SetAudit(r, "", map[string]any{"task_id": e.TaskID(), "pid": e.PID()})
	if err := x.s.mayReadOutput(r, e.TaskID()); err != nil {
		return err
	}
	var (
		b    []byte
		next int64
	)
	if hasOff {
		b, next, err = e.PtyAt(r.Context(), int64(off), maxPty)
	} else {
		b, next, err = e.Pty(r.Context(), actor(r), maxPty)
	}
	if err != nil && len(b) == 0 {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Done", fmt.Sprint(!isRunning(e)))
	w.Header().Set("X-Next-Offset", strconv.FormatInt(next, 10))
	_, _ = w.Write(b)
	return nil
}

// ExecKillReply is the payload of DELETE /api/exec/{id}/kill/{pid}.
type ExecKillReply struct {
	TaskID string `json:"task_id,omitempty"`
	PID    int    `json:"pid"`
}

func (x *execRoutes) kill(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	pid := p.PathInt("pid", 1, math.MaxInt32)
	c, err := x.s.startCall(r, p, id, ExecAgent)
	if err != nil {
		return err
	}
	defer c.cancel()
	rep := ExecKillReply{PID: pid}
	if e := x.svc.Lookup(id, pid); e != nil {
		rep.TaskID = e.TaskID()
		SetAudit(r, "", rep)
		if err := e.Kill(c.ctx); err != nil {
			return c.fail(err)
		}
	} else if err := x.svc.KillPID(c.ctx, id, pid); err != nil {
		SetAudit(r, "", rep)
		return c.fail(err)
	}
	japi.OK(w, r, rep)
	return nil
}

// PsEntry is one running task of GET /api/exec/{id}/ps.
type PsEntry struct {
	TaskID  string    `json:"task_id"`
	PID     int       `json:"pid"`
	Begin   int64     `json:"begin"` // unix seconds, as 1.5
	BeginAt time.Time `json:"begin_at"`
}

func (x *execRoutes) ps(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	c, err := x.s.startCall(r, p, id, ExecAgent)
	if err != nil {
		return err
	}
	defer c.cancel()
	tasks, err := x.svc.Ps(c.ctx, id)
	if err != nil {
		return c.fail(err)
	}
	out := make([]PsEntry, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, PsEntry{TaskID: t.TaskID, PID: t.Pid, Begin: unix(t.Begin), BeginAt: t.Begin})
	}
	japi.OK(w, r, out)
	return nil
}

// err maps an error of a request to an agent that had timeout (0: none),
// naming the timeout when ctx's deadline passed (see callError).
func (x *execRoutes) err(ctx context.Context, timeout time.Duration, err error) error {
	if timeout > 0 {
		return x.s.callError(ctx, timeout, err)
	}
	return mapError(err)
}
