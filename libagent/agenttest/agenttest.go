// Package agenttest runs an in-process agent-server for the tests of
// agents built on libagent: a real WebSocket endpoint on 127.0.0.1 speaking
// the real protocol (come/handshake with id assignment, secrets, acks), to
// which a test points its agent's basic.server.
//
// The test then sends requests and awaits the replies by tid, observes
// pushes, and breaks the link in the ways real networks do: drop every
// connection, stop and restart the listener on the same port, stop reading
// (a half-open link), send raw frames.
//
//	srv := agenttest.New(t, agenttest.Options{})
//	// … start the agent with basic.server = srv.Addr() …
//	a, _ := srv.WaitAgent(ctx)
//	tid, _ := srv.Send(ctx, a.ID, &protocol.Msg{Type: protocol.TypeFoo})
//	rep, _ := srv.Await(ctx, tid)
//
// A Server is safe for concurrent use. Close (registered as a cleanup by
// New) stops every goroutine it started.
package agenttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"
)

// Options configure a Server. The zero value is a permissive server that
// speaks every extension.
type Options struct {
	// Token, when set, is the enrollment token agents must present as
	// "Authorization: Bearer <token>"; others get 401.
	Token string
	// V1 makes the server behave like agent-server 1.5: no capabilities in
	// the handshake, no secrets, no acks.
	V1 bool
	// MaxFrame is the read limit per frame (default protocol.MaxFrame).
	MaxFrame int64
	// TLS serves wss:// and https:// with httptest's certificate for
	// 127.0.0.1 (see CertPEM).
	TLS bool
	// HTTP serves every path other than /ws/agent (for example the
	// one-shot transfer URLs an agent GETs or PUTs); nil answers 404.
	HTTP http.Handler
	// Logger receives the server's log lines (default: discarded).
	Logger *slog.Logger
}

// Agent describes a connected agent.
type Agent struct {
	ID   string
	Come *protocol.Come // the agent's hello
	Caps []string       // negotiated capabilities
}

// Server is the in-process agent-server.
type Server struct {
	opts Options
	log  *slog.Logger
	addr string // fixed across restarts

	mu       sync.Mutex
	cond     chan struct{} // closed and replaced on every change of the fields below
	srv      *httptest.Server
	conns    map[string]*conn // live connections by agent id
	secrets  map[string]string
	acked    map[string]uint64 // highest seq received per journal id
	replies  map[string][]*protocol.Msg
	pushes   []*protocol.Msg
	dups     int
	tidSeq   int
	refuse   bool // accept the upgrade then close at once
	dropHS   bool // close right after a successful handshake
	redirect []string
	cert     []byte
	gen      int // incremented by every (re)start
	closed   bool
	dials    atomic.Int64
	dialAt   []time.Time
	accepted atomic.Int64
	wg       sync.WaitGroup
}

type conn struct {
	ws       *websocket.Conn
	agent    Agent
	journal  string
	wmu      sync.Mutex
	stopRead chan struct{}
	stopOnce sync.Once
	closing  chan struct{}
	closeOne sync.Once
}

// close closes the socket; a reader parked by StopReading returns.
func (c *conn) close() {
	c.closeOne.Do(func() {
		close(c.closing)
		_ = c.ws.Close()
	})
}

// ErrNoAgent is returned for an agent id that is not connected.
var ErrNoAgent = errors.New("agenttest: agent not connected")

// New starts a Server and registers its Close with tb.Cleanup.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a Server on a free port of 127.0.0.1.
func Start(opts Options) (*Server, error) {
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = protocol.MaxFrame
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		cond:    make(chan struct{}),
		conns:   map[string]*conn{},
		secrets: map[string]string{},
		acked:   map[string]uint64{},
		replies: map[string][]*protocol.Msg{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("agenttest: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	gen := s.gen
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.handle(w, r, gen) }))
	srv.Listener = ln
	srv.Config.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	if s.opts.TLS {
		srv.StartTLS()
		s.cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	} else {
		srv.Start()
	}
	s.srv = srv
}

// CertPEM returns the server certificate in PEM form (Options.TLS), for an
// agent's basic.tls.ca.
func (s *Server) CertPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert
}

// Addr is the server's host:port, a valid basic.server value.
func (s *Server) Addr() string { return s.addr }

// URL is the ws:// (wss:// with Options.TLS) URL of the agent endpoint, a
// valid basic.server value too.
func (s *Server) URL() string {
	if s.opts.TLS {
		return "wss://" + s.addr + "/ws/agent"
	}
	return "ws://" + s.addr + "/ws/agent"
}

// Dials counts upgrade requests received (including refused ones).
func (s *Server) Dials() int { return int(s.dials.Load()) }

// DialTimes returns when each upgrade request arrived, oldest first.
func (s *Server) DialTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dialAt)
}

// Accepted counts successful handshakes.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

// Duplicates counts journaled messages received again after they had been
// received once (the server drops them, as agent-server does).
func (s *Server) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

