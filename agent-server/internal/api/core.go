package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/console"
	"github.com/agentfleet/agent-server/internal/store"
)

// ExampleAgent is the agent type /api/foo talks to.
const ExampleAgent = "example-agent"

func (s *Server) routesCore() {
	s.Handle("GET /healthz", s.healthz, Public())
	s.Handle("GET /readyz", s.readyz, Public())
	s.Handle("GET /metrics", s.metrics, Public()) // its own token rule: api.metrics_token
	s.Handle("GET /api/info/server", s.infoServer, Authenticated())
	s.Handle("GET /api/whoami", s.whoami, Authenticated())
	s.Handle("GET /api/agents", s.listAgents, Scope(authz.AgentsRead))
	s.Handle("GET /api/agents/{id}", s.getAgent, Scope(authz.AgentsRead))
	s.Handle("PUT /api/agents/{id}/labels", s.putLabels, Scope(authz.AgentsWrite))
	s.Handle("GET /api/agents/{id}/logs", s.agentLogs, Scope(authz.LogsRead), Expensive())
	s.Handle("GET /api/agents/{id}/log/download", s.agentLogDownload, Scope(authz.LogsRead), Expensive())
	s.Handle("GET /api/foo/{id}", s.foo, Scope(authz.ExecRun), Expensive())
	s.Handle("POST /api/agents/{id}/call", s.call, Scope(authz.ExecRun), Expensive())
	s.Handle("GET /api/audit", s.listAudit, Scope(authz.AuditRead))
	s.Handle("GET /api/audit/export", s.exportAudit, Scope(authz.AuditRead), Audit())
	s.Handle("GET /api/openapi.json", raw(s.doc.ServeJSON), Authenticated())
	s.Handle("GET /api/openapi.yaml", raw(s.doc.ServeYAML), Authenticated())
	s.Handle("GET /docs/", raw(s.site.Docs), Public())
	s.Handle("GET /ui/", raw(s.site.UI), Public())
	s.Handle("GET /{$}", raw(console.Root), Public())
	s.routesTokens()
}

// raw adapts a plain handler function.
func raw(f http.HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f(w, r)
		return nil
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	japi.OK(w, r, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.o.Store.Ping(ctx); err != nil {
		s.log.Warn("readyz: store does not answer", "err", err)
		return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "not ready: store unreachable", Err: err}
	}
	japi.OK(w, r, map[string]string{"status": "ready"})
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.o.MetricsToken != "" {
		if err := s.auth.checkMetrics(r, s.o.MetricsToken); err != nil {
			return err
		}
	}
	promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
	return nil
}

// ServerInfo is the payload of GET /api/info/server.
type ServerInfo struct {
	ID         string `json:"id"`
	Version    string `json:"version"`
	Agents     int    `json:"agents"` // connected now
	IsBlocking bool   `json:"is_blocking"`
}

func (s *Server) infoServer(w http.ResponseWriter, r *http.Request) error {
	var n int
	if c, ok := s.o.Fleet.(interface{ Count() int }); ok {
		n = c.Count() // O(1); Sessions copies every session
	} else {
		n = len(s.o.Fleet.Sessions())
	}
	if id, _ := IdentityFrom(r.Context()); id.Limited() {
		// Only the connected agents the token reaches.
		keep, err := s.reachable(r, func(string) bool { return true })
		if err != nil {
			return err
		}
		n = 0
		for _, ss := range s.o.Fleet.Sessions() {
			if keep(ss.ID) {
				n++
			}
		}
	}
	japi.OK(w, r, ServerInfo{
		ID:         s.o.Config.ID,
		Version:    s.o.Version,
		Agents:     n,
		IsBlocking: s.o.Blocking(),
	})
	return nil
}

// reachable returns a test of the agents r's token reaches among those
// want accepts: every agent for a token without a selector, else the
// stored agents matching its selector.
func (s *Server) reachable(r *http.Request, want func(string) bool) (func(string) bool, error) {
	id, _ := IdentityFrom(r.Context())
	if !id.Limited() {
		return want, nil
	}
	in := map[string]bool{}
	f := store.AgentFilter{Labels: id.Labels()}
	f.Size = store.MaxPageSize
	for f.Page = 1; ; f.Page++ {
		list, _, err := s.o.Store.ListAgents(r.Context(), f)
		if err != nil {
			return nil, mapError(err)
		}
		for _, a := range list {
			in[a.ID] = true
		}
		if len(list) < store.MaxPageSize || f.Page*store.MaxPageSize >= maxAgentScan {
			break
		}
	}
	return func(id string) bool { return in[id] && want(id) }, nil
}

