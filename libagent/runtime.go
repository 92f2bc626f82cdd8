package libagent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent/journal"
	"github.com/agentfleet/libagent/protocol"
	"github.com/agentfleet/libagent/selfstat"
	"github.com/agentfleet/libagent/selfupdate"
	"github.com/agentfleet/libagent/statefile"
)

// Defaults of Options.
const (
	DefaultKeepAlive        = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultQueue            = 64
	DefaultWorkers          = 64
)

// Runtime is the running agent: its connection to the server, its handlers
// and its self-report. Setup receives it to register handlers; handlers use
// it to push messages and to reach the logger, the state file and the
// transfer helpers.
//
// Handle must only be called from Setup. Every other method is safe for
// concurrent use.
type Runtime struct {
	agent *Agent
	basic *Basic
	opts  Options
	log   *slog.Logger

	handlers map[protocol.Type]handler
	pool     chan struct{} // worker slots

	facts    hostFacts
	labels   map[string]string
	tls      *tls.Config
	state    *statefile.State // nil: no persistence
	jr       *journal.Journal // nil: no journal (plain v1 results)
	jid      string           // the journal's id, sent in come.journal
	logs     logLister        // nil: no log files to list
	logClose func()
	sampler  *selfstat.Sampler
	bo       *backoff.Backoff
	st       stats

	ctx context.Context // the run's context: cancelled on shutdown
	wg  sync.WaitGroup  // handler goroutines

	// jmu orders journal appends against the replay after a reconnect, so
	// a journaled message is sent exactly once per connection.
	jmu     sync.Mutex
	ackCh   chan struct{} // closed and replaced on every ack (wakes producers waiting on a full journal)
	mu      sync.Mutex
	sess    *session // nil while disconnected
	id      string
	acking  bool     // the last session negotiated CapAck
	servers []string // servers to try, in order (basic.server, or a redirect list)
	next    int
	tasks   map[string]*task // running handlers by tid
	connCh  chan struct{}    // closed when a session becomes live (WaitConnected); nil: nobody waits
	report  func(extra map[string]any)

	upgrading atomic.Bool             // an upgrade is being staged or has swapped
	cancelRun context.CancelCauseFunc // ends Run (restart after an upgrade)
	pending   *selfupdate.Plan        // the upgrade this binary must confirm
}

type handler struct {
	fn         HandlerFunc
	timeout    time.Duration
	inline     bool // run on the reader, in arrival order
	connScoped bool // cancel when the request's connection ends
}

// HandlerFunc handles one request. ctx is cancelled when the task is killed
// (Runtime.Cancel), its timeout expires or the agent shuts down. Returning a
// non-nil error sends type 0 with the error text for the request's tid.
type HandlerFunc func(ctx context.Context, req *protocol.Msg, w Replier) error

// HandleOption tunes one handler.
type HandleOption func(*handler)

// WithTimeout cancels the handler's context after d.
func WithTimeout(d time.Duration) HandleOption { return func(h *handler) { h.timeout = d } }

// Inline runs the handler on the connection's reader, in the order the
// messages arrived, instead of on the worker pool. It is for messages that
// feed a running task and must keep their order (the keystrokes of an
// interactive session): the handler must return at once — hand the work
// to the task, never wait for a send queue, a lock held long, or I/O.
// Its context is the run's; an error it returns is answered with type 0
// only when the queue has room.
func Inline() HandleOption { return func(h *handler) { h.inline = true } }

// ConnScoped cancels the handler's context also when the connection the
// request arrived on ends, for tasks that cannot survive a reconnect (an
// interactive session: its server-side peer is gone with the connection).
func ConnScoped() HandleOption { return func(h *handler) { h.connScoped = true } }

// Handle registers h for messages of type t, replacing a built-in handler
// of the same type. Call it only from Agent.Setup.
func (rt *Runtime) Handle(t protocol.Type, h HandlerFunc, opts ...HandleOption) {
	hd := handler{fn: h}
	for _, o := range opts {
		o(&hd)
	}
	rt.handlers[t] = hd
}

// Context returns the run's context, done when the agent shuts down.
// Goroutines started by Setup stop on it.
func (rt *Runtime) Context() context.Context { return rt.ctx }

// Logger returns the agent's logger.
func (rt *Runtime) Logger() *slog.Logger { return rt.log }

// State returns the agent's state file (id, secret and extra keys an agent
// may keep with Get/Set + Save), nil when the runtime runs without one.
func (rt *Runtime) State() *statefile.State { return rt.state }

// ID returns the agent id in use ("" before the first handshake).
func (rt *Runtime) ID() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.id
}

