package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/store"
)

type auditKey struct{}

// auditInfo is filled by a state-changing handler: the target (default the
// {id} path parameter) and a detail object.
type auditInfo struct {
	target string
	detail any
}

// SetAudit sets the target (when not empty) and detail of the audit entry
// of the current request. Handlers of state-changing routes call it; it does
// nothing elsewhere.
func SetAudit(r *http.Request, target string, detail any) {
	au, _ := r.Context().Value(auditKey{}).(*auditInfo)
	if au == nil {
		return
	}
	if target != "" {
		au.target = target
	}
	au.detail = detail
}

// audit stores the entry of a state-changing call. The store failing is
// logged: the call itself already happened.
func (s *Server) audit(r *http.Request, tok tokenInfo, pattern string, au *auditInfo, err error) {
	e := store.AuditEntry{
		Time:      s.o.Now(),
		Actor:     tok.name,
		Action:    pattern,
		Target:    au.target,
		RequestID: japi.RequestIDFrom(r.Context()),
		Result:    "ok",
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	if err != nil {
		var ae *japi.Error
		if errors.As(err, &ae) {
			e.Result = ae.Msg
		} else {
			e.Result = "internal error"
		}
	}
	if au.detail != nil {
		if b, jerr := json.Marshal(au.detail); jerr == nil {
			e.Detail = b
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if _, aerr := s.o.Store.AppendAudit(ctx, e); aerr != nil {
		s.log.Error("audit entry not stored", "action", e.Action, "actor", e.Actor, "target", e.Target, "reqid", e.RequestID, "err", aerr)
	}
}