// Agent is one agent in the API (the 1.5 fields first).
type Agent struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Version     string            `json:"version"`
	IP          string            `json:"ip"`
	MAC         string            `json:"mac"`
	OS          string            `json:"os"`
	Platform    string            `json:"platform"`
	Arch        string            `json:"arch"`
	IsBusy      bool              `json:"is_busy"`
	IsOnline    bool              `json:"is_online"`
	HostName    string            `json:"host_name"`
	Labels      map[string]string `json:"labels"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
	ConnectedAt time.Time         `json:"connected_at,omitzero"`
}

func agentView(a store.Agent, sess Session, online bool) Agent {
	v := Agent{
		ID: a.ID, Type: a.Type, Version: a.Version, IP: a.IP, MAC: a.MAC, OS: a.OS, Platform: a.Platform,
		Arch: a.Arch, HostName: a.HostName, Labels: a.Labels, FirstSeen: a.FirstSeen, LastSeen: a.LastSeen,
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if online {
		v.IsOnline, v.IsBusy, v.ConnectedAt = true, sess.Busy, sess.ConnectedAt
		// The store's last_seen of a connected agent is written only every
		// few minutes (and at disconnect); the live session knows better.
		if sess.LastSeen.After(v.LastSeen) {
			v.LastSeen = sess.LastSeen
		}
		if v.Type == "" {
			v.Type, v.Version = sess.Type, sess.Version
		}
	}
	return v
}

// maxAgentScan bounds the agents read to filter by online=false in memory.
const maxAgentScan = 200000

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	f := store.AgentFilter{
		Type:     p.String("type", ""),
		OS:       p.String("os", ""),
		Platform: p.String("platform", ""),
		Keyword:  p.String("keyword", ""),
		Sort:     p.String("sort", ""),
	}
	f.Page = p.Int("page", 1, 1, 1<<30)
	// 1.5 had no upper bound (clients ask for "everything" with a large
	// size); pages beyond the store's are cut from a scan.
	f.Size = p.Int("size", store.DefaultPageSize, 1, maxAgentScan)
	hasOnline := p.Has("online")
	online := p.Bool("online", false)
	sel := p.String("labels", "")
	if err := p.Err(); err != nil {
		return err
	}
	if f.Sort != "" {
		if _, err := store.AgentOrder(f.Sort); err != nil {
			return japi.BadParam("sort", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
		}
	}
	if sel != "" {
		m, err := store.ParseSelector(sel)
		if err != nil {
			return japi.BadParam("labels", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
		}
		f.Labels = m
	}
	if err := limitFilter(r, &f); err != nil {
		return err
	}
	// The online filter needs every live session; a plain listing looks up
	// only the page's agents (O(page), not O(fleet): the console's fleet
	// page asks for one every few seconds).
	sessions := map[string]Session{}
	if hasOnline {
		for _, ss := range s.o.Fleet.Sessions() {
			sessions[ss.ID] = ss
		}
	}
	var (
		list  []store.Agent
		total int
		err   error
	)
	big := f.Size > store.MaxPageSize
	switch {
	case hasOnline && online:
		if len(sessions) == 0 {
			break
		}
		if big || len(sessions) > store.MaxFilterIDs {
			list, total, err = s.scanAgents(r.Context(), f, func(id string) bool { _, ok := sessions[id]; return ok })
			break
		}
		for id := range sessions {
			f.IDs = append(f.IDs, id)
		}
		list, total, err = s.o.Store.ListAgents(r.Context(), f)
	case hasOnline:
		list, total, err = s.scanAgents(r.Context(), f, func(id string) bool { _, ok := sessions[id]; return !ok })
	case big:
		list, total, err = s.scanAgents(r.Context(), f, func(string) bool { return true })
	default:
		list, total, err = s.o.Store.ListAgents(r.Context(), f)
	}
	if err != nil {
		return mapError(err)
	}
	out := make([]Agent, 0, len(list))
	for _, a := range list {
		ss, ok := sessions[a.ID]
		if !hasOnline {
			ss, ok = s.o.Fleet.Session(a.ID)
		}
		out = append(out, agentView(a, ss, ok))
	}
	w.Header().Set("X-Total-Count", itoa(total))
	japi.OK(w, r, out)
	return nil
}

// limitFilter adds the selector of a limited token to f: lists leave out
// the agents the token does not reach.
func limitFilter(r *http.Request, f *store.AgentFilter) error {
	id, _ := IdentityFrom(r.Context())
	if !id.Limited() {
		return nil
	}
	f.Labels = append(f.Labels, id.Labels()...)
	if len(f.Labels) > store.MaxLabels {
		return japi.BadParam("labels", fmt.Sprintf("with the token's selector more than %d terms", store.MaxLabels))
	}
	return nil
}

// scanAgents pages through every agent matching f and keeps those keep
// accepts, then cuts f's page out of them.
func (s *Server) scanAgents(ctx context.Context, f store.AgentFilter, keep func(string) bool) ([]store.Agent, int, error) {
	page, size := f.Page, f.Size
	var all []store.Agent
	f.Size = store.MaxPageSize
	for f.Page = 1; ; f.Page++ {
		list, _, err := s.o.Store.ListAgents(ctx, f)
		if err != nil {
			return nil, 0, err
		}
		for _, a := range list {
			if keep(a.ID) {
				all = append(all, a)
			}
		}
		if len(list) < store.MaxPageSize || f.Page*store.MaxPageSize >= maxAgentScan {
			break
		}
	}
	start := (page - 1) * size
	if start >= len(all) {
		return nil, len(all), nil
	}
	return all[start:min(len(all), start+size)], len(all), nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	id := japi.Params(r).Path("id")
	a, err := s.o.Store.GetAgent(r.Context(), id)
	sess, online := s.o.Fleet.Session(id)
	switch {
	case errors.Is(err, store.ErrNotFound) && online:
		a = store.Agent{ID: id} // connected, not stored yet
	case errors.Is(err, store.ErrNotFound):
		return errAgentNotFound
	case err != nil:
		return err
	}
	japi.OK(w, r, agentView(a, sess, online))
	return nil
}

// LabelsRequest is the body of PUT /api/agents/{id}/labels.
type LabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

func (s *Server) putLabels(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id") // not Params: it would read a form body before DecodeJSON
	var req LabelsRequest
	if err := japi.DecodeJSON(r, &req, s.maxBody); err != nil {
		return err
	}
	if req.Labels == nil {
		return japi.MissingParam("labels")
	}
	if err := store.ValidateLabels(req.Labels); err != nil {
		return japi.BadParam("labels", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
	}
	SetAudit(r, id, req)
	if err := s.o.Store.SetAgentLabels(r.Context(), id, req.Labels); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errAgentNotFound
		}
		return mapError(err)
	}
	japi.OK(w, r, req)
	return nil
}

// FooReply is the payload of GET /api/foo/{id}.
type FooReply struct {
	Reply string  `json:"reply"` // "bar"
	MS    float64 `json:"ms"`    // round trip
}

func (s *Server) foo(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	timeout := s.timeout(p)
	if err := p.Err(); err != nil {
		return err
	}
	if err := s.agentType(id, ExampleAgent); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	start := time.Now()
	rep, err := s.o.Fleet.Call(ctx, id, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		return s.callError(ctx, timeout, err)
	}
	if rep.Type != protocol.TypeBar {
		return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "unexpected reply type " + itoa(int(rep.Type)) + " to foo"}
	}
	japi.OK(w, r, FooReply{Reply: "bar", MS: float64(time.Since(start).Microseconds()) / 1000})
	return nil
}

// callError maps the error of a request to an agent, naming the timeout
// when ctx's deadline passed.
func (s *Server) callError(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return timeoutErr(timeout, err)
	}
	return mapError(err)
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
	if list == nil {
		list = []store.AuditEntry{}
	}
	w.Header().Set("X-Total-Count", itoa(total))
	japi.OK(w, r, list)
	return nil
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

// parseTime reads an RFC 3339 time or unix seconds; "" is the zero time.
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if n, err := atoi64(v); err == nil && n >= 0 && n < 1<<40 {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, japi.BadParam(name, "must be an RFC 3339 time or unix seconds")
}
