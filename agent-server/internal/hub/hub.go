package hub

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/agentfleet/libagent/protocol"
)

// Sentinel errors, for errors.Is.
var (
	// ErrAgentNotFound: no session with that agent id (HTTP 404).
	ErrAgentNotFound = errors.New("agent not connected")
	// ErrAgentGone: the agent's connection ended while the request was
	// pending or being sent (HTTP 410).
	ErrAgentGone = errors.New("agent went away")
	// ErrQueueFull: the agent's send queue stayed full past WriteTimeout;
	// the agent was disconnected as too slow.
	ErrQueueFull = errors.New("agent send queue full")
	// ErrStreamOverflow: a Stream's consumer fell StreamBuffer replies
	// behind; the stream was ended (its later replies are dropped).
	ErrStreamOverflow = errors.New("stream consumer too slow")
	// ErrDuplicateTID: a request with this tid is already pending.
	ErrDuplicateTID = errors.New("tid already pending")
	// ErrHeldElsewhere: Options.Claim found the agent's session held by
	// another live server of the cluster.
	ErrHeldElsewhere = errors.New("agent session held by another server")
	// ErrClosed: the hub is shutting down.
	ErrClosed = errors.New("hub closed")
)

// AgentError is a failure reply from an agent: type 0, or a reply whose
// ok is false. Kind says whether the request could not be carried out (the
// API answers 4xx) or the agent failed ("": 503). Make one with
// Session.AgentError.
type AgentError struct {
	AgentID string
	TID     string
	Msg     string // errmsg / msg as sent by the agent
	// Kind is the agent's classification (protocol.CapErrKind), or for an
	// agent without that extension what its message shows (LegacyKind).
	Kind protocol.ErrKind
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("agent %s: %s", e.AgentID, e.Msg)
}

// Hub accepts agent connections and routes messages. All methods are safe
// for concurrent use. Register handlers before serving.
type Hub struct {
	opts     Options
	log      *slog.Logger
	m        *metrics
	upgrader websocket.Upgrader
	limiter  *rate.Limiter
	caps     []string // capabilities announced in every handshake
	logLimit *rate.Limiter

	mu       sync.RWMutex
	sessions map[string]*Session
	pending  map[*Session]struct{} // upgraded, no handshake yet
	closing  bool
	wg       sync.WaitGroup // readers, writers, ack timers

	hmu            sync.RWMutex
	handlers       map[protocol.Type]func(*Session, *protocol.Msg)
	journalHandler func(*Session, *protocol.Msg) error
	journalTypes   map[protocol.Type]func(*Session, *protocol.Msg) error

	tidSeq atomic.Uint32
}

// New returns a Hub. It fails only when its metrics cannot be registered.
func New(opts Options) (*Hub, error) {
	opts.setDefaults()
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("hub metrics: %w", err)
	}
	limit := rate.Limit(opts.ConnectLimit)
	if opts.ConnectLimit <= 0 {
		limit = rate.Inf
	}
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		m:        m,
		limiter:  rate.NewLimiter(limit, opts.ConnectBurst),
		logLimit: rate.NewLimiter(1, 5),
		sessions: make(map[string]*Session),
		pending:  make(map[*Session]struct{}),
		handlers: make(map[protocol.Type]func(*Session, *protocol.Msg)),
	}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  opts.ReadBufferSize,
		WriteBufferSize: opts.WriteBufferSize,
		WriteBufferPool: &sync.Pool{},
		// Agents are not browsers; they authenticate with the bearer token.
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: false,
	}
	if opts.Secrets != nil {
		h.caps = append(h.caps, protocol.CapAuth)
	}
	if opts.Acks != nil {
		h.caps = append(h.caps, protocol.CapAck)
	}
	h.caps = append(h.caps, protocol.CapErrKind) // AgentError handles it
	for _, c := range opts.ExtraCaps {
		if !slices.Contains(h.caps, c) {
			h.caps = append(h.caps, c)
		}
	}
	return h, nil
}

// Handle registers fn for messages of type t that are not replies to a
// pending request (pushes, late replies). fn runs on the connection's reader
// goroutine: it must return quickly and not call Call/Stream on the same
// session and wait. A panic in fn is logged and the message dropped.
func (h *Hub) Handle(t protocol.Type, fn func(s *Session, m *protocol.Msg)) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.handlers[t] = fn
}

// HandleJournal registers fn for journaled messages (ack.v1: execd,
// exec_data, exec_done with a seq) that have no waiting Stream, typically
// replayed after a reconnect. A nil error means the message is durably
// stored and may be acked; an error closes the connection so that the agent
// replays it later. After a server crash fn may see a message again: store
// idempotently by (agent, Session.Journal(), seq).
func (h *Hub) HandleJournal(fn func(s *Session, m *protocol.Msg) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	h.journalHandler = fn
}