// SetRedirect makes the server answer every come with ok:false and this
// redirect list (nil: stop redirecting).
func (s *Server) SetRedirect(servers []string) {
	s.mu.Lock()
	s.redirect = servers
	s.mu.Unlock()
}

// SetDropAfterHandshake makes the server close every connection right
// after a successful handshake: a server that keeps accepting agents and
// losing them.
func (s *Server) SetDropAfterHandshake(on bool) {
	s.mu.Lock()
	s.dropHS = on
	s.mu.Unlock()
}

// SetRefuse makes the server accept the WebSocket upgrade and close the
// connection at once, before the handshake: a server that "accepts then
// drops".
func (s *Server) SetRefuse(on bool) {
	s.mu.Lock()
	s.refuse = on
	s.mu.Unlock()
}

func (s *Server) changed() {
	close(s.cond)
	s.cond = make(chan struct{})
}

// wait blocks until pred (called with s.mu held) is true or ctx is done.
func (s *Server) wait(ctx context.Context, pred func() bool) error {
	for {
		s.mu.Lock()
		ok := pred()
		ch := s.cond
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("agenttest: %w", ctx.Err())
		}
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, gen int) {
	if r.URL.Path != "/ws/agent" {
		if s.opts.HTTP != nil {
			s.opts.HTTP.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	s.dials.Add(1)
	s.mu.Lock()
	s.dialAt = append(s.dialAt, time.Now())
	s.changed()
	s.mu.Unlock()
	if s.opts.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	// A request that raced with Stop belongs to a stopped server.
	refuse, closed := s.refuse, s.closed || gen != s.gen || s.srv == nil
	if !closed && !refuse {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if refuse || closed {
		_ = ws.Close()
		return
	}
	defer s.wg.Done()
	ws.SetReadLimit(s.opts.MaxFrame)
	s.session(ws)
}

// session runs one agent connection: handshake, then the read loop.
func (s *Server) session(ws *websocket.Conn) {
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return
	}
	m, err := protocol.Decode(data)
	if err != nil || m.Type != protocol.TypeCome {
		s.log.Warn("first message is not come", "err", err)
		return
	}
	_ = ws.SetReadDeadline(time.Time{})
	come := m.Come()
	c := &conn{ws: ws, stopRead: make(chan struct{}), closing: make(chan struct{})}
	defer c.close()
	hs := &protocol.Handshake{OK: true, ID: come.ID}
	if !s.opts.V1 {
		hs.Caps = protocol.Caps()
	}
	caps := protocol.CommonCaps(come.Caps, hs.Caps)
	proven := false

	s.mu.Lock()
	if len(s.redirect) > 0 {
		hs = &protocol.Handshake{OK: false, ID: come.ID, Msg: "redirect", Redirect: slices.Clone(s.redirect)}
		s.mu.Unlock()
		_ = c.write(&protocol.Msg{Type: protocol.TypeHandshake, Payload: hs})
		return
	}
	if hs.ID == "" {
		hs.ID = newID()
	}
	if protocol.HasCap(caps, protocol.CapAuth) {
		sec, ok := s.secrets[hs.ID]
		switch {
		case ok && come.Secret == sec:
			proven = true
		case !ok:
			sec = newSecret()
			s.secrets[hs.ID] = sec
			hs.Secret = sec
			proven = true
		}
	}
	old := s.conns[hs.ID]
	if old != nil && !proven {
		s.mu.Unlock()
		hs = &protocol.Handshake{OK: false, ID: hs.ID, Msg: protocol.MsgIDConflict}
		_ = c.write(&protocol.Msg{Type: protocol.TypeHandshake, Payload: hs})
		return
	}
	if protocol.HasCap(caps, protocol.CapAck) {
		c.journal = come.Journal
		hs.Ack = s.acked[come.Journal]
	}
	c.agent = Agent{ID: hs.ID, Come: come, Caps: caps}
	// Nothing may be sent to the agent before its handshake: hold the write
	// lock from the moment the connection is visible until it is written.
	c.wmu.Lock()
	s.conns[hs.ID] = c
	s.changed()
	s.mu.Unlock()
	if old != nil {
		old.close() // replaced by a connection that proved the secret
	}
	err = c.writeLocked(&protocol.Msg{Type: protocol.TypeHandshake, Payload: hs})
	c.wmu.Unlock()
	if err != nil {
		s.remove(c)
		return
	}
	s.mu.Lock()
	s.accepted.Add(1)
	s.changed()
	drop := s.dropHS
	s.mu.Unlock()
	defer s.remove(c)
	if drop {
		return
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			select {
			case <-c.stopRead:
				<-c.closing // half-open: hold the socket, read nothing
			default:
			}
			return
		}
		m, err := protocol.Decode(data)
		if err != nil {
			s.log.Warn("malformed frame from agent", "err", err)
			continue
		}
		s.receive(c, m)
	}
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	if s.conns[c.agent.ID] == c {
		delete(s.conns, c.agent.ID)
		s.changed()
	}
	s.mu.Unlock()
}

func (s *Server) receive(c *conn, m *protocol.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Seq > 0 && c.journal != "" {
		if m.Seq <= s.acked[c.journal] {
			s.dups++
			ack := &protocol.Msg{Type: protocol.TypeAck, Payload: &protocol.Ack{Seq: s.acked[c.journal]}}
			s.wg.Go(func() { _ = c.write(ack) })
			return
		}
		s.acked[c.journal] = m.Seq
		ack := &protocol.Msg{Type: protocol.TypeAck, Payload: &protocol.Ack{Seq: m.Seq}}
		s.wg.Go(func() { _ = c.write(ack) })
	}
	if m.TID != "" {
		s.replies[m.TID] = append(s.replies[m.TID], m)
	} else {
		s.pushes = append(s.pushes, m)
	}
	s.changed()
}

func (c *conn) write(m *protocol.Msg) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

func (c *conn) writeLocked(m *protocol.Msg) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// WaitAccepted waits until n handshakes in total have succeeded.
func (s *Server) WaitAccepted(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return int(s.accepted.Load()) >= n })
}

