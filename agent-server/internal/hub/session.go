package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"
)

// Session is one agent connection. Its methods are safe for concurrent use.
// The zero-cost idle state is deliberate: no writer goroutine, no maps, no
// timers until traffic needs them.
type Session struct {
	hub         *Hub
	conn        *websocket.Conn
	fc          *frameConn // under conn; owned by the reader
	id          string
	come        *protocol.Come // read-only after the handshake
	jr          *journal       // ack.v1 state; nil when not in use
	connectedAt int64          // unix ns, hub clock
	lastSeen    atomic.Int64   // unix ns, real clock
	caps        capSet
	claimToken  atomic.Int64 // Options.Claim's token (set once the session is visible)

	mu          sync.Mutex
	queue       [][]byte           // encoded frames waiting for the writer
	queueBytes  int64              // bytes in queue (see pushLocked, popLocked, dropQueueLocked)
	room        chan struct{}      // closed by the writer when it frees a slot; nil unless someone waits
	waiters     map[string]*waiter // pending requests by tid; nil when none
	done        chan struct{}      // closed when the session has fully ended; made on demand
	closeReason string
	ackSeq      uint64 // cumulative ack the writer must send when ackDirty
	ackDirty    bool
	writing     bool // a writer goroutine owns the connection's write side
	closed      bool // no more sends
	finished    bool // teardown complete
}

// SessionInfo is a snapshot of a session, for listings.
type SessionInfo struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"` // come.name
	Version     string            `json:"version"`
	IP          string            `json:"ip"` // come.ip, as the agent sees it
	RemoteAddr  string            `json:"remote_addr"`
	MAC         string            `json:"mac"`
	OS          string            `json:"os"`
	Platform    string            `json:"platform"`
	Arch        string            `json:"arch"`
	HostName    string            `json:"host_name"`
	ConnectedAt time.Time         `json:"connected_at"`
	LastSeen    time.Time         `json:"last_seen"`
	Caps        []string          `json:"caps"` // extensions in use on this connection
	Labels      map[string]string `json:"labels,omitempty"`
	Pending     int               `json:"pending"` // requests waiting for the agent's reply, running execs included
}

// ID returns the agent id.
func (s *Session) ID() string { return s.id }

// ClaimToken returns the token Options.Claim returned for the session (0
// without Claim): the fencing token of its ownership in a cluster.
func (s *Session) ClaimToken() int64 { return s.claimToken.Load() }

// SetClaimToken replaces the token, when the session's ownership was taken
// again (a cluster member that rejoined).
func (s *Session) SetClaimToken(tok int64) { s.claimToken.Store(tok) }

// Come returns the agent's come payload. The caller must not modify it.
func (s *Session) Come() *protocol.Come { return s.come }

// HasCap reports whether extension c is in use on this connection.
func (s *Session) HasCap(c string) bool { return s.caps.has(c) }

// Caps returns the extensions in use on this connection.
func (s *Session) Caps() []string { return s.caps.list() }

// Journal returns the agent's journal id (ack.v1), "" when not in use.
func (s *Session) Journal() string {
	if s.jr == nil {
		return ""
	}
	return s.jr.id
}

// Info returns a snapshot of the session.
func (s *Session) Info() SessionInfo {
	c := s.come
	info := SessionInfo{
		ID:          s.id,
		Type:        c.Name,
		Version:     c.Version,
		MAC:         c.MAC,
		OS:          c.OS,
		Platform:    c.Platform,
		Arch:        c.Arch,
		HostName:    c.HostName,
		RemoteAddr:  s.conn.RemoteAddr().String(),
		ConnectedAt: time.Unix(0, s.connectedAt),
		LastSeen:    time.Unix(0, s.lastSeen.Load()),
		Caps:        s.caps.list(),
		Labels:      maps.Clone(c.Labels),
	}
	if c.IP != nil {
		info.IP = c.IP.String()
	}
	s.mu.Lock()
	info.Pending = len(s.waiters)
	s.mu.Unlock()
	return info
}

// Close disconnects the agent (it will reconnect with backoff).
func (s *Session) Close() { s.closeWith(reasonKicked) }

// Replaced ends the session because the agent connected to another server
// of the cluster (as a local replacement does) and waits until it has
// ended, at most d.
func (s *Session) Replaced(d time.Duration) {
	s.closeWith(reasonReplaced)
	s.waitDone(d)
}

