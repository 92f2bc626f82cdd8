package api

import (
	"context"
	"errors"
	"net/http"
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

// routesCore registers the server's own routes and the core features'
// (agents, audit, tokens); the other features register theirs with their
// services (RoutesExec, RoutesTasks, …).
func (s *Server) routesCore() {
	s.Handle("GET /healthz", s.healthz, Public())
	s.Handle("GET /readyz", s.readyz, Public())
	s.Handle("GET /metrics", s.metrics, Public()) // its own token rule: api.metrics_token
	s.Handle("GET /api/info/server", s.infoServer, Authenticated())
	s.Handle("GET /api/whoami", s.whoami, Authenticated())
	s.Handle("GET /api/cluster", s.clusterInfo, Authenticated())
	s.Handle("POST /api/cluster/drain", s.clusterDrain, Scope(authz.ClusterWrite))
	s.Handle("GET /api/foo/{id}", s.foo, Scope(authz.ExecRun), Expensive())
	s.Handle("GET /api/openapi.json", raw(s.doc.ServeJSON), Authenticated())
	s.Handle("GET /api/openapi.yaml", raw(s.doc.ServeYAML), Authenticated())
	s.Handle("GET /docs/", raw(s.site.Docs), Public())
	s.Handle("GET /ui/", raw(s.site.UI), Public())
	s.Handle("GET /{$}", raw(console.Root), Public())
	s.routesAgents()
	s.routesAudit()
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
	if c := s.o.Cluster; c != nil {
		if err := c.Ready(); err != nil {
			return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "not ready: " + err.Error(), Err: err}
		}
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
	// Cluster and Member: the cluster's name and this server's member id,
	// for a member of a cluster.
	Cluster string `json:"cluster,omitempty"`
	Member  string `json:"member,omitempty"`
}

func (s *Server) infoServer(w http.ResponseWriter, r *http.Request) error {
	n := s.o.Hub.Count() // O(1); Sessions copies every session
	if id, _ := IdentityFrom(r.Context()); id.Limited() {
		// Only the connected agents the token reaches.
		keep, err := s.reachable(r, func(string) bool { return true })
		if err != nil {
			return err
		}
		n = 0
		for _, ss := range s.o.Hub.Sessions() {
			if keep(ss.ID) {
				n++
			}
		}
	}
	info := ServerInfo{
		ID:         s.o.Config.ID,
		Version:    s.o.Version,
		Agents:     n,
		IsBlocking: s.o.Blocking(),
	}
	if c := s.o.Cluster; c != nil {
		info.Cluster, info.Member = c.Name(), c.ID()
	}
	japi.OK(w, r, info)
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

// FooReply is the payload of GET /api/foo/{id}.
type FooReply struct {
	Reply string  `json:"reply"` // "bar"
	MS    float64 `json:"ms"`    // round trip
}

func (s *Server) foo(w http.ResponseWriter, r *http.Request) error {
	p := japi.Params(r)
	id := p.Path("id")
	c, err := s.startCall(r, p, id, ExampleAgent)
	if err != nil {
		return err
	}
	defer c.cancel()
	start := time.Now()
	rep, err := s.o.Hub.Call(c.ctx, id, &protocol.Msg{Type: protocol.TypeFoo})
	if err != nil {
		return c.fail(err)
	}
	if rep.Type != protocol.TypeBar {
		return &japi.Error{Code: http.StatusServiceUnavailable, Msg: "unexpected reply type " + itoa(int(rep.Type)) + " to foo"}
	}
	japi.OK(w, r, FooReply{Reply: "bar", MS: float64(time.Since(start).Microseconds()) / 1000})
	return nil
}

// agentCall is a request to one agent on behalf of an API request: its
// context, bounded by the ?timeout the caller asked for.
type agentCall struct {
	s       *Server
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
}

// startCall is how a handler that asks agent id starts, once it has read
// its own parameters from p: it reads ?timeout, answers the first bad
// parameter, checks that the agent is online and of type want ("": any
// type, the hub answers for an unknown agent) and bounds the request's
// context by the timeout. The caller defers c.cancel.
func (s *Server) startCall(r *http.Request, p *japi.ParamReader, id, want string) (*agentCall, error) {
	timeout := s.timeout(p)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if want != "" {
		if err := s.agentType(id, want); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return &agentCall{s: s, ctx: ctx, cancel: cancel, timeout: timeout}, nil
}

// fail is callError for the call.
func (c *agentCall) fail(err error) error { return c.s.callError(c.ctx, c.timeout, err) }

// callError maps the error of a request to an agent, naming the timeout
// when ctx's deadline passed.
func (s *Server) callError(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return timeoutErr(timeout, err)
	}
	return mapError(err)
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
