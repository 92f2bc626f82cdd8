package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	japi "github.com/agentfleet/jkframe/api"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hostmetrics"
	"github.com/agentfleet/agent-server/internal/store"
)

// Limits of the metrics routes.
const (
	maxTop              = 1 << 20          // ?top=
	defaultFleetTimeout = 10 * time.Second // per agent, PUT /api/metrics/status
)

// metricsRoutes serves /api/metrics and /metrics/hosts.
type metricsRoutes struct {
	s     *Server
	svc   *hostmetrics.Service
	hosts http.Handler
}

// RoutesMetrics registers the /api/metrics routes and /metrics/hosts (the
// host series of svc's gatherer; same token rule as /metrics).
func (s *Server) RoutesMetrics(svc *hostmetrics.Service) {
	m := &metricsRoutes{s: s, svc: svc, hosts: promhttp.HandlerFor(svc.Gatherer(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})}
	s.Handle("GET /api/metrics/{id}/static", m.static, Scope(authz.MetricsRead), Expensive())
	s.Handle("GET /api/metrics/{id}/dynamic", m.dynamic, Scope(authz.MetricsRead), Expensive())
	s.Handle("GET /api/metrics/{id}/dynamic/usage", m.one(store.CategoryUsage), Scope(authz.MetricsRead), Expensive())
	s.Handle("GET /api/metrics/{id}/dynamic/process", m.one(store.CategoryProcess), Scope(authz.MetricsRead), Expensive())
	s.Handle("GET /api/metrics/{id}/dynamic/connections", m.one(store.CategoryConns), Scope(authz.MetricsRead), Expensive())
	s.Handle("GET /api/metrics/{id}/dynamic/temps", m.one(store.CategoryTemps), Scope(authz.MetricsRead), Expensive())
	s.Handle("GET /api/metrics/{id}/status", m.getStatus, Scope(authz.MetricsRead), Expensive())
	s.Handle("PUT /api/metrics/{id}/status", m.putStatus, Scope(authz.MetricsWrite), Expensive())
	s.Handle("PUT /api/metrics/status", m.putFleet, Scope(authz.MetricsWrite), Expensive())
	s.Handle("GET /api/metrics/{id}/history", m.history, Scope(authz.MetricsRead))
	s.Handle("GET /metrics/hosts", m.hostsMetrics, Public()) // its own token rule: api.metrics_token
}

// cachedType refuses ?cached=1 for a connected agent of another type; an
// offline agent is served from the store.
func (m *metricsRoutes) cachedType(id string) error {
	if sess, ok := m.s.o.Hub.Session(id); ok && sess.Come().Name != hostmetrics.AgentType {
		return m.s.agentType(id, hostmetrics.AgentType)
	}
	return nil
}

// setCollected names when the server received a cached report.
func setCollected(w http.ResponseWriter, at time.Time) {
	if !at.IsZero() {
		w.Header().Set("X-Collected-At", at.UTC().Format(time.RFC3339Nano))
	}
}

// maxHistorySpan bounds how far back ?since= of the history route reaches
// (the stored history is bounded by hostmetrics.history_retention anyway).
const maxHistorySpan = 366 * 24 * time.Hour