// Send queues msg for the agent without waiting for a reply (requests that
// have none, e.g. hm_change_collect_status). It waits for room in a full
// queue as described in the package doc.
func (s *Session) Send(ctx context.Context, msg *protocol.Msg) error {
	frame, err := protocol.Encode(msg)
	if err != nil {
		return fmt.Errorf("send to agent %s: %w", s.id, err)
	}
	if err := s.enqueue(ctx, frame); err != nil {
		return fmt.Errorf("send %s to agent %s: %w", msg.Type, s.id, err)
	}
	return nil
}

// start runs the handshake and OnConnect, then hands the connection (and
// the hub WaitGroup count taken by ServeHTTP) to the reader goroutine.
func (s *Session) start() {
	h := s.hub
	if reason := s.handshake(); reason != "" {
		h.m.handshakes.WithLabelValues("rejected", reason).Inc()
		s.mu.Lock()
		s.dropQueueLocked() // the handshake frame, if it got that far
		s.mu.Unlock()
		h.mu.Lock()
		delete(h.pending, s)
		h.mu.Unlock()
		s.conn.Close()
		h.wg.Done()
		return
	}
	h.m.handshakes.WithLabelValues("ok", reasonOK).Inc()
	h.m.connected.WithLabelValues(s.come.Name, s.come.Version).Inc()
	if fn := h.opts.OnConnect; fn != nil {
		func() {
			defer h.recoverLog("OnConnect", s)
			fn(s)
		}()
	}
	// The handshake reply goes out only now, so that the agent is known
	// (persisted by OnConnect) before it hears ok.
	s.mu.Lock()
	s.writing = false
	s.startWriterLocked()
	s.mu.Unlock()
	s.conn.SetPingHandler(s.onPing)
	s.conn.SetPongHandler(func(string) error { s.touch(); return nil })
	s.touch()
	go s.reader()
}

// touch records traffic: any frame pushes the dead-peer deadline out.
func (s *Session) touch() {
	now := realNow()
	s.lastSeen.Store(now.UnixNano())
	_ = s.conn.SetReadDeadline(now.Add(s.hub.opts.DeadAfter))
}

func (s *Session) onPing(data string) error {
	s.touch()
	err := s.conn.WriteControl(websocket.PongMessage, []byte(data), realNow().Add(s.hub.opts.WriteTimeout))
	if err != nil {
		// A broken connection shows up on the next read; a pong that cannot
		// be written in time means a stuck peer, which the writer or the
		// dead-peer deadline will evict.
		s.hub.logLimited("hub: pong failed", "agent", s.id, "err", err)
	}
	return nil
}

// reader is the connection's one reader. It reads and dispatches one
// message, then continues on a fresh goroutine and returns: decoding and
// handlers grow a goroutine's stack, and an idle connection should wait
// with the smallest one (the runtime shrinks stacks only at GC, halving).
// There is never more than one reader: the next starts after this one is
// done with the connection.
func (s *Session) reader() {
	defer s.hub.wg.Done()
	// Keep this frame small: it is on the stack of every idle connection.
	if fc := s.fc; fc.raw != nil && fc.idle() {
		if err := fc.waitReadable(); err != nil {
			s.teardown(s.readErrReason(err, reasonDeadPeer))
			return
		}
		if s.control() {
			s.hub.wg.Add(1)
			go s.reader()
			return
		}
	}
	_, r, err := s.conn.NextReader()
	if err != nil {
		s.teardown(s.readErrReason(err, reasonDeadPeer))
		return
	}
	if !s.handle(r) {
		return
	}
	s.hub.wg.Add(1) // this goroutine's count is still held: safe against Wait
	go s.reader()
}

// control reads what arrived and consumes the pings and pongs at its head
// (the keepalive traffic of an idle agent). It reports true when nothing
// else is buffered, so the reader can go back to waiting.
//
//go:noinline
func (s *Session) control() bool {
	fc := s.fc
	fc.fill()
	for {
		op, payload, ok := fc.takeControl()
		if !ok {
			break
		}
		s.touch()
		if op == 0x9 {
			// Inline: WriteControl is safe next to the writer, and the
			// stack this grows is dropped by the reader's hop.
			if err := s.conn.WriteControl(websocket.PongMessage, payload, realNow().Add(s.hub.opts.WriteTimeout)); err != nil {
				s.hub.logLimited("hub: pong failed", "agent", s.id, "err", err)
			}
		}
	}
	return fc.idle()
}

