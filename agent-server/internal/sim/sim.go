// Package sim simulates many agents in one process, speaking the real
// protocol over real WebSocket connections: handshake (token, caps or plain
// v1), keepalive pings, foo → bar, a no-op exec (execd + exec_done code 0,
// with seq numbers when ack.v1 is in use), and an empty log list. It is the
// engine of cmd/agent-sim, for benchmarks and soak tests.
//
// Per agent it keeps one goroutine (the reader, which also answers), a
// gorilla connection with a 512-byte read buffer and pooled write buffers,
// and a small struct; pings for all agents come from one goroutine.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent/protocol"
)

// Config describes a simulation.
type Config struct {
	URL         string        // ws://host:port/ws/agent
	N           int           // agents
	Concurrency int           // parallel dialers; default 100
	Type        string        // come.name; default "example-agent"
	Version     string        // come.version; default "0.0.0-sim"
	Token       string        // enrollment token, sent as Authorization: Bearer
	IDPrefix    string        // ids are <prefix><index>; empty: the server assigns them
	V1          bool          // announce no capabilities (plain v1)
	Ping        time.Duration // keepalive interval; default 10 s
	Reconnect   bool          // redial dropped agents (backoff 1 s … 30 s, full jitter)
	Logger      *slog.Logger  // default: discard
	// StartAt delays the first dial until this wall-clock time, so that
	// several sim processes can start dialing together; zero: at once.
	StartAt time.Time
	// SourceAddrs > 1 dials a server on 127.0.0.1 from that many loopback
	// addresses in turn, 127.0.0.1 to 127.0.0.<SourceAddrs> (Linux; at most
	// 254): more connections than one address has ports, and a cheaper
	// port search for the kernel. Ignored for other servers.
	SourceAddrs int
}

// Stats are the simulation's counters so far.
type Stats struct {
	Dials        int64 // handshake attempts
	Connected    int64 // live now
	Handshakes   int64 // successful handshakes
	Failures     int64 // failed dials and refused handshakes
	Disconnects  int64 // live connections that ended
	Requests     int64 // requests answered
	FirstAllTook time.Duration
	// FirstOK and LastOK are the wall-clock times of the first and the last
	// successful handshake of the first round (one dial per agent, no
	// redials): zero until there is one. Several processes' windows can be
	// merged to get the handshake rate the server saw.
	FirstOK, LastOK time.Time
}

// Sim runs the agents. Create with New, then Run.
type Sim struct {
	cfg    Config
	dialer websocket.Dialer
	hdr    http.Header
	caps   []string
	agents []*agent

	dials, connected, handshakes, failures, disconnects, requests atomic.Int64
	firstAll                                                      atomic.Int64 // ns
	firstOK, lastOK                                               atomic.Int64 // unix ns, first round

	errMu   sync.Mutex
	lastErr error
}

type agent struct {
	sim     *Sim
	idx     int
	id      string
	secret  string
	journal string
	seq     uint64
	ack     bool
	conn    atomic.Pointer[websocket.Conn]
}