// history answers GET /api/metrics/{id}/history: the host's usage since
// `since` (default: one hour ago), from this server's memory or the store.
// It never asks the agent.
func (m *metricsRoutes) history(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	since := p.String("since", "")
	if err := p.Err(); err != nil {
		return err
	}
	from, err := parseTime("since", since)
	if err != nil {
		return err
	}
	now := m.s.o.Now()
	if from.IsZero() {
		from = now.Add(-time.Hour)
	}
	from = later(from, now.Add(-maxHistorySpan))
	if err := m.cachedType(id); err != nil {
		return err
	}
	if _, online := m.s.o.Hub.Session(id); !online {
		if _, err := m.s.o.Store.GetAgent(r.Context(), id); errors.Is(err, store.ErrNotFound) {
			return errAgentNotFound
		} else if err != nil {
			return mapError(err)
		}
	}
	h, err := m.svc.History(r.Context(), id, from)
	if err != nil {
		return mapError(err)
	}
	japi.OK(w, r, h)
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// dynParams are the parameters of the dynamic routes.
type dynParams struct {
	id      string
	cached  bool
	timeout time.Duration
	top     int
	kinds   []string
}

func (m *metricsRoutes) params(r *http.Request, top, kinds bool) (dynParams, error) {
	p := japi.Params(r)
	d := dynParams{id: p.Path("id"), cached: p.Bool("cached", false), timeout: m.s.timeout(p)}
	if top {
		d.top = p.Int("top", 0, 0, maxTop)
	}
	var rawKinds []string
	if kinds {
		rawKinds = p.Strings("kinds")
	}
	if err := p.Err(); err != nil {
		return d, err
	}
	if kinds {
		k, err := hostmetrics.ParseKinds(rawKinds)
		if err != nil {
			return d, japi.BadParam("kinds", fault.Message(err))
		}
		d.kinds = k
	}
	return d, nil
}

func (m *metricsRoutes) static(w http.ResponseWriter, r *http.Request) error {
	q, err := m.params(r, false, false)
	if err != nil {
		return err
	}
	return serveMetric(m, w, r, q, func(ctx context.Context) (*hostmetrics.Static, time.Time, error) {
		st := &hostmetrics.Static{}
		at, err := m.svc.Cached(ctx, q.id, store.CategoryStatic, st)
		return st, at, err
	}, func(ctx context.Context) (*hostmetrics.Static, error) { return m.svc.Static(ctx, q.id) })
}

func (m *metricsRoutes) dynamic(w http.ResponseWriter, r *http.Request) error {
	q, err := m.params(r, true, true)
	if err != nil {
		return err
	}
	req := hostmetrics.DynamicRequest{Usage: true, Process: true, Connections: true, Temperatures: true, Top: q.top, Kinds: q.kinds}
	return serveMetric(m, w, r, q, func(ctx context.Context) (*hostmetrics.Dynamic, time.Time, error) {
		d, err := m.cachedDynamic(ctx, q, true, true, true, true)
		return d, time.Time{}, err
	}, func(ctx context.Context) (*hostmetrics.Dynamic, error) { return m.svc.Dynamic(ctx, q.id, req) })
}

// serveMetric answers with what ask gets from the agent, or, with
// ?cached=1, with the stored report cached reads (and when the server
// received it; zero: not said).
func serveMetric[T any](m *metricsRoutes, w http.ResponseWriter, r *http.Request, q dynParams,
	cached func(context.Context) (T, time.Time, error), ask func(context.Context) (T, error)) error {
	if q.cached {
		if err := m.cachedType(q.id); err != nil {
			return err
		}
		v, at, err := cached(r.Context())
		if err != nil {
			return m.s.callError(r.Context(), 0, err)
		}
		setCollected(w, at)
		japi.OK(w, r, v)
		return nil
	}
	v, err := askAgent(m, r, q, ask)
	if err != nil {
		return err
	}
	japi.OK(w, r, v)
	return nil
}

// cachedDynamic reads the wanted categories from the cache; ErrNoData when
// none of them is there. Missing list categories are empty.
func (m *metricsRoutes) cachedDynamic(ctx context.Context, q dynParams, usage, process, conns, temps bool) (*hostmetrics.Dynamic, error) {
	d := &hostmetrics.Dynamic{}
	found := 0
	get := func(on bool, cat string, dst any) error {
		if !on {
			return nil
		}
		_, err := m.svc.Cached(ctx, q.id, cat, dst)
		if errors.Is(err, hostmetrics.ErrNoData) {
			return nil
		}
		if err == nil {
			found++
		}
		return err
	}
	var u hostmetrics.Usage
	if err := get(usage, store.CategoryUsage, &u); err != nil {
		return nil, err
	}
	if found > 0 {
		d.Usage = &u
	}
	if err := get(process, store.CategoryProcess, &d.Process); err != nil {
		return nil, err
	}
	if err := get(conns, store.CategoryConns, &d.Connections); err != nil {
		return nil, err
	}
	if err := get(temps, store.CategoryTemps, &d.Temperatures); err != nil {
		return nil, err
	}
	if found == 0 {
		return nil, hostmetrics.ErrNoData
	}
	if process {
		d.Process = hostmetrics.TopProcesses(orEmptySlice(d.Process), q.top)
	}
	if conns {
		d.Connections = hostmetrics.FilterConnections(orEmptySlice(d.Connections), q.kinds)
	}
	if temps {
		d.Temperatures = orEmptySlice(d.Temperatures)
	}
	return d, nil
}

func orEmptySlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// one serves one dynamic category: the payload is that category alone
// (usage object, or process / connections / temps list).
func (m *metricsRoutes) one(cat string) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q, err := m.params(r, cat == store.CategoryProcess, cat == store.CategoryConns)
		if err != nil {
			return err
		}
		if q.cached {
			if err := m.cachedType(q.id); err != nil {
				return err
			}
			return m.cachedOne(w, r, q, cat)
		}
		req := hostmetrics.DynamicRequest{Top: q.top, Kinds: q.kinds}
		switch cat {
		case store.CategoryUsage:
			req.Usage = true
		case store.CategoryProcess:
			req.Process = true
		case store.CategoryConns:
			req.Connections = true
		case store.CategoryTemps:
			req.Temperatures = true
		}
		d, err := askAgent(m, r, q, func(ctx context.Context) (*hostmetrics.Dynamic, error) { return m.svc.Dynamic(ctx, q.id, req) })
		if err != nil {
			return err
		}
		switch cat {
		case store.CategoryUsage:
			if d.Usage == nil {
				return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "the agent sent no usage data"}
			}
			japi.OK(w, r, d.Usage)
		case store.CategoryProcess:
			japi.OK(w, r, d.Process)
		case store.CategoryConns:
			japi.OK(w, r, d.Connections)
		default:
			japi.OK(w, r, d.Temperatures)
		}
		return nil
	}
}

