package hub

import (
	"context"
	"fmt"
	"io"

	"github.com/agentfleet/libagent/protocol"
)

// waiter is a pending request. Its channel is written and closed only under
// the session's mutex, while the waiter is in the session's map; err is set
// before the close.
type waiter struct {
	ch     chan *protocol.Msg
	err    error
	stream bool
}

// Call sends msg to the agent and returns its one reply. msg.TID is set to
// a new tid when empty. Errors: ErrAgentNotFound, ErrAgentGone (the
// connection ended first), ErrQueueFull, ctx's error, or *AgentError when the
// agent answered with type 0 (the reply is returned too).
func (h *Hub) Call(ctx context.Context, agentID string, msg *protocol.Msg) (*protocol.Msg, error) {
	s, ok := h.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("call %s: agent %s: %w", msg.Type, agentID, ErrAgentNotFound)
	}
	return s.Call(ctx, msg)
}

// Stream sends msg to the agent and returns a Stream of its replies (exec:
// execd, exec_data…, exec_done). See Session.Stream.
func (h *Hub) Stream(ctx context.Context, agentID string, msg *protocol.Msg) (*Stream, error) {
	s, ok := h.Session(agentID)
	if !ok {
		return nil, fmt.Errorf("stream %s: agent %s: %w", msg.Type, agentID, ErrAgentNotFound)
	}
	return s.Stream(ctx, msg)
}

// Send queues msg for the agent without waiting for a reply.
func (h *Hub) Send(ctx context.Context, agentID string, msg *protocol.Msg) error {
	s, ok := h.Session(agentID)
	if !ok {
		return fmt.Errorf("send %s: agent %s: %w", msg.Type, agentID, ErrAgentNotFound)
	}
	return s.Send(ctx, msg)
}

// Call is Hub.Call on this session.
func (s *Session) Call(ctx context.Context, msg *protocol.Msg) (*protocol.Msg, error) {
	w := &waiter{ch: make(chan *protocol.Msg, 1)}
	if err := s.request(ctx, msg, w); err != nil {
		return nil, err
	}
	select {
	case rep, ok := <-w.ch:
		if !ok {
			return nil, fmt.Errorf("call %s (tid %s) to agent %s: %w", msg.Type, msg.TID, s.id, w.err)
		}
		if rep.Type == protocol.TypeError {
			return rep, s.AgentError(rep.TID, rep.ErrMsg, rep.ErrKind)
		}
		return rep, nil
	case <-ctx.Done():
		s.removeWaiter(msg.TID, w)
		return nil, fmt.Errorf("call %s (tid %s) to agent %s: %w", msg.Type, msg.TID, s.id, ctx.Err())
	}
}

// Stream sends msg and returns the stream of its replies. ctx bounds the
// sending only; Recv takes its own. The stream ends after a terminal reply
// (see Terminal) and must otherwise be closed by the caller.
func (s *Session) Stream(ctx context.Context, msg *protocol.Msg) (*Stream, error) {
	w := &waiter{ch: make(chan *protocol.Msg, s.hub.opts.StreamBuffer), stream: true}
	if err := s.request(ctx, msg, w); err != nil {
		return nil, err
	}
	return &Stream{s: s, w: w, tid: msg.TID}, nil
}

// request registers w under msg's tid (assigned when empty) and queues msg.
func (s *Session) request(ctx context.Context, msg *protocol.Msg, w *waiter) error {
	if msg.TID == "" {
		msg.TID = s.hub.newTID()
	}
	frame, err := protocol.Encode(msg)
	if err != nil {
		return fmt.Errorf("request to agent %s: %w", s.id, err)
	}
	if err := s.addWaiter(msg.TID, w); err != nil {
		return fmt.Errorf("request %s (tid %s) to agent %s: %w", msg.Type, msg.TID, s.id, err)
	}
	if err := s.enqueue(ctx, frame); err != nil {
		s.removeWaiter(msg.TID, w)
		return fmt.Errorf("request %s (tid %s) to agent %s: %w", msg.Type, msg.TID, s.id, err)
	}
	return nil
}