// handle reads the rest of one message and dispatches it. It reports
// false when the session has ended.
//
//go:noinline
func (s *Session) handle(r io.Reader) bool {
	h := s.hub
	data, err := io.ReadAll(r)
	if err != nil {
		s.teardown(s.readErrReason(err, reasonDeadPeer))
		return false
	}
	s.touch()
	h.m.msgsIn.Inc()
	h.m.bytesIn.Add(float64(len(data)))
	msg, err := protocol.Decode(data)
	if err != nil {
		h.m.dropped.WithLabelValues(reasonBadMessage).Inc()
		h.logLimited("hub: bad message from agent", "agent", s.id, "err", err)
		return true
	}
	if reason := s.dispatch(msg); reason != "" {
		s.closeWith(reason)
		s.teardown(reason)
		return false
	}
	return true
}

// readErrReason classifies a read error; timeouts count as timeoutReason.
func (s *Session) readErrReason(err error, timeoutReason string) string {
	s.mu.Lock()
	r := s.closeReason
	s.mu.Unlock()
	if r != "" {
		return r // we closed it, for this reason
	}
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return reasonFrameTooBig
	case errors.As(err, &ce), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return reasonClosed
	case errors.As(err, &ne) && ne.Timeout():
		return timeoutReason
	}
	return reasonReadError
}

// dispatch routes one message; a non-empty result closes the connection.
func (s *Session) dispatch(msg *protocol.Msg) string {
	h := s.hub
	if msg.Seq != 0 && s.jr != nil && msg.Type.Journaled() {
		return s.journaled(msg)
	}
	if msg.TID != "" && s.deliver(msg) {
		return ""
	}
	fn := h.handler(msg.Type)
	if fn == nil {
		h.m.dropped.WithLabelValues(reasonUnhandled).Inc()
		h.logLimited("hub: message without waiter or handler dropped", "agent", s.id, "type", msg.Type.String(), "tid", msg.TID)
		return ""
	}
	func() {
		defer h.recoverLog("handler "+msg.Type.String(), s)
		fn(s, msg)
	}()
	return ""
}

// enqueue adds a frame to the send queue, waiting for room up to ctx and
// WriteTimeout; a queue still full then disconnects the agent.
func (s *Session) enqueue(ctx context.Context, frame []byte) error {
	var timer *time.Timer
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrAgentGone
		}
		limit := s.fullLocked(int64(len(frame)))
		if limit == "" {
			s.pushLocked(frame)
			s.startWriterLocked()
			s.mu.Unlock()
			return nil
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(s.hub.opts.WriteTimeout)
			defer timer.Stop()
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			s.hub.m.queueFull.WithLabelValues(limit).Inc()
			s.hub.m.dropped.WithLabelValues(reasonQueueFull).Inc()
			s.closeWith(reasonQueueFull)
			return ErrQueueFull
		}
	}
}

// fullLocked returns the bound (limitMessages, limitBytes) that leaves no
// room for a frame of n bytes, or "" when it fits. An empty queue takes any
// frame, so that one larger than SendQueueBytes can still be sent. s.mu is
// held.
func (s *Session) fullLocked(n int64) string {
	o := &s.hub.opts
	switch {
	case len(s.queue) >= o.SendQueue:
		return limitMessages
	case len(s.queue) > 0 && s.queueBytes+n > o.SendQueueBytes:
		return limitBytes
	}
	return ""
}

// pushLocked appends frame to the send queue. s.mu is held.
func (s *Session) pushLocked(frame []byte) {
	s.queue = append(s.queue, frame)
	s.queueBytes += int64(len(frame))
	s.hub.m.queueBytes.Add(float64(len(frame)))
}

// popLocked takes the first frame off the send queue. s.mu is held and the
// queue is not empty.
func (s *Session) popLocked() []byte {
	frame := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // idle connections hold no queue array
	}
	s.queueBytes -= int64(len(frame))
	s.hub.m.queueBytes.Sub(float64(len(frame)))
	return frame
}

// dropQueueLocked empties the send queue (the connection is ending; its
// frames are never sent). s.mu is held.
func (s *Session) dropQueueLocked() {
	s.queue = nil
	s.hub.m.queueBytes.Sub(float64(s.queueBytes))
	s.queueBytes = 0
}

// startWriterLocked starts the writer unless one runs. s.mu is held.
func (s *Session) startWriterLocked() {
	if s.writing {
		return
	}
	s.writing = true
	s.hub.wg.Add(1)
	go s.writeLoop()
}