func (m *metricsRoutes) cachedOne(w http.ResponseWriter, r *http.Request, q dynParams, cat string) error {
	var (
		at  time.Time
		err error
		out any
	)
	switch cat {
	case store.CategoryUsage:
		var u hostmetrics.Usage
		at, err = m.svc.Cached(r.Context(), q.id, cat, &u)
		out = u
	case store.CategoryProcess:
		var ps []hostmetrics.Process
		at, err = m.svc.Cached(r.Context(), q.id, cat, &ps)
		out = hostmetrics.TopProcesses(orEmptySlice(ps), q.top)
	case store.CategoryConns:
		var cs []hostmetrics.Connection
		at, err = m.svc.Cached(r.Context(), q.id, cat, &cs)
		out = hostmetrics.FilterConnections(orEmptySlice(cs), q.kinds)
	default:
		var ts []hostmetrics.Temperature
		at, err = m.svc.Cached(r.Context(), q.id, cat, &ts)
		out = orEmptySlice(ts)
	}
	if err != nil {
		return m.s.callError(r.Context(), 0, err)
	}
	setCollected(w, at)
	japi.OK(w, r, out)
	return nil
}

// getStatus asks the agent for its jobs (34 → 35); with ?cached=1 it
// answers from the last type-37 report instead (the agent may be offline).
func (m *metricsRoutes) getStatus(w http.ResponseWriter, r *http.Request) error {
	q, err := m.params(r, false, false)
	if err != nil {
		return err
	}
	return serveMetric(m, w, r, q, func(context.Context) (*hostmetrics.Status, time.Time, error) {
		js, ok := m.svc.Jobs(q.id)
		if !ok || js.Reported == nil {
			return nil, time.Time{}, errNoMetrics
		}
		st := &hostmetrics.Status{Jobs: make([]hostmetrics.StatusJob, 0, len(js.Reported.Jobs)), AllowConns: []string{}, JobStatus: js}
		for _, j := range js.Reported.Jobs {
			st.Jobs = append(st.Jobs, hostmetrics.StatusJob{Name: j.Name, Interval: int64(j.Interval)})
		}
		return st, js.Reported.Time, nil
	}, func(ctx context.Context) (*hostmetrics.Status, error) { return m.svc.Status(ctx, q.id) })
}