// New returns a simulation of cfg.N agents.
func New(cfg Config) *Sim {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 100
	}
	if cfg.Type == "" {
		cfg.Type = "example-agent"
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.0-sim"
	}
	if cfg.Ping <= 0 {
		cfg.Ping = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{cfg: cfg}
	s.dialer = websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   512,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
	}
	if n := min(cfg.SourceAddrs, 254); n > 1 && loopbackURL(cfg.URL) {
		s.dialer.NetDialContext = spreadDialer(n)
	}
	s.hdr = http.Header{}
	if cfg.Token != "" {
		s.hdr.Set("Authorization", "Bearer "+cfg.Token)
	}
	if !cfg.V1 {
		s.caps = []string{protocol.CapAuth, protocol.CapAck, protocol.CapStream}
	}
	s.agents = make([]*agent, cfg.N)
	for i := range s.agents {
		a := &agent{sim: s, idx: i}
		if cfg.IDPrefix != "" {
			a.id = fmt.Sprintf("%s%06d", cfg.IDPrefix, i)
		}
		if !cfg.V1 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			a.journal = hex.EncodeToString(b[:])
		}
		s.agents[i] = a
	}
	return s
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	return Stats{
		Dials:        s.dials.Load(),
		Connected:    s.connected.Load(),
		Handshakes:   s.handshakes.Load(),
		Failures:     s.failures.Load(),
		Disconnects:  s.disconnects.Load(),
		Requests:     s.requests.Load(),
		FirstAllTook: time.Duration(s.firstAll.Load()),
		FirstOK:      unixTime(s.firstOK.Load()),
		LastOK:       unixTime(s.lastOK.Load()),
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// noteOK widens the first round's window of successful handshakes to now.
func (s *Sim) noteOK() {
	now := time.Now().UnixNano()
	for {
		v := s.firstOK.Load()
		if (v != 0 && v <= now) || s.firstOK.CompareAndSwap(v, now) {
			break
		}
	}
	for {
		v := s.lastOK.Load()
		if v >= now || s.lastOK.CompareAndSwap(v, now) {
			break
		}
	}
}

// LastError returns the most recent dial or handshake error.
func (s *Sim) LastError() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

func (s *Sim) fail(err error) {
	s.failures.Add(1)
	s.errMu.Lock()
	s.lastErr = err
	s.errMu.Unlock()
}

// Run connects the agents with cfg.Concurrency dialers and keeps them
// connected until ctx ends; then it closes every connection and returns
// once all agent goroutines have exited. Agents whose first dial fails are
// retried only with cfg.Reconnect. With cfg.StartAt it first waits for
// that time.
func (s *Sim) Run(ctx context.Context) error {
	if s.cfg.N <= 0 {
		return errors.New("sim: no agents")
	}
	if d := time.Until(s.cfg.StartAt); !s.cfg.StartAt.IsZero() && d > 0 {
		if backoff.Sleep(ctx, nil, d) != nil {
			return nil
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	var pending atomic.Int64
	pending.Store(int64(s.cfg.N))
	next := make(chan *agent)
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for a := range next {
				ok := a.connect(ctx)
				if ok {
					s.noteOK()
				}
				if pending.Add(-1) == 0 {
					s.firstAll.Store(int64(time.Since(start)))
				}
				if ok || s.cfg.Reconnect {
					wg.Go(func() { a.live(ctx, ok) })
				}
			}
		})
	}
	wg.Go(func() { s.pinger(ctx) })
feed:
	for _, a := range s.agents {
		select {
		case next <- a:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	<-ctx.Done()
	for _, a := range s.agents {
		if c := a.conn.Load(); c != nil {
			c.Close()
		}
	}
	wg.Wait()
	return nil
}

// pinger sends each connected agent a ping every cfg.Ping, spread evenly.
func (s *Sim) pinger(ctx context.Context) {
	const slots = 100
	tk := time.NewTicker(s.cfg.Ping / slots)
	defer tk.Stop()
	for slot := 0; ; slot = (slot + 1) % slots {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		for i := slot; i < len(s.agents); i += slots {
			if c := s.agents[i].conn.Load(); c != nil {
				_ = c.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second))
			}
		}
	}
}

