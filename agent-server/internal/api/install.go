package api

import (
	"errors"
	"net/http"
	"strings"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/installsvc"
	"github.com/agentfleet/agent-server/internal/rollout"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// installRoutes serves /api/install (the seed's /install/run and
// /install/status): an install is a fleet task (one agent for id, many for
// a selector) whose agents run the install service.
type installRoutes struct {
	s    *Server
	svc  *tasks.Service
	inst *installsvc.Service
}

// RoutesInstall registers the install routes.
func (s *Server) RoutesInstall(svc *tasks.Service, inst *installsvc.Service) {
	x := &installRoutes{s: s, svc: svc, inst: inst}
	// Installing runs installers as root on the host: exec:run's power.
	s.Handle("POST /api/install/run", x.run, Scope(authz.ExecRun), Expensive(), AgentParam(""))
	s.Handle("GET /api/install/status", x.status, Scope(authz.TasksRead), AgentParam(""))
}

// InstallRunRequest is the body of POST /api/install/run: the seed's
// parameters (id, uri, url, dir, timeout, auth, user, pass), ours
// (sha256, name, kind, deps), and for a fleet install a selector instead
// of id with the fleet task's rollout fields.
type InstallRunRequest struct {
	ID       string          `json:"id"`
	Selector *tasks.Selector `json:"selector"`
	installsvc.Spec
	Pass        string        `json:"pass"` // Spec.Pass is never serialized
	Concurrency rollout.Limit `json:"concurrency"`
	MaxErrors   rollout.Limit `json:"max_errors"`
	Canary      int           `json:"canary"`
	BatchWait   tasks.Seconds `json:"batch_wait"`
	WaitOffline tasks.Seconds `json:"wait_offline"`
}

// installAudit is the audit detail of an install: never the password.
type installAudit struct {
	ID       string          `json:"id,omitempty"`
	Selector *tasks.Selector `json:"selector,omitempty"`
	installsvc.Spec
	Pass   bool `json:"pass,omitempty"` // whether one was given
	Agents int  `json:"agents,omitempty"`
}

func (x *installRoutes) run(w http.ResponseWriter, r *http.Request) error {
	var req InstallRunRequest
	if err := japi.DecodeJSON(r, &req, x.s.maxBody); err != nil {
		return err
	}
	spec := req.Spec
	spec.Pass = req.Pass
	au := installAudit{ID: req.ID, Selector: req.Selector, Spec: spec, Pass: spec.Pass != ""}
	au.Spec.Pass = ""
	SetAudit(r, "", au)
	req.ID = strings.TrimSpace(req.ID)
	switch {
	case req.ID == "" && req.Selector == nil:
		return japi.MissingParam("id")
	case req.ID != "" && req.Selector != nil:
		return japi.BadParam("id", "give id (one agent) or selector (a fleet install), not both")
	}
	if err := spec.Check(); err != nil {
		return mapError(err)
	}
	if spec.URI != "" {
		if err := x.inst.CheckPackage(r.Context(), spec.URI); err != nil {
			return mapError(err)
		}
	}
	sel := tasks.Selector{IDs: []string{req.ID}}
	if req.Selector != nil {
		sel = *req.Selector
	} else {
		SetAuditAgent(r, req.ID)
	}
	if err := x.s.limitSelector(r, &sel); err != nil {
		return err
	}
	if req.ID != "" {
		if err := x.s.agentType(req.ID, ExecAgent); err != nil {
			return err
		}
		if err := x.inst.Capable(req.ID); err != nil {
			return mapError(err)
		}
	}
	t, err := x.svc.Submit(r.Context(), tasks.Request{
		Selector: sel, Install: &spec, Concurrency: req.Concurrency, MaxErrors: req.MaxErrors,
		Canary: req.Canary, BatchWait: req.BatchWait, WaitOffline: req.WaitOffline,
	}, actor(r))
	if err != nil {
		return mapError(err)
	}
	au.Agents = t.Summary.Total
	SetAudit(r, t.ID, au)
	japi.OK(w, r, TaskCreated{ID: t.ID, Agents: t.Summary.Total, Lost: t.Summary.Lost})
	return nil
}

func (x *installRoutes) status(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.String("task_id", "")
	if id == "" {
		id = p.String("id", "")
	}
	if err := p.Err(); err != nil {
		return err
	}
	if id == "" {
		return japi.MissingParam("task_id")
	}
	if _, err := x.s.visibleTask(r, id); err != nil {
		return err
	}
	st, err := x.svc.InstallStatus(r.Context(), id)
	if errors.Is(err, tasks.ErrNotFound) {
		return japi.NotFound("install task")
	}
	if err != nil {
		return mapError(err)
	}
	japi.OK(w, r, st)
	return nil
}
