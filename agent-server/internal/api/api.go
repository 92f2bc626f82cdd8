// Package api is agent-server's HTTP API: the /api routes, /healthz,
// /readyz and /metrics, on the conventions of jkframe/api (envelope, HTTP
// status = code, typed parameters, request ids, recover, access log).
//
// Every /api route goes through, in order: request id, access log, recover,
// metrics (count and latency by route pattern), bearer-token auth, the
// route's scope (authz), the token's label selector when the route reaches
// an agent, the rate limit of expensive routes (those that reach an agent),
// the body limit, the handler, and an audit entry naming the token for
// state-changing calls and for every call that touches a host.
//
// Every route declares its authorization rule where it is registered:
// [Scope] (the scope a token needs), [Authenticated] (any valid token) or
// [Public] (no token). [Server.Handle] panics on a route without one, so a
// server with such a route does not start.
//
// Feature packages add their routes with [Server.Handle]; [Server.Routes]
// lists every pattern, which the OpenAPI golden test compares with the
// document, and [Server.Rules] the rule of each, which the authorization
// test walks.
//
// A handler's error becomes the response in one place, mapError: an
// *japi.Error as it is, a classified service error (*fault.Error) with the
// status of its kind and its message, the hub's and the services'
// sentinels as a table says. Agent errors map to statuses: not connected
// 404 "not found: agent", gone mid-request 410, no answer in time 504,
// wrong agent type 424, an agent's failure reply the status of its kind
// (protocol.ErrKind: 400, 403, 404, 409, 422) or, without one, 503 —
// always with the agent's message. Error messages are cut at 1 KiB.
package api

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/authz"
	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/console"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/metrics"
	"github.com/agentfleet/agent-server/internal/openapi"
	"github.com/agentfleet/agent-server/internal/store"
)

// Hub is what the API needs from the hub: the live sessions and requests
// to agents. *hub.Hub is one; declared here, where it is used, so the API
// depends on no more of the hub than this.
type Hub interface {
	// Session returns the live session of an agent.
	Session(id string) (*hub.Session, bool)
	// Sessions returns a snapshot of every live session.
	Sessions() []hub.SessionInfo
	// Count returns the number of live sessions.
	Count() int
	// Call sends m to the agent and returns its one reply. Errors wrap
	// hub.ErrAgentNotFound, hub.ErrAgentGone, *hub.AgentError or the
	// context's error.
	Call(ctx context.Context, id string, m *protocol.Msg) (*protocol.Msg, error)
	// Stream sends m to the agent and returns its replies as they come.
	Stream(ctx context.Context, id string, m *protocol.Msg) (*hub.Stream, error)
}

// Store is the part of the store the API reads and writes directly:
// agents, tasks, audit, API tokens and the database's health. Task runs,
// execs and metrics go through their services.
type Store interface {
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter) ([]store.Agent, int, error)
	SetAgentLabels(ctx context.Context, id string, labels map[string]string) error
	GetTask(ctx context.Context, id string) (store.Task, error)
	ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, int, error)
	AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, int, error)
	ScanAudit(ctx context.Context, f store.AuditFilter, afterID int64, limit int) ([]store.AuditEntry, error)
	CreateAPIToken(ctx context.Context, t store.APIToken) (store.APIToken, error)
	GetAPIToken(ctx context.Context, name string) (store.APIToken, error)
	APITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error)
	ListAPITokens(ctx context.Context, p store.Paging) ([]store.APIToken, int, error)
	RevokeAPIToken(ctx context.Context, name string, at time.Time, by string) (store.APIToken, error)
	Ping(ctx context.Context) error
}

// Options configure New.
type Options struct {
	Config   *config.Config
	Store    Store
	Hub      Hub
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Gatherer serves /metrics (usually the same registry).
	Gatherer prometheus.Gatherer
	// Tokens are the configured API tokens with their scopes
	// (config.APITokens). Operator and ReadOnly are tokens of the two
	// roles of earlier versions: admin, and authz.ReadOnlyScopes.
	Tokens             []config.Token
	Operator, ReadOnly []config.Token
	// MetricsToken guards /metrics.
	MetricsToken string
	// Version is reported by /api/info/server.
	Version string
	// Blocking reports whether disk-hungry calls are refused now (cache
	// dir over cache_threshold); nil means never.
	Blocking func() bool
	// Now is the clock of audit entries and token expiry; time.Now when nil.
	Now func() time.Time
	// Cluster is the cluster this server is a member of; nil for a single
	// server.
	Cluster Cluster
	// Drain makes this cluster member drain (POST /api/cluster/drain);
	// nil for a single server.
	Drain func(ctx context.Context, period time.Duration) (DrainStatus, error)
	// ForwardTLS verifies the other members' certificates when a call is
	// forwarded to one served over https (cluster.tls_ca); nil: the system
	// roots.
	ForwardTLS *tls.Config
}