// writeLoop writes queued frames and pending acks, and exits when there is
// nothing left: an idle connection has no writer goroutine.
func (s *Session) writeLoop() {
	h := s.hub
	defer h.wg.Done()
	for {
		s.mu.Lock()
		if s.closed {
			s.writing = false
			s.dropQueueLocked()
			s.mu.Unlock()
			return
		}
		var frame []byte
		switch {
		case s.ackDirty:
			s.ackDirty = false
			frame = ackFrame(s.ackSeq)
		case len(s.queue) > 0:
			frame = s.popLocked()
			if s.room != nil {
				close(s.room)
				s.room = nil
			}
		default:
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		_ = s.conn.SetWriteDeadline(realNow().Add(h.opts.WriteTimeout))
		if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			reason := reasonWriteError
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				reason = reasonWriteTimeout
			}
			s.closeWith(reason)
			s.mu.Lock()
			s.writing = false
			s.dropQueueLocked()
			s.mu.Unlock()
			return
		}
		h.m.msgsOut.Inc()
		h.m.bytesOut.Add(float64(len(frame)))
	}
}

func ackFrame(seq uint64) []byte {
	b, _ := protocol.Encode(&protocol.Msg{Type: protocol.TypeAck, Payload: &protocol.Ack{Seq: seq}})
	return b
}

// closeWith closes the connection, recording why (first reason wins). The
// reader then tears the session down.
func (s *Session) closeWith(reason string) {
	s.mu.Lock()
	if s.closeReason == "" {
		s.closeReason = reason
	}
	s.closed = true
	s.mu.Unlock()
	s.conn.Close()
}

// goAway sends a going-away close frame, then closes.
func (s *Session) goAway() { s.goAwayWith("server shutting down", reasonShutdown) }

func (s *Session) goAwayWith(text, reason string) {
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, text)
	_ = s.conn.WriteControl(websocket.CloseMessage, msg, realNow().Add(time.Second))
	s.closeWith(reason)
}

// LeaseLost ends the session because this cluster member's lease has
// ended: the agent is told to go away (close 1001) and reconnects, to a
// member that can hold its session.
func (s *Session) LeaseLost() {
	s.goAwayWith("cluster member lost its lease: reconnect", reasonLeaseLost)
}

// Drain tells the agent to go away (1001) because this cluster member is
// draining: it reconnects, and a handshake here is redirected elsewhere.
func (s *Session) Drain() {
	s.goAwayWith("cluster member draining: reconnect", reasonDraining)
}

// waitDone waits until the session has fully ended, at most d.
func (s *Session) waitDone(d time.Duration) {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return
	}
	if s.done == nil {
		s.done = make(chan struct{})
	}
	done := s.done
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// teardown ends a registered session: pending requests fail with
// ErrAgentGone at once, the id is freed, acks are persisted, hooks run.
func (s *Session) teardown(reason string) {
	h := s.hub
	s.mu.Lock()
	if s.closeReason == "" {
		s.closeReason = reason
	}
	reason = s.closeReason
	s.closed = true
	ws := s.waiters
	s.waiters = nil
	s.dropQueueLocked()
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	s.mu.Unlock()
	s.conn.Close()

	for _, w := range ws {
		w.err = ErrAgentGone
		close(w.ch)
		h.m.pending.Dec()
	}
	h.mu.Lock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
	h.mu.Unlock()
	if s.jr != nil {
		s.flushAck()
	}
	h.m.connected.WithLabelValues(s.come.Name, s.come.Version).Dec()
	h.m.disconnects.WithLabelValues(reason).Inc()
	h.log.Debug("hub: agent disconnected", "agent", s.id, "reason", reason)
	if fn := h.opts.OnDisconnect; fn != nil {
		func() {
			defer h.recoverLog("OnDisconnect", s)
			fn(s, reason)
		}()
	}
	s.mu.Lock()
	s.finished = true
	if s.done != nil {
		close(s.done)
	}
	s.mu.Unlock()
}

// capSet is the set of known extensions in use, as bits.
type capSet uint8

var knownCaps = [...]string{protocol.CapAuth, protocol.CapAck, protocol.CapBulk, protocol.CapStream, protocol.CapErrKind, protocol.CapPty, protocol.CapInstall, protocol.CapUpgrade}

func makeCapSet(caps []string) capSet {
	var cs capSet
	for i, c := range knownCaps {
		if protocol.HasCap(caps, c) {
			cs |= 1 << i
		}
	}
	return cs
}

func (cs capSet) has(c string) bool {
	for i, k := range knownCaps {
		if k == c {
			return cs&(1<<i) != 0
		}
	}
	return false
}

func (cs capSet) list() []string {
	var out []string
	for i, k := range knownCaps {
		if cs&(1<<i) != 0 {
			out = append(out, k)
		}
	}
	return out
}