func (s *Session) addWaiter(tid string, w *waiter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrAgentGone
	}
	if _, dup := s.waiters[tid]; dup {
		return ErrDuplicateTID
	}
	if s.waiters == nil {
		s.waiters = make(map[string]*waiter)
	}
	s.waiters[tid] = w
	s.hub.m.pending.Inc()
	return nil
}

// removeWaiter forgets w if it is still pending.
func (s *Session) removeWaiter(tid string, w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters[tid] == w {
		s.dropWaiterLocked(tid)
	}
}

func (s *Session) dropWaiterLocked(tid string) {
	delete(s.waiters, tid)
	if len(s.waiters) == 0 {
		s.waiters = nil
	}
	s.hub.m.pending.Dec()
}

// deliver hands msg to the waiter of its tid without blocking. It reports
// false when there is none, or when a stream waiter's buffer is full: that
// stream then fails with ErrStreamOverflow and msg goes the handler's way.
func (s *Session) deliver(msg *protocol.Msg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiters[msg.TID]
	if w == nil {
		return false
	}
	if !w.stream {
		w.ch <- msg // room for exactly one reply; the waiter leaves now
		s.dropWaiterLocked(msg.TID)
		return true
	}
	select {
	case w.ch <- msg:
		if Terminal(msg) {
			w.err = io.EOF
			close(w.ch)
			s.dropWaiterLocked(msg.TID)
		}
		return true
	default:
		w.err = ErrStreamOverflow
		close(w.ch)
		s.dropWaiterLocked(msg.TID)
		s.hub.m.dropped.WithLabelValues(reasonOverflow).Inc()
		return false
	}
}

// Terminal reports whether a reply ends its stream: type 0, exec_done,
// pty_exit, execd / pty_opened / download_rep / log_download_info with ok
// false, download_error, and the single-reply types (bar, ls_rep,
// upload_rep, ps_rep, exec_kill_rep). Streams whose end only the caller
// knows (a v1 download after its last block) are ended with Stream.Close.
func Terminal(m *protocol.Msg) bool {
	switch m.Type {
	case protocol.TypeError, protocol.TypeExecDone, protocol.TypeDownloadError,
		protocol.TypeBar, protocol.TypeLsRep, protocol.TypeUploadRep,
		protocol.TypePsRep, protocol.TypeExecKillRep, protocol.TypePtyExit:
		return true
	case protocol.TypeExecd:
		return m.Execd() != nil && !m.Execd().OK
	case protocol.TypePtyOpened:
		return m.PtyOpened() != nil && !m.PtyOpened().OK
	case protocol.TypeDownloadRep:
		return m.DownloadRep() != nil && !m.DownloadRep().OK
	case protocol.TypeLogDownloadInfo:
		return m.LogDInfo() != nil && !m.LogDInfo().OK
	}
	return false
}

// Stream is the reply side of a request answered by several messages. One
// goroutine calls Recv; Close may be called from any goroutine, any number
// of times.
type Stream struct {
	s   *Session
	w   *waiter
	tid string
}

// TID returns the request's tid.
func (st *Stream) TID() string { return st.tid }

// Recv returns the next reply. After the terminal reply it returns io.EOF;
// a type 0 reply comes with an *AgentError. Other errors: ErrAgentGone,
// ErrStreamOverflow, ctx's error (the stream stays open).
func (st *Stream) Recv(ctx context.Context) (*protocol.Msg, error) {
	select {
	case m, ok := <-st.w.ch:
		if !ok {
			if st.w.err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("stream %s from agent %s: %w", st.tid, st.s.id, st.w.err)
		}
		if m.Type == protocol.TypeError {
			return m, st.s.AgentError(m.TID, m.ErrMsg, m.ErrKind)
		}
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("stream %s from agent %s: %w", st.tid, st.s.id, ctx.Err())
	}
}

// Close stops waiting for replies; later ones go to the type's handler.
func (st *Stream) Close() { st.s.removeWaiter(st.tid, st.w) }

// Buffered returns how many replies wait for Recv now.
func (st *Stream) Buffered() int { return len(st.w.ch) }