// Server holds the routes. Create it with New, add feature routes with
// Handle, then serve Handler.
type Server struct {
	o       Options
	log     *slog.Logger
	mux     *http.ServeMux
	auth    *auth
	limiter *rate.Limiter
	m       *metrics.API
	maxBody int64
	doc     *openapi.Doc
	site    *console.Site
	started time.Time

	fwd    *httputil.ReverseProxy // calls for agents held by other members; nil outside a cluster
	fwdLog *rate.Limiter          // bounds the log lines of failed forwards
	// agentOwners and taskOwners find the member a call is forwarded to.
	agentOwners, taskOwners *owners

	mu     sync.Mutex
	routes []string
	rules  map[string]Rule
}

// Rule is the authorization rule of a route, as registered.
type Rule struct {
	// Public: no token needed. Authenticated: any valid token. Otherwise
	// Scope is the scope needed.
	Public        bool
	Authenticated bool
	Scope         authz.Scope
	// AgentParam is the path parameter naming the agent reached ("" when
	// none): limited tokens are checked against it.
	AgentParam string
	// Audited: every call that passed authentication is in the audit log.
	Audited bool
	// Forwarded: in a cluster, a call for an agent another member holds is
	// relayed to that member (routes with AgentParam, unless Local).
	Forwarded bool
	// ForwardedToTaskOwner: in a cluster, a call for the task {id} that
	// another live member owns is relayed to that member (TaskOwner).
	ForwardedToTaskOwner bool
}

// HandlerFunc is a route handler: it writes the response itself and returns
// nil, or returns an error that is written as the failure envelope
// (*japi.Error for its code; hub errors are mapped, see the package doc).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// RouteOption tunes one route.
type RouteOption func(*route)

type route struct {
	public        bool // no token
	authenticated bool // any valid token
	scope         authz.Scope
	agentParam    string // path parameter naming the agent reached
	agentParamSet bool
	audit         bool
	expensive     bool
	diskHungry    bool
	maxBody       int64
	noAudit       bool
	// interactive: a WebSocket route acting on a host (the shell).
	interactive bool
	// local: served from the shared store by any member, never forwarded
	// to the member holding the agent.
	local bool
	// taskOwner: forwarded to the member owning the task {id}.
	taskOwner bool
}

// Public skips authentication (health checks, one-shot transfer URLs,
// routes that check a token of their own).
func Public() RouteOption { return func(r *route) { r.public = true } }

// Scope makes the route need scope s (a name from authz, e.g.
// api.Scope("exec:run")); admin tokens hold every scope.
func Scope(s authz.Scope) RouteOption { return func(r *route) { r.scope = s } }

// Authenticated lets any valid token call the route, whatever its scopes
// (whoami, server info, the OpenAPI document).
func Authenticated() RouteOption { return func(r *route) { r.authenticated = true } }

// AgentParam names the path parameter that holds the agent the route
// reaches ("" for none). The default is "id" when the pattern has {id}:
// a token limited by a selector gets 404 "not found: agent" for an agent
// outside it, and the audit entry names the agent.
func AgentParam(name string) RouteOption {
	return func(r *route) { r.agentParam, r.agentParamSet = name, true }
}

// Audit puts every call of a GET route in the audit log: routes that return
// what a host holds (command output, pulled files). Expensive routes (they
// reach an agent) and state-changing ones are audited anyway.
func Audit() RouteOption { return func(r *route) { r.audit = true } }

// Expensive puts the route under the API rate limit (api.rate_limit).
func Expensive() RouteOption { return func(r *route) { r.expensive = true } }

// DiskHungry refuses the route with 507 while the cache dir's disk usage is
// over cache_threshold (uploads, downloads spooled to disk).
func DiskHungry() RouteOption { return func(r *route) { r.diskHungry = true } }

// MaxBody sets the route's body limit (default api.max_body).
func MaxBody(n int64) RouteOption { return func(r *route) { r.maxBody = n } }

// NoAudit leaves a state-changing route out of the audit log.
func NoAudit() RouteOption { return func(r *route) { r.noAudit = true } }

// Interactive marks a WebSocket route that acts on a host (the shell): the
// token may also come as a "bearer.<token>" entry of Sec-WebSocket-Protocol
// (browsers cannot set headers on a WebSocket), and the handler writes its
// own audit entries (it lasts a session: one when it opens, one when it
// ends) with Server.audit; a call that ends before the handler wrote one
// is audited as any other.
func Interactive() RouteOption { return func(r *route) { r.interactive = true } }

// Local serves a route that names an agent on the member it reaches,
// from the shared store, instead of forwarding it to the member holding
// the agent's session (a task's stored output).
func Local() RouteOption { return func(r *route) { r.local = true } }