// connect dials and handshakes once.
func (a *agent) connect(ctx context.Context) bool {
	s := a.sim
	s.dials.Add(1)
	c, resp, err := s.dialer.DialContext(ctx, s.cfg.URL, s.hdr)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		s.fail(fmt.Errorf("dial: %w", err))
		return false
	}
	come := &protocol.Come{
		ID: a.id, Name: s.cfg.Type, Version: s.cfg.Version, HostName: fmt.Sprintf("sim-%d", a.idx),
		OS: "linux", Platform: "sim", Arch: "amd64", CPUCore: 1, Memory: 1 << 30,
		Caps: s.caps, Secret: a.secret, Journal: a.journal,
	}
	if ip := c.LocalAddr(); ip != nil {
		come.IP = localIP(ip.String())
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeCome, Payload: come})
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		c.Close()
		s.fail(fmt.Errorf("send come: %w", err))
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	_, b, err = c.ReadMessage()
	if err != nil {
		c.Close()
		s.fail(fmt.Errorf("read handshake: %w", err))
		return false
	}
	m, err := protocol.Decode(b)
	if err != nil || m.Handshake() == nil {
		c.Close()
		s.fail(fmt.Errorf("handshake: unexpected %.80q", b))
		return false
	}
	if !m.Handshake().OK {
		c.Close()
		s.fail(fmt.Errorf("handshake refused: %s", m.Handshake().Msg))
		return false
	}
	a.id = m.Handshake().ID
	if m.Handshake().Secret != "" {
		a.secret = m.Handshake().Secret
	}
	a.ack = protocol.HasCap(s.caps, protocol.CapAck) && protocol.HasCap(m.Handshake().Caps, protocol.CapAck)
	if a.ack && m.Handshake().Ack > a.seq {
		a.seq = m.Handshake().Ack
	}
	a.conn.Store(c)
	s.handshakes.Add(1)
	s.connected.Add(1)
	return true
}

// live serves the connection and, with Reconnect, redials after it ends.
func (a *agent) live(ctx context.Context, connected bool) {
	s := a.sim
	bo := backoff.Backoff{Min: time.Millisecond, Initial: time.Second, Max: 30 * time.Second}
	for {
		if connected {
			a.serve()
			a.conn.Store(nil)
			s.connected.Add(-1)
			s.disconnects.Add(1)
			bo.Reset()
		}
		if ctx.Err() != nil || !s.cfg.Reconnect {
			return
		}
		if backoff.Sleep(ctx, nil, bo.Next()) != nil {
			return
		}
		connected = a.connect(ctx)
	}
}

// serve reads and answers until the connection ends. Silence for three
// ping intervals (no pong, no message) counts as a dead link.
func (a *agent) serve() {
	s := a.sim
	c := a.conn.Load()
	defer c.Close()
	dead := 3 * s.cfg.Ping
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(dead)) })
	for {
		_ = c.SetReadDeadline(time.Now().Add(dead))
		_, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		m, err := protocol.Decode(b)
		if err != nil {
			continue
		}
		for _, r := range a.answer(m) {
			out, err := protocol.Encode(r)
			if err != nil {
				continue
			}
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, out); err != nil {
				return
			}
		}
	}
}

// answer returns the replies to m.
func (a *agent) answer(m *protocol.Msg) []*protocol.Msg {
	switch m.Type {
	case protocol.TypeAck, protocol.TypeHandshake:
		return nil
	case protocol.TypeFoo:
		a.sim.requests.Add(1)
		return []*protocol.Msg{protocol.Reply(m, protocol.TypeBar)}
	case protocol.TypeExec:
		a.sim.requests.Add(1)
		now := time.Now()
		execd := &protocol.Msg{Type: protocol.TypeExecd, TID: m.TID, Payload: &protocol.Execd{OK: true, Pid: 1, Time: now}}
		done := &protocol.Msg{Type: protocol.TypeExecDone, TID: m.TID, Payload: &protocol.ExecDone{Code: 0, Time: now}}
		if a.ack {
			a.seq++
			execd.Seq = a.seq
			a.seq++
			done.Seq = a.seq
		}
		return []*protocol.Msg{execd, done}
	case protocol.TypeLogLsReq:
		a.sim.requests.Add(1)
		r := protocol.Reply(m, protocol.TypeLogLsRep)
		r.Payload = &protocol.LogLs{Files: []protocol.LogFile{}}
		return []*protocol.Msg{r}
	}
	if r := protocol.Unsupported(m); r != nil {
		return []*protocol.Msg{r}
	}
	return nil
}
