// Package api is agent-server's HTTP API: the /api routes, /healthz,
// /readyz and /metrics, on the conventions of jkframe/api (envelope, HTTP
// status = code, typed parameters, request ids, recover, access log).
//
// Every /api route goes through, in order: request id, access log, recover,
// metrics (count and latency by route pattern), bearer-token auth (operator
// tokens may call everything, read-only tokens only GET), the rate limit of
// expensive routes (those that reach an agent), the body limit, the handler,
// and for state-changing methods an audit entry naming the token.
//
// Feature packages add their routes with [Server.Handle]; [Server.Routes]
// lists every pattern, which the OpenAPI golden test compares with the
// document.
//
// Agent errors map to statuses: not connected 404 "not found: agent", gone
// mid-request 410, no answer in time 504, wrong agent type 424, an agent's
// failure reply the status of its kind (protocol.ErrKind: 400, 403, 404,
// 409, 422) or, without one, 503 — always with the agent's message. Error
// messages are cut at 1 KiB.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/console"
	"github.com/agentfleet/agent-server/internal/metrics"
	"github.com/agentfleet/agent-server/internal/openapi"
	"github.com/agentfleet/agent-server/internal/store"
)

// Fleet is what the API needs from the hub: the live sessions and requests
// to agents. internal/server adapts *hub.Hub to it.
type Fleet interface {
	// Session returns the live session of an agent.
	Session(id string) (Session, bool)
	// Sessions returns every live session.
	Sessions() []Session
	// Call sends m to the agent and returns its one reply. Errors wrap
	// hub.ErrAgentNotFound, hub.ErrAgentGone, *hub.AgentError or the
	// context's error.
	Call(ctx context.Context, id string, m *protocol.Msg) (*protocol.Msg, error)
	// Stream sends m to the agent and returns its replies as they come.
	Stream(ctx context.Context, id string, m *protocol.Msg) (Replies, error)
}

// Session describes a live agent connection.
type Session struct {
	ID          string
	Type        string // come.name
	Version     string
	ConnectedAt time.Time
	LastSeen    time.Time // last traffic from the agent (pings included)
	Busy        bool      // requests to it are pending
}

// Replies is a stream of replies to one request. Recv returns the next
// reply, or an error (the hub's, or ctx's); Close ends the request.
type Replies interface {
	Recv(ctx context.Context) (*protocol.Msg, error)
	Close()
}

// Options configure New.
type Options struct {
	Config   *config.Config
	Store    store.Store
	Fleet    Fleet
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Gatherer serves /metrics (usually the same registry).
	Gatherer prometheus.Gatherer
	// Operator and ReadOnly are the API tokens; MetricsToken guards /metrics.
	Operator, ReadOnly []config.Token
	MetricsToken       string
	// Version is reported by /api/info/server.
	Version string
	// Blocking reports whether disk-hungry calls are refused now (cache
	// dir over cache_threshold); nil means never.
	Blocking func() bool
	// Now is the clock of audit entries; time.Now when nil.
	Now func() time.Time
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

	mu     sync.Mutex
	routes []string
}

// HandlerFunc is a route handler: it writes the response itself and returns
// nil, or returns an error that is written as the failure envelope
// (*japi.Error for its code; hub errors are mapped, see the package doc).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// RouteOption tunes one route.
type RouteOption func(*route)

type route struct {
	public     bool // no token
	expensive  bool
	diskHungry bool
	maxBody    int64
	noAudit    bool
	// interactive: a WebSocket route acting on a host (the shell).
	interactive bool
}

// Public skips authentication (health checks).
func Public() RouteOption { return func(r *route) { r.public = true } }

// Expensive puts the route under the API rate limit (api.rate_limit).
func Expensive() RouteOption { return func(r *route) { r.expensive = true } }

// DiskHungry refuses the route with 507 while the cache dir's disk usage is
// over cache_threshold (uploads, downloads spooled to disk).
func DiskHungry() RouteOption { return func(r *route) { r.diskHungry = true } }

// MaxBody sets the route's body limit (default api.max_body).
func MaxBody(n int64) RouteOption { return func(r *route) { r.maxBody = n } }

// NoAudit leaves a state-changing route out of the audit log.
func NoAudit() RouteOption { return func(r *route) { r.noAudit = true } }

// Interactive marks a WebSocket route that acts on a host (the shell): it
// needs an operator token although it is a GET, the token may also come as
// a "bearer.<token>" entry of Sec-WebSocket-Protocol (browsers cannot set
// headers on a WebSocket), and the handler writes its own audit entries
// (it lasts a session: one when it opens, one when it ends), finding the
// caller with tokenOf.
//
// TODO(lead): once api.Scope lands, the shell route takes
// api.Scope("exec:run") instead of requiring a non-read-only token here.
func Interactive() RouteOption { return func(r *route) { r.interactive = true } }

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
	s := &Server{
		o:       o,
		log:     o.Logger,
		mux:     http.NewServeMux(),
		auth:    newAuth(o.Operator, o.ReadOnly),
		limiter: lim,
		m:       m,
		maxBody: int64(o.Config.API.MaxBody),
		doc:     doc,
		site:    site,
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

// Handle registers h for pattern ("METHOD /path/{param}").
func (s *Server) Handle(pattern string, h HandlerFunc, opts ...RouteOption) {
	rt := route{maxBody: s.maxBody}
	for _, o := range opts {
		o(&rt)
	}
	method, _, _ := strings.Cut(pattern, " ")
	mutating := method != http.MethodGet && method != http.MethodHead
	handler := japi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var tok tokenInfo
		if !rt.public {
			ar := r
			if rt.interactive {
				var err error
				if ar, err = withProtocolToken(r); err != nil {
					return err
				}
			}
			var err error
			if tok, err = s.auth.check(ar, mutating || rt.interactive); err != nil {
				if rt.interactive && err == errReadOnly {
					return errReadOnlyShell
				}
				return err
			}
			if rt.interactive {
				r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok))
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
		var au *auditInfo
		if mutating && !rt.noAudit {
			au = &auditInfo{target: r.PathValue("id")}
			r = r.WithContext(context.WithValue(r.Context(), auditKey{}, au))
		}
		err := clipError(mapError(h(w, r)))
		if au != nil {
			s.audit(r, tok, pattern, au, err)
		}
		return err
	})
	s.mux.Handle(pattern, s.m.Wrap(pattern, handler))
	s.mu.Lock()
	s.routes = append(s.routes, pattern)
	s.mu.Unlock()
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
	sess, ok := s.o.Fleet.Session(id)
	if !ok {
		return japi.NotFound("agent")
	}
	if sess.Type != want {
		return japi.Errorf(http.StatusFailedDependency, "invalid agent type want [%s] got [%s]", want, sess.Type)
	}
	return nil
}

// timeoutErr is the 504 of a request to an agent that ran out of time d.
func timeoutErr(d time.Duration, err error) error {
	return &japi.Error{Code: http.StatusGatewayTimeout, Msg: fmt.Sprintf("timeout: the agent did not answer within %s", d), Err: err}
}
