// Package shell relays interactive terminal sessions (pty.v1) between a
// WebSocket client — the web console's terminal, `agentctl shell` — and an
// exec-agent: it opens the session on the agent, copies keystrokes in and
// output out under the protocol's credit-based flow control, keeps the
// client alive with pings, and ends the session from either side.
//
// # Client protocol
//
// Binary frames carry raw terminal bytes both ways (client → server:
// keystrokes; server → client: output). Text frames carry JSON control
// messages: from the client {"type":"resize","cols":C,"rows":R} (unknown
// types are ignored, so clients may send newer ones); from the server
// {"type":"exit","code":N} (plus "msg" when the agent ended the session
// itself) followed by a normal close (1000), or {"type":"error","msg":M}
// followed by a close (1008 for a bad client message, 1001 when the server
// shuts down, 1011 otherwise).
//
// # Memory and back-pressure
//
// Output: the agent may have at most Options.Window messages (≤ 32 KiB
// each) unacknowledged; the relay acknowledges a message once it has been
// written to the client, so a slow client slows the agent (which stops
// reading the terminal) instead of filling the server. Input: the relay
// sends a keystroke chunk only with a credit the agent granted, and reads
// the next client frame only after the previous one was handed on, so a
// program that does not read its terminal slows the client's TCP stream.
// Client frames are limited to MaxClientFrame bytes.
//
// # Liveness
//
// The relay pings the client every Options.PingInterval; a client from
// which nothing (no frame, no pong) arrived for Options.DeadAfter while the
// relay reads, or to which a frame cannot be written within
// Options.WriteTimeout, is gone. A client that is gone, a bad client
// message and a server shutdown all end the session on the agent
// (pty_close, which kills its process tree); a lost agent connection ends
// it for the client.
package shell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/jkframe/stat"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
)

// Caps are the extensions this package implements above the hub; the
// server announces them in the handshake (hub.Options.ExtraCaps).
var Caps = []string{protocol.CapPty}

// MaxClientFrame is the largest frame a client may send (a paste); larger
// frames close the connection (1009).
const MaxClientFrame = 1 << 20

// Errors of Open, for errors.Is / errors.As.
var (
	// ErrUnsupported: the agent does not announce pty.v1 (jkstack 1.5
	// agents, exec-agents on Windows, which have no ConPTY support yet).
	ErrUnsupported = errors.New("the agent does not support interactive shells")
	// ErrClosed: the service is shutting down.
	ErrClosed = errors.New("shell service closed")
)

// RefusedError is an agent's pty_opened{ok:false}: the session did not
// start, for the reason in Msg; Kind classifies it (errkind.v1; empty: the
// agent's own failure, such as busy).
type RefusedError struct {
	Msg  string
	Kind protocol.ErrKind
}

func (e *RefusedError) Error() string { return "shell not started: " + e.Msg }

// Options configure New. Zero fields take the default in their comment.
type Options struct {
	Hub      *hub.Hub // required
	Logger   *slog.Logger
	Registry prometheus.Registerer // default: not exported

	// Window is the output window granted to agents, in messages.
	// Default protocol.PtyDefaultWindow (16 × 32 KiB in flight at most).
	Window int
	// PingInterval is how often the client is pinged. Default 20 s.
	PingInterval time.Duration
	// DeadAfter is the silence after which a client is gone. Default 60 s.
	DeadAfter time.Duration
	// WriteTimeout bounds every write to the client. Default 30 s.
	WriteTimeout time.Duration
	// CloseWait is how long the relay waits for the agent's pty_exit after
	// pty_close, and for the client's close reply. Default 10 s.
	CloseWait time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Window <= 0 {
		o.Window = protocol.PtyDefaultWindow
	}
	o.Window = protocol.PtyWindow(uint32(o.Window))
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.PingInterval, 20*time.Second)
	def(&o.DeadAfter, 60*time.Second)
	def(&o.WriteTimeout, 30*time.Second)
	def(&o.CloseWait, 10*time.Second)
}

// Outcomes of a session, in agentserver_shell_sessions_total and Result.
const (
	OutcomeExited       = "exited"        // the agent ended the session (pty_exit)
	OutcomeClientClosed = "client_closed" // the client left or broke off
	OutcomeAgentGone    = "agent_gone"    // the agent's connection ended
	OutcomeShutdown     = "shutdown"      // the server shut down
	OutcomeError        = "error"         // a protocol error on either side
	OutcomeRefused      = "refused"       // Open failed
)