// HandleJournalType registers fn for journaled messages of type t instead
// of the HandleJournal handler: a service whose agent messages are
// journaled (install.v1) stores its own, with the same contract.
func (h *Hub) HandleJournalType(t protocol.Type, fn func(s *Session, m *protocol.Msg) error) {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	if h.journalTypes == nil {
		h.journalTypes = make(map[protocol.Type]func(*Session, *protocol.Msg) error)
	}
	h.journalTypes[t] = fn
}

func (h *Hub) handler(t protocol.Type) func(*Session, *protocol.Msg) {
	h.hmu.RLock()
	defer h.hmu.RUnlock()
	return h.handlers[t]
}

// Session returns the live session of an agent.
func (h *Hub) Session(agentID string) (*Session, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.sessions[agentID]
	return s, ok
}

// Count returns the number of live sessions.
func (h *Hub) Count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

// Sessions returns a snapshot of every live session, in no particular order.
func (h *Hub) Sessions() []SessionInfo {
	h.mu.RLock()
	list := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		list = append(list, s)
	}
	h.mu.RUnlock()
	out := make([]SessionInfo, len(list))
	for i, s := range list {
		out[i] = s.Info()
	}
	return out
}

// ServeHTTP upgrades /ws/agent requests. Refusals before the upgrade: 401
// (token), 429 with Retry-After (admission limit), 503 (shutting down, or
// refused by Options.Admit, with Retry-After).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if reason := h.checkToken(r); reason != "" {
		h.m.handshakes.WithLabelValues("rejected", reason).Inc()
		msg := "invalid agent token"
		if reason == reasonNoToken {
			msg = "agent token required (Authorization: Bearer <token>)"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="agent"`)
		http.Error(w, msg, http.StatusUnauthorized)
		return
	}
	if !h.limiter.Allow() {
		h.m.handshakes.WithLabelValues("rejected", reasonRateLimited).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(h.retryAfter()))
		http.Error(w, "too many agent connections, retry later", http.StatusTooManyRequests)
		return
	}
	if h.opts.Admit != nil {
		if err := h.opts.Admit(); err != nil {
			h.m.handshakes.WithLabelValues("rejected", reasonNotAdmitted).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(h.retryAfter()))
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		h.m.handshakes.WithLabelValues("rejected", reasonShutdown).Inc()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()

	hj := &hijacker{ResponseWriter: w}
	conn, err := h.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		h.wg.Done()
		// Upgrade has answered the request already.
		h.m.handshakes.WithLabelValues("rejected", reasonUpgrade).Inc()
		return
	}
	s := &Session{hub: h, conn: conn, fc: hj.fc}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		conn.Close()
		h.wg.Done()
		h.m.handshakes.WithLabelValues("rejected", reasonShutdown).Inc()
		return
	}
	h.pending[s] = struct{}{}
	h.mu.Unlock()
	// The handshake runs here, on the handler's already large stack; the
	// reader then starts on a fresh, small one.
	s.start()
}

// checkToken returns "" when the upgrade request may proceed, else the
// rejection reason.
func (h *Hub) checkToken(r *http.Request) string {
	if len(h.opts.AgentTokens) == 0 {
		return ""
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if h.opts.AllowLegacy {
			return ""
		}
		return reasonNoToken
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return reasonBadToken
	}
	tok = strings.TrimSpace(tok)
	match := 0
	for _, t := range h.opts.AgentTokens {
		match |= subtle.ConstantTimeCompare([]byte(tok), []byte(t))
	}
	if match == 0 {
		return reasonBadToken
	}
	return ""
}

// retryAfter is the Retry-After hint in whole seconds.
func (h *Hub) retryAfter() int {
	lim := float64(h.limiter.Limit())
	if lim <= 0 || math.IsInf(lim, 1) {
		return 1
	}
	return max(1, int(math.Ceil(1/lim)))
}

// Shutdown tells every agent that the server is going away (close frame
// 1001), closes the connections, fails pending requests, and waits for all
// of the hub's goroutines. New upgrades get 503. It returns ctx's error if
// ctx ends first (the connections are closed by then; the goroutines finish
// shortly after).
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	list := make([]*Session, 0, len(h.sessions)+len(h.pending))
	for _, s := range h.sessions {
		list = append(list, s)
	}
	for s := range h.pending {
		list = append(list, s)
	}
	h.mu.Unlock()

	// Close frames go out in parallel, bounded: one stuck peer must not
	// hold up the others for its write deadline.
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, s := range list {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.goAway()
		}()
	}
	wg.Wait()

	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hub shutdown: %w", ctx.Err())
	}
}

// recoverLog turns a panic in a handler into a log line with the stack.
func (h *Hub) recoverLog(what string, s *Session) {
	if r := recover(); r != nil {
		h.log.Error("hub: panic in "+what, "agent", s.id, "panic", r, "stack", string(debug.Stack()))
	}
}

// logLimited logs at most a few lines per second (for per-message problems
// an agent could otherwise flood the log with).
func (h *Hub) logLimited(msg string, args ...any) {
	if h.logLimit.Allow() {
		h.log.Warn(msg, args...)
	}
}

// realNow is for network deadlines, which need the real clock.
func realNow() time.Time { return time.Now() }