// askAgent checks that the agent is a metrics-agent and asks it through
// call, bounded by the request's timeout; failures are mapped to API errors.
func askAgent[T any](m *metricsRoutes, r *http.Request, q dynParams, call func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if err := m.s.agentType(q.id, hostmetrics.AgentType); err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), q.timeout)
	defer cancel()
	v, err := call(ctx)
	if err != nil {
		return zero, m.s.callError(ctx, q.timeout, err)
	}
	return v, nil
}

// JobsRequest is the body of PUT /api/metrics/{id}/status.
type JobsRequest struct {
	Jobs []string `json:"jobs"`
}

// putStatus sends the job list (type 36, no reply in v1) and answers with
// what was sent; GET .../status shows it as "requested", confirmed once a
// type-37 report lists exactly those jobs.
func (m *metricsRoutes) putStatus(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id") // not Params before DecodeJSON: it could read a form body
	var req JobsRequest
	if err := japi.DecodeJSON(r, &req, m.s.maxBody); err != nil {
		return err
	}
	if req.Jobs == nil {
		return japi.MissingParam("jobs")
	}
	jobs, err := hostmetrics.ParseJobs(req.Jobs)
	if err != nil {
		return japi.BadParam("jobs", fault.Message(err))
	}
	p := japi.Params(r)
	timeout := m.s.timeout(p)
	if err := p.Err(); err != nil {
		return err
	}
	SetAudit(r, id, JobsRequest{Jobs: jobs})
	if err := m.s.agentType(id, hostmetrics.AgentType); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	sent, err := m.svc.SetJobs(ctx, id, jobs)
	if err != nil {
		return m.s.callError(ctx, timeout, err)
	}
	japi.OK(w, r, sent)
	return nil
}

// FleetRequest is the body of PUT /api/metrics/status.
type FleetRequest struct {
	Start *bool  `json:"start"`
	OS    string `json:"os"`
}

// putFleet starts or stops collection on every connected metrics-agent
// (of one OS when os is set); `timeout` bounds each agent (default 10 s).
func (m *metricsRoutes) putFleet(w http.ResponseWriter, r *http.Request) error {
	var req FleetRequest
	if err := japi.DecodeJSON(r, &req, m.s.maxBody); err != nil {
		return err
	}
	if req.Start == nil {
		return japi.MissingParam("start")
	}
	if len(req.OS) > 64 {
		return japi.BadParam("os", "must be at most 64 characters")
	}
	p := japi.Params(r)
	timeout := p.Duration("timeout", defaultFleetTimeout, time.Second, time.Duration(m.s.o.Config.API.MaxTimeout))
	if err := p.Err(); err != nil {
		return err
	}
	SetAudit(r, "metrics-agents", req)
	// A token limited by a selector acts on the agents it reaches only.
	keep, err := m.s.reachable(r, func(string) bool { return true })
	if err != nil {
		return err
	}
	res := m.svc.SetFleet(r.Context(), *req.Start, req.OS, timeout, keep)
	japi.OK(w, r, res)
	return nil
}

func (m *metricsRoutes) hostsMetrics(w http.ResponseWriter, r *http.Request) error {
	if m.s.o.MetricsToken != "" {
		if err := m.s.auth.checkMetrics(r, m.s.o.MetricsToken); err != nil {
			return err
		}
	}
	m.hosts.ServeHTTP(w, r)
	return nil
}
