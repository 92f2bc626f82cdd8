package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/store"
)

type stateKey struct{}

// reqState is what the middleware learns about a request: its identity,
// its audit entry (nil when the route is not audited) and its outcome.
type reqState struct {
	id     authz.Identity
	authed bool
	audit  *auditInfo
	err    error
	// selfAudited: the handler wrote its own entries (Server.audit).
	selfAudited bool
}

func stateOf(r *http.Request) *reqState {
	if st, _ := r.Context().Value(stateKey{}).(*reqState); st != nil {
		return st
	}
	return &reqState{}
}

// IdentityFrom returns the identity of the token that made the request of
// ctx (false on public routes and outside a request).
func IdentityFrom(ctx context.Context) (authz.Identity, bool) {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	if st == nil || !st.authed {
		return authz.Identity{}, false
	}
	return st.id, true
}

// actor is the name recorded for r: its token's name, or "anonymous".
func actor(r *http.Request) string {
	if id, ok := IdentityFrom(r.Context()); ok && id.Name != "" {
		return id.Name
	}
	return "anonymous"
}

// auditInfo is filled by the handler of an audited route: the target
// (default the {id} path parameter, else {name}), the agent (default the
// route's agent parameter) and a detail object.
type auditInfo struct {
	target string
	agent  string
	detail any
}

// SetAudit sets the target (when not empty) and detail of the audit entry
// of the current request. Handlers of audited routes call it; it does
// nothing elsewhere.
func SetAudit(r *http.Request, target string, detail any) {
	au := stateOf(r).audit
	if au == nil {
		return
	}
	if target != "" {
		au.target = target
	}
	au.detail = detail
}

// SetAuditAgent names the agent the request reached, for routes whose
// agent is not a path parameter.
func SetAuditAgent(r *http.Request, agent string) {
	if au := stateOf(r).audit; au != nil {
		au.agent = agent
	}
}

// finishAudit stores the entry of an audited call that passed
// authentication (refusals by scope or selector included). The store
// failing is logged: the call itself already happened.
func (s *Server) finishAudit(r *http.Request, pattern string, public bool, st *reqState, sw *statusWriter, panicked any) {
	if !st.authed && !public {
		return // 401: no identity to record; the access log has it
	}
	if st.selfAudited {
		return
	}
	e := s.auditEntry(r, pattern, st.audit, sw.status(), st.err)
	if panicked != nil {
		e.Result = "aborted: " + fmt.Sprint(panicked)
		if errors.Is(asError(panicked), http.ErrAbortHandler) {
			e.Result = "aborted: the response was cut off"
		}
	}
	s.storeAudit(r, e)
}

// audit stores an entry for r now: for handlers that record several per
// call (the shell: its open and its end). status 0 means the status of err
// (200 without one). The middleware then writes none for the call.
func (s *Server) audit(r *http.Request, action string, au *auditInfo, status int, err error) {
	stateOf(r).selfAudited = true
	if status == 0 {
		status = http.StatusOK
	}
	s.storeAudit(r, s.auditEntry(r, action, au, status, err))
}

// auditEntry builds the entry of a call with status and outcome err.
func (s *Server) auditEntry(r *http.Request, action string, au *auditInfo, status int, err error) store.AuditEntry {
	e := store.AuditEntry{
		Time:      s.o.Now(),
		Actor:     actor(r),
		Action:    action,
		Target:    au.target,
		Agent:     au.agent,
		Remote:    remoteOf(r),
		Status:    status,
		RequestID: japi.RequestIDFrom(r.Context()),
		Result:    "ok",
	}
	if err != nil {
		var ae *japi.Error
		if errors.As(err, &ae) {
			e.Result, e.Status = ae.Msg, ae.Code
		} else {
			e.Result, e.Status = "internal error", http.StatusInternalServerError
		}
	}
	if au.detail != nil {
		if b, jerr := json.Marshal(au.detail); jerr == nil {
			e.Detail = b
		}
	}
	return e
}

// storeAudit appends e; a failure is logged and counted (the call itself
// already happened).
func (s *Server) storeAudit(r *http.Request, e store.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	aerr := errNoStore
	if s.o.Store != nil {
		_, aerr = s.o.Store.AppendAudit(ctx, e)
	}
	if aerr != nil {
		s.m.AuditFailed()
		s.log.Error("audit entry not stored", "action", e.Action, "actor", e.Actor, "target", e.Target, "reqid", e.RequestID, "err", aerr)
	}
}