// WaitAgent waits until an agent is connected and returns it (any agent
// when several are).
func (s *Server) WaitAgent(ctx context.Context) (Agent, error) {
	var a Agent
	err := s.wait(ctx, func() bool {
		for _, c := range s.conns {
			a = c.agent
			return true
		}
		return false
	})
	return a, err
}

// WaitFor waits until the agent id is connected.
func (s *Server) WaitFor(ctx context.Context, id string) (Agent, error) {
	var a Agent
	err := s.wait(ctx, func() bool {
		c, ok := s.conns[id]
		if ok {
			a = c.agent
		}
		return ok
	})
	return a, err
}

// Agents returns the agents connected now.
func (s *Server) Agents() []Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Agent, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c.agent)
	}
	return out
}

func (s *Server) conn(id string) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoAgent, id)
	}
	return c, nil
}

// Send sends m to agent id with a fresh tid (unless m.TID is set) and
// returns the tid.
func (s *Server) Send(ctx context.Context, id string, m *protocol.Msg) (string, error) {
	c, err := s.conn(id)
	if err != nil {
		return "", err
	}
	if m.TID == "" {
		s.mu.Lock()
		s.tidSeq++
		m.TID = fmt.Sprintf("%s-%05d-%s", time.Now().Format("20060102"), s.tidSeq, newSecret()[:8])
		s.mu.Unlock()
	}
	if err := c.write(m); err != nil {
		return "", fmt.Errorf("agenttest: send to %s: %w", id, err)
	}
	return m.TID, nil
}

// SendRaw writes b as one text frame to agent id, whatever it holds.
func (s *Server) SendRaw(id string, b []byte) error {
	c, err := s.conn(id)
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

// Await returns the first reply for tid not returned before, waiting for
// it.
func (s *Server) Await(ctx context.Context, tid string) (*protocol.Msg, error) {
	var m *protocol.Msg
	err := s.wait(ctx, func() bool {
		q := s.replies[tid]
		if len(q) == 0 {
			return false
		}
		m = q[0]
		s.replies[tid] = q[1:]
		return true
	})
	return m, err
}

// AwaitPush returns the first push (message without tid) of type t not
// returned before, waiting for it.
func (s *Server) AwaitPush(ctx context.Context, t protocol.Type) (*protocol.Msg, error) {
	var m *protocol.Msg
	err := s.wait(ctx, func() bool {
		i := slices.IndexFunc(s.pushes, func(p *protocol.Msg) bool { return p.Type == t })
		if i < 0 {
			return false
		}
		m = s.pushes[i]
		s.pushes = slices.Delete(s.pushes, i, i+1)
		return true
	})
	return m, err
}

// Drop closes every agent connection; the listener stays up. When it
// returns, no agent is listed as connected.
func (s *Server) Drop() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for id, c := range s.conns {
		conns = append(conns, c)
		delete(s.conns, id) // gone from now on, even before its reader notices
	}
	s.changed()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// StopReading makes the server stop reading from agent id without closing
// the socket: pings go unanswered and nothing the agent sends is consumed,
// as with a peer that hung or a link that died without a FIN.
func (s *Server) StopReading(id string) error {
	c, err := s.conn(id)
	if err != nil {
		return err
	}
	c.stopOnce.Do(func() {
		close(c.stopRead)
		// Wake the reader, which answers pings while it waits for a frame.
		_ = c.ws.NetConn().SetReadDeadline(time.Now())
	})
	return nil
}

// Stop closes the listener and every connection: the server is gone until
// Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.gen++
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Listener.Close()
	srv.CloseClientConnections()
	s.Drop()
	srv.Close()
}

// Restart starts listening again on the same address after Stop.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	var ln net.Listener
	var err error
	// The port may linger briefly after Stop.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("agenttest: restart on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Stop()
	s.wg.Wait()
}

func newID() string {
	return "agent-" + time.Now().UTC().Format("20060102") + "-" + newSecret()[:16]
}

func newSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