// TaskOwner forwards, in a cluster, a call for the task {id} to the live
// member that owns it (runs it), for the routes whose answer depends on
// the run's state in that member's memory (its events, its cancel). A task
// nobody live owns is served here.
func TaskOwner() RouteOption { return func(r *route) { r.taskOwner = true } }

// New builds the server with the routes of the core API.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Blocking == nil {
		o.Blocking = func() bool { return false }
	}
	m, err := metrics.NewAPI(o.Registry)
	if err != nil {
		return nil, err
	}
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	site, err := console.New()
	if err != nil {
		return nil, err
	}
	lim := rate.NewLimiter(rate.Inf, 1)
	if o.Config.API.RateLimit > 0 {
		burst := int(o.Config.API.RateBurst)
		if burst == 0 {
			burst = int(max(1, 2*o.Config.API.RateLimit))
		}
		lim = rate.NewLimiter(rate.Limit(o.Config.API.RateLimit), burst)
	}
	tokens := slices.Clone(o.Tokens)
	for _, t := range o.Operator {
		t.Scopes = []authz.Scope{authz.Admin}
		tokens = append(tokens, t)
	}
	for _, t := range o.ReadOnly {
		t.Scopes = authz.ReadOnlyScopes
		tokens = append(tokens, t)
	}
	au, err := newAuth(tokens, o.Store, o.Now)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	s := &Server{
		o:       o,
		log:     o.Logger,
		mux:     http.NewServeMux(),
		auth:    au,
		rules:   map[string]Rule{},
		limiter: lim,
		m:       m,
		maxBody: int64(o.Config.API.MaxBody),
		doc:     doc,
		site:    site,
		started: o.Now().UTC(),
	}
	if o.Cluster != nil {
		s.fwd, s.fwdLog = s.newForwarder(), rate.NewLimiter(1, 5)
		s.agentOwners, s.taskOwners = agentOwners(o.Cluster), taskOwners(o.Cluster)
	}
	s.routesCore()
	s.mux.Handle("/", m.Wrap("unmatched", japi.HandlerFunc(s.unmatched)))
	return s, nil
}

// Handler returns the whole HTTP handler (middleware included). /ws/agent is
// not part of it: internal/server mounts the hub beside it.
func (s *Server) Handler() http.Handler {
	return japi.RequestID(japi.AccessLog(s.log)(japi.Recover(s.log)(s.mux)))
}

// Routes returns the registered patterns ("GET /api/agents/{id}"), sorted.
func (s *Server) Routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.routes)
	slices.Sort(out)
	return out
}

// Handle registers h for pattern ("METHOD /path/{param}"). It panics when
// the route has no authorization rule (Scope, Authenticated or Public) or
// names an unknown scope: a server with such a route must not start.
func (s *Server) Handle(pattern string, h HandlerFunc, opts ...RouteOption) {
	rt := route{maxBody: s.maxBody}
	for _, o := range opts {
		o(&rt)
	}
	method, path, _ := strings.Cut(pattern, " ")
	mutating := method != http.MethodGet && method != http.MethodHead
	if !rt.agentParamSet && strings.Contains(path, "{id}") {
		rt.agentParam = "id"
	}
	rule := Rule{Public: rt.public, Authenticated: rt.authenticated, Scope: rt.scope, AgentParam: rt.agentParam,
		Audited: (mutating && !rt.noAudit) || rt.expensive || rt.audit}
	forwarded := s.fwd != nil && rt.agentParam != "" && !rt.local
	rule.Forwarded = forwarded
	toTaskOwner := s.fwd != nil && rt.taskOwner
	rule.ForwardedToTaskOwner = toTaskOwner
	if err := rule.check(); err != nil {
		panic(fmt.Sprintf("api: route %q: %v", pattern, err))
	}
	if rt.taskOwner && !strings.Contains(path, "{id}") {
		panic(fmt.Sprintf("api: route %q: api.TaskOwner without a task {id}", pattern))
	}
	inner := japi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		st := stateOf(r)
		err := s.serve(w, r, st, &rt, h)
		st.err = err
		return err
	})
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A call for an agent held by another member is that member's to
		// authorize, serve and audit.
		if forwarded && s.forward(w, r, rt.agentParam) {
			return
		}
		// A call for a task another member runs is that member's.
		if toTaskOwner && s.forwardTask(w, r) {
			return
		}
		st := &reqState{}
		if rule.Audited {
			st.audit = &auditInfo{target: r.PathValue("id")}
			if st.audit.target == "" {
				st.audit.target = r.PathValue("name")
			}
			if rt.agentParam != "" {
				st.audit.agent = r.PathValue(rt.agentParam)
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		sw := &statusWriter{ResponseWriter: w}
		if st.audit != nil {
			defer func() {
				if p := recover(); p != nil {
					s.finishAudit(r, pattern, rule.Public, st, sw, p)
					panic(p)
				}
				// Before the response ends: a client's next request sees
				// the entry of this one.
				s.finishAudit(r, pattern, rule.Public, st, sw, nil)
			}()
		}
		inner.ServeHTTP(sw, r)
	})
	s.mux.Handle(pattern, s.m.Wrap(pattern, outer))
	s.mu.Lock()
	s.routes = append(s.routes, pattern)
	s.rules[pattern] = rule
	s.mu.Unlock()
}