var errNoStore = errors.New("no store")

func asError(v any) error {
	err, _ := v.(error)
	return err
}

// statusWriter records the status of a response for its audit entry.
type statusWriter struct {
	http.ResponseWriter
	code     int
	hijacked bool // the connection was taken over (WebSocket)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// status is the written status (200 when the handler wrote nothing).
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Flush passes through (streamed downloads, event streams); after a
// hijack there is nothing to flush.
func (w *statusWriter) Flush() {
	if !w.hijacked {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Hijack passes through (WebSocket routes).
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// reaches checks that a token limited by a selector may reach agent id:
// 404 "not found: agent" otherwise, as for an agent that does not exist.
func (s *Server) reaches(ctx context.Context, id authz.Identity, agent string) error {
	if !id.Limited() {
		return nil
	}
	a, err := s.o.Store.GetAgent(ctx, agent)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errAgentNotFound // connected but not stored yet: its labels are not known
	case err != nil:
		return mapError(err)
	case !id.Reaches(a.Labels):
		return errAgentNotFound
	}
	return nil
}

// routesAudit registers the routes that read the audit log.
func (s *Server) routesAudit() {
	s.Handle("GET /api/audit", s.listAudit, Scope(authz.AuditRead))
	s.Handle("GET /api/audit/export", s.exportAudit, Scope(authz.AuditRead), Audit())
}

// auditFilter reads the filter parameters of the audit routes.
func auditFilter(p *japi.ParamReader) (store.AuditFilter, error) {
	f := store.AuditFilter{
		Actor:  p.String("actor", ""),
		Action: p.String("action", ""),
		Target: p.String("target", ""),
		Agent:  p.String("agent", ""),
	}
	since, until := p.String("since", ""), p.String("until", "")
	if err := p.Err(); err != nil {
		return f, err
	}
	var err error
	if f.Since, err = parseTime("since", since); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", until); err != nil {
		return f, err
	}
	return f, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	page := p.Int("page", 1, 1, 1<<30)
	size := p.Int("size", store.DefaultPageSize, 1, store.MaxPageSize)
	f, err := auditFilter(p)
	if err != nil {
		return err
	}
	f.Page, f.Size = page, size
	list, total, err := s.o.Store.ListAudit(r.Context(), f)
	if err != nil {
		return mapError(err)
	}
	return okPage(w, r, orEmptySlice(list), total)
}

// auditExportBatch is the entries read from the store at a time.
const auditExportBatch = 1000

// exportAudit streams the matching audit entries as JSON Lines, oldest
// first; until defaults to the time of the request, so an export ends
// even while entries keep coming. An error after the first line cuts the
// connection: a client never takes a partial export for a whole one.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(japi.Params(r))
	if err != nil {
		return err
	}
	if f.Until.IsZero() {
		f.Until = s.o.Now()
	}
	SetAudit(r, "audit", map[string]any{"since": f.Since, "until": f.Until, "actor": f.Actor, "action": f.Action, "agent": f.Agent})
	rc := http.NewResponseController(w)
	var after int64
	n := 0
	for {
		batch, err := s.o.Store.ScanAudit(r.Context(), f, after, auditExportBatch)
		if err != nil {
			if n == 0 {
				return mapError(err)
			}
			s.log.Warn("audit export aborted", "after", after, "reqid", japi.RequestIDFrom(r.Context()), "err", err)
			panic(http.ErrAbortHandler)
		}
		if n == 0 {
			w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="audit.jsonl"`)
			w.WriteHeader(http.StatusOK)
		}
		for _, e := range batch {
			b, _ := json.Marshal(e)
			b = append(b, '\n')
			if _, err := w.Write(b); err != nil {
				return nil // the client left
			}
			after = e.ID
			n++
		}
		_ = rc.Flush()
		if len(batch) < auditExportBatch {
			return nil
		}
	}
}

// remoteOf is the client address an audit entry records: the peer's, and
// for a call another member of the cluster forwarded, which member and
// the client address it reports (X-Forwarded-For, as that member set it).
func remoteOf(r *http.Request) string {
	by := r.Header.Get(HeaderForwardedBy)
	if by == "" {
		return r.RemoteAddr
	}
	out := r.RemoteAddr + " forwarded by member " + by
	if ff := r.Header.Get("X-Forwarded-For"); ff != "" {
		out += " for " + ff
	}
	if len(out) > 255 {
		out = strings.ToValidUTF8(out[:255], "")
	}
	return out
}