// HasCap reports whether the current connection negotiated capability c
// (both sides announced it). It is false while disconnected.
func (rt *Runtime) HasCap(c string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sess != nil && protocol.HasCap(rt.sess.caps, c)
}

// Connected reports whether a session is live.
func (rt *Runtime) Connected() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sess != nil
}

// WaitConnected blocks until a session is live (handshake done, journal
// replayed) or ctx is done.
func (rt *Runtime) WaitConnected(ctx context.Context) error {
	for {
		rt.mu.Lock()
		if rt.sess != nil {
			rt.mu.Unlock()
			return nil
		}
		if rt.connCh == nil {
			rt.connCh = make(chan struct{})
		}
		ch := rt.connCh
		rt.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Cancel cancels the context of the running handler of task tid and
// reports whether there was one.
func (rt *Runtime) Cancel(tid string) bool {
	rt.mu.Lock()
	t, ok := rt.tasks[tid]
	rt.mu.Unlock()
	if ok {
		t.cancel()
	}
	return ok
}

// Push sends m (usually without tid) on the current connection. It blocks
// while the send queue is full, until ctx is done, and returns
// ErrNotConnected while there is no connection. Type 7 reports use the
// drop-oldest telemetry queue instead and never block. The
// protocol.CapErrKind fields of m are cleared when the connection does not
// use that extension.
func (rt *Runtime) Push(ctx context.Context, m *protocol.Msg) error {
	if !rt.HasCap(protocol.CapErrKind) {
		m.StripKinds() // a v1 server gets the v1 message
	}
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	s := rt.current()
	if s == nil {
		return ErrNotConnected
	}
	if m.Type == protocol.TypeAgentInfo {
		s.sendTelemetry(b)
		return nil
	}
	return s.send(ctx, b)
}

func (rt *Runtime) current() *session {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sess
}

// caps are the capabilities announced in come.
func (rt *Runtime) caps() []string {
	c := []string{protocol.CapAuth, protocol.CapErrKind}
	if rt.jr != nil {
		c = append(c, protocol.CapAck)
	}
	if rt.upgradeBase() != "" {
		c = append(c, protocol.CapUpgrade)
	}
	for _, x := range rt.agent.Caps {
		if !slices.Contains(c, x) {
			c = append(c, x)
		}
	}
	return c
}

// wantID is the id sent in come: the configured one, else the one the
// server assigned earlier, else "" (assign one).
func (rt *Runtime) wantID() string {
	if rt.basic.ID != "" {
		return rt.basic.ID
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.id
}

// connectLoop keeps the agent connected until ctx is done.
func (rt *Runtime) connectLoop(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		rt.mu.Lock()
		server := rt.servers[rt.next%len(rt.servers)]
		rt.mu.Unlock()
		connected, err := rt.connectOnce(ctx, server, first)
		if ctx.Err() != nil {
			return
		}
		if connected {
			first = false
			rt.bo.Disconnected(time.Now())
		} else if !errors.Is(err, errRedirected) {
			// The next attempt tries the next server of the list. A redirect
			// has set a new list to start from its first server: once there,
			// the configured server, its last, is tried on failure.
			rt.mu.Lock()
			rt.next++
			rt.mu.Unlock()
		}
		d := rt.bo.Next()
		switch {
		case errors.Is(err, ErrTokenRejected):
			rt.log.Error("connection refused: check basic.token", "server", server, "err", err, "retry_in", d)
		case errors.Is(err, errRedirected):
			rt.log.Info("server redirected the agent", "server", server, "to", rt.servers, "retry_in", d)
		default:
			rt.log.Warn("disconnected", "server", server, "err", err, "retry_in", d)
		}
		if backoff.Sleep(ctx, nil, d) != nil {
			return
		}
	}
}

// connectOnce dials server, handshakes and serves the connection until it
// ends. connected reports whether the handshake succeeded.
func (rt *Runtime) connectOnce(ctx context.Context, server string, first bool) (connected bool, err error) {
	u, err := ServerURL(server)
	if err != nil {
		return false, err
	}
	ws, err := rt.dial(ctx, u)
	if err != nil {
		return false, err
	}
	// The socket must close when the run is cancelled, whatever it is doing.
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()
	ws.SetReadLimit(rt.opts.MaxFrame)
	hs, err := rt.handshake(ws)
	if err != nil {
		_ = ws.Close()
		if errors.Is(err, errRedirected) {
			rt.mu.Lock()
			rt.servers = append(slices.Clone(hs.Redirect), rt.basic.Server)
			rt.next = 0
			rt.mu.Unlock()
		}
		return false, err
	}
	if err := rt.adopt(hs); err != nil {
		rt.log.Error("cannot persist agent state", "err", err)
	}
	caps := protocol.CommonCaps(rt.caps(), hs.Caps)
	s := newSession(ws, caps, server, rt.opts.Queue, rt.opts.KeepAlive, rt.opts.WriteTimeout, &rt.st)
	if !first {
		rt.st.reconnects.Add(1)
	}
	rt.bo.Connected(time.Now())
	rt.log.Info("connected", "server", u.Redacted(), "id", hs.ID, "caps", caps)

	var wg sync.WaitGroup
	wg.Go(s.writeLoop)
	defer wg.Wait()
	defer s.close(nil)

	if err := rt.activate(ctx, s, hs); err != nil {
		return true, err
	}
	defer rt.deactivate(s)
	return true, rt.readLoop(ctx, s)
}

// adopt records the id and secret the server gave and saves them when they
// changed.
func (rt *Runtime) adopt(hs *protocol.Handshake) error {
	rt.mu.Lock()
	rt.id = hs.ID
	rt.acking = protocol.HasCap(hs.Caps, protocol.CapAck) && rt.jr != nil
	rt.mu.Unlock()
	if rt.state == nil {
		return nil
	}
	id := hs.ID
	if rt.basic.ID != "" {
		id = "" // a configured id wins; the state keeps only assigned ones
	}
	if !rt.state.SetIdentity(id, hs.Secret) {
		return nil
	}
	return rt.state.Save()
}

// activate makes s the current session, after replaying the journal into
// it when the server acks.
func (rt *Runtime) activate(ctx context.Context, s *session, hs *protocol.Handshake) error {
	rt.jmu.Lock()
	defer rt.jmu.Unlock()
	if rt.jr != nil && protocol.HasCap(s.caps, protocol.CapAck) {
		if hs.Ack > 0 {
			// The server holds everything up to hs.Ack. Numbers up to it
			// must not be handed out again, even if a host crash lost
			// journal records that had not been synced.
			rt.jr.AdvanceTo(hs.Ack)
			rt.ack(hs.Ack)
		}
		n := 0
		err := rt.jr.Pending(func(seq uint64, payload []byte) error {
			n++
			return s.send(ctx, withSeq(payload, seq))
		})
		if err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
		if n > 0 {
			rt.log.Info("replayed unacknowledged results", "count", n)
		}
	}
	rt.mu.Lock()
	rt.sess = s
	if rt.connCh != nil {
		close(rt.connCh)
		rt.connCh = nil
	}
	rt.mu.Unlock()
	return nil
}

func (rt *Runtime) deactivate(s *session) {
	rt.mu.Lock()
	if rt.sess == s {
		rt.sess = nil
	}
	rt.mu.Unlock()
}

// readLoop reads frames until the connection fails.
func (rt *Runtime) readLoop(ctx context.Context, s *session) error {
	ws := s.ws
	_ = ws.SetReadDeadline(s.deadline())
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(s.deadline()) })
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				err = fmt.Errorf("frame larger than %d bytes: %w", rt.opts.MaxFrame, err)
			}
			s.close(err)
			if ctx.Err() != nil {
				return nil
			}
			if s.err != nil {
				return s.err
			}
			return fmt.Errorf("read: %w", err)
		}
		_ = ws.SetReadDeadline(s.deadline())
		rt.st.inPackets.Add(1)
		rt.st.inBytes.Add(uint64(len(data)))
		m, err := protocol.Decode(data)
		if err != nil {
			rt.st.malformed.Add(1)
			rt.log.Warn("malformed frame dropped", "err", err, "size", len(data))
			rt.refuse(ctx, s, data, err)
			continue
		}
		rt.dispatch(ctx, s, m)
	}
}

// refuse answers a frame Decode rejected when it names a task (a payload
// that does not fit its type, such as an agent type's bad payload), so the
// requester learns why instead of waiting for its timeout.
func (rt *Runtime) refuse(ctx context.Context, s *session, data []byte, err error) {
	var env struct {
		TID string `json:"tid"`
	}
	if json.Unmarshal(data, &env) != nil || env.TID == "" {
		return
	}
	e := protocol.ErrorReply(env.TID, protocol.WithKind(protocol.KindInvalid, err))
	if !rt.HasCap(protocol.CapErrKind) {
		e.StripKinds()
	}
	rt.reply(ctx, s, e)
}

// serverBase returns the http(s) origin of the server currently connected
// (or last configured), for relative transfer URIs.
func (rt *Runtime) serverBase() (*url.URL, error) {
	server := rt.basic.Server
	if s := rt.current(); s != nil {
		server = s.server
	}
	u, err := ServerURL(server)
	if err != nil {
		return nil, err
	}
	return httpBase(u), nil
}