type metrics struct {
	open     prometheus.Gauge
	sessions *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

// Service opens and relays sessions. Its methods are safe for concurrent
// use. Close ends every session.
type Service struct {
	o   Options
	hub *hub.Hub
	log *slog.Logger
	m   metrics

	ctx  context.Context // cancelled by Close: sessions end
	stop context.CancelFunc
	wg   sync.WaitGroup // sessions being served

	mu     sync.Mutex
	closed bool
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Hub == nil {
		return nil, errors.New("shell: Hub is required")
	}
	o.setDefaults()
	r := stat.New(o.Registry, "agentserver")
	m := metrics{
		open:     r.Gauge("shell_sessions_open", "Interactive shell sessions being relayed now."),
		sessions: r.CounterVec("shell_sessions_total", "Interactive shell sessions by outcome (refused: never opened).", "outcome"),
		bytes:    r.CounterVec("shell_bytes_total", "Terminal bytes relayed: in = client keystrokes to the agent, out = output to the client.", "direction"),
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("shell metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{o: o, hub: o.Hub, log: o.Logger, m: m, ctx: ctx, stop: cancel}, nil
}

// Close ends every session (the agents get pty_close, the clients an
// error frame) and waits for them, at most until ctx is done.
func (svc *Service) Close(ctx context.Context) error {
	svc.mu.Lock()
	svc.closed = true
	svc.mu.Unlock()
	svc.stop()
	done := make(chan struct{})
	go func() { svc.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shell: close: %w", ctx.Err())
	}
}

// Spec is a session to open.
type Spec struct {
	Agent      string
	Cmd        string   // "" = the user's login shell
	User       string   // "" = the agent's user
	Env        []string // "K=V"
	Cols, Rows uint16
}

// Session is a session opened on an agent, not yet (or being) relayed.
type Session struct {
	svc   *Service
	hs    *hub.Session
	st    *hub.Stream
	tid   string
	pid   int
	inWin int // input credits the agent granted
	begin time.Time
	once  sync.Once // Serve or Abort
}

// TID is the session's tid on the agent connection.
func (s *Session) TID() string { return s.tid }

// Pid is the session's main process on the agent's host.
func (s *Session) Pid() int { return s.pid }

// Open starts a session on the agent and waits (up to ctx) for the agent
// to confirm it. Errors wrap hub.ErrAgentNotFound, ErrUnsupported,
// ErrClosed, *RefusedError, *hub.AgentError, hub.ErrAgentGone or ctx's
// error. The caller must Serve or Abort the session.
func (svc *Service) Open(ctx context.Context, spec Spec) (_ *Session, err error) {
	defer func() {
		if err != nil {
			svc.m.sessions.WithLabelValues(OutcomeRefused).Inc()
		}
	}()
	svc.mu.Lock()
	closed := svc.closed
	svc.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	hs, ok := svc.hub.Session(spec.Agent)
	if !ok {
		return nil, fmt.Errorf("shell on %s: %w", spec.Agent, hub.ErrAgentNotFound)
	}
	if !hs.HasCap(protocol.CapPty) {
		return nil, fmt.Errorf("shell on %s: %w", spec.Agent, ErrUnsupported)
	}
	st, err := hs.Stream(ctx, &protocol.Msg{Type: protocol.TypePtyOpen, Payload: &protocol.PtyOpen{
		Cmd: spec.Cmd, User: spec.User, Env: spec.Env, Cols: spec.Cols, Rows: spec.Rows, Window: uint32(svc.o.Window),
	}})
	if err != nil {
		return nil, fmt.Errorf("shell on %s: %w", spec.Agent, err)
	}
	m, err := st.Recv(ctx)
	if err != nil {
		st.Close()
		// The agent may still start it: tell it to end the session.
		svc.sendClose(hs, st.TID())
		return nil, fmt.Errorf("shell on %s: %w", spec.Agent, err)
	}
	switch {
	case m.Type == protocol.TypePtyOpened && m.PtyOpened().OK:
	case m.Type == protocol.TypePtyOpened:
		return nil, &RefusedError{Msg: m.PtyOpened().Msg, Kind: m.PtyOpened().Kind}
	default:
		st.Close()
		svc.sendClose(hs, st.TID())
		return nil, fmt.Errorf("shell on %s: unexpected first reply %s", spec.Agent, m.Type)
	}
	return &Session{
		svc: svc, hs: hs, st: st, tid: st.TID(), pid: m.PtyOpened().Pid,
		inWin: protocol.PtyWindow(m.PtyOpened().Window), begin: time.Now(),
	}, nil
}

// sendClose sends pty_close for tid, best effort.
func (svc *Service) sendClose(hs *hub.Session, tid string) {
	ctx, cancel := context.WithTimeout(context.Background(), svc.o.CloseWait)
	defer cancel()
	if err := hs.Send(ctx, &protocol.Msg{Type: protocol.TypePtyClose, TID: tid}); err != nil {
		svc.log.Debug("shell: pty_close not sent", "agent", hs.ID(), "tid", tid, "err", err)
	}
}

// Abort ends a session that will not be served (the client's upgrade
// failed).
func (s *Session) Abort() {
	s.once.Do(func() {
		s.st.Close()
		s.svc.sendClose(s.hs, s.tid)
		s.svc.m.sessions.WithLabelValues(OutcomeClientClosed).Inc()
	})
}