func (r Rule) check() error {
	n := 0
	for _, set := range []bool{r.Public, r.Authenticated, r.Scope != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("no authorization rule: give it api.Scope(...), api.Authenticated() or api.Public()")
	case n > 1:
		return fmt.Errorf("more than one of api.Scope, api.Authenticated and api.Public")
	}
	if r.Scope != "" {
		if _, ok := authz.Lookup(r.Scope); !ok {
			return fmt.Errorf("unknown scope %q", r.Scope)
		}
	}
	return nil
}

// serve authenticates and authorizes r, applies the route's limits and
// runs h.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, st *reqState, rt *route, h HandlerFunc) error {
	if !rt.public {
		ar := r
		if rt.interactive {
			var err error
			if ar, err = withProtocolToken(r); err != nil {
				return err
			}
		}
		id, err := s.auth.authenticate(ar)
		if err != nil {
			return err
		}
		st.id, st.authed = id, true
		if rt.scope != "" && !id.Has(rt.scope) {
			return forbidden(rt.scope)
		}
		if rt.agentParam != "" && id.Limited() {
			if err := s.reaches(r.Context(), id, r.PathValue(rt.agentParam)); err != nil {
				return err
			}
		}
	}
	if rt.expensive {
		if !s.limiter.Allow() {
			w.Header().Set("Retry-After", "1")
			return &japi.Error{Code: http.StatusTooManyRequests, Msg: "rate limited: too many requests to agents, retry later"}
		}
	}
	if rt.diskHungry && s.o.Blocking() {
		return errDiskFull
	}
	if rt.maxBody > 0 && r.Body != nil {
		if r.ContentLength > rt.maxBody {
			return &japi.Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large (limit " + strconv.FormatInt(rt.maxBody, 10) + " bytes)"}
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
	}
	return clipError(mapError(h(w, r)))
}

// Rules returns the authorization rule of every route registered with
// Handle, by pattern.
func (s *Server) Rules() map[string]Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.rules)
}

// HandleRaw registers h for pattern as it is: no envelope, no token check
// (h does its own), but counted in the metrics and listed in Routes. For
// /ws/agent.
func (s *Server) HandleRaw(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.m.Wrap(pattern, h))
	s.mu.Lock()
	s.routes = append(s.routes, pattern)
	s.mu.Unlock()
}

// Doc returns the OpenAPI document.
func (s *Server) Doc() *openapi.Doc { return s.doc }

// unmatched answers paths no route has: 405 when the path exists for other
// methods, 404 otherwise, in the envelope (ServeMux's own answers are text).
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) error {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "/" && p != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return &japi.Error{Code: http.StatusMethodNotAllowed, Msg: "method not allowed: " + r.Method + " (allowed: " + strings.Join(allowed, ", ") + ")"}
	}
	return japi.NotFound("route")
}

// timeout reads the `timeout` parameter (seconds) with the configured
// default and maximum.
func (s *Server) timeout(p *japi.ParamReader) time.Duration {
	return p.Duration("timeout", time.Duration(s.o.Config.API.Timeout), time.Second, time.Duration(s.o.Config.API.MaxTimeout))
}

// agentType checks that agent id is online and of type want.
func (s *Server) agentType(id string, want string) error {
	sess, ok := s.o.Hub.Session(id)
	if !ok {
		return japi.NotFound("agent")
	}
	if typ := sess.Come().Name; typ != want {
		return japi.Errorf(http.StatusFailedDependency, "invalid agent type want [%s] got [%s]", want, typ)
	}
	return nil
}

// okPage answers with one page of a list and, in X-Total-Count, the
// number of items of all pages.
func okPage(w http.ResponseWriter, r *http.Request, page any, total int) error {
	w.Header().Set("X-Total-Count", itoa(total))
	japi.OK(w, r, page)
	return nil
}

// timeoutErr is the 504 of a request to an agent that ran out of time d.
func timeoutErr(d time.Duration, err error) error {
	return &japi.Error{Code: http.StatusGatewayTimeout, Msg: fmt.Sprintf("timeout: the agent did not answer within %s", d), Err: err}
}
