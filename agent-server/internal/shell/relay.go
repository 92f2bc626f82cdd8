package shell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
)

// Result is how a relayed session ended.
type Result struct {
	Outcome string // Outcome* constant
	// Code is the exit code from the agent's pty_exit; -1 when none came.
	Code int
	// Msg says why, when the session did not simply exit (the agent's
	// pty_exit msg, or the error).
	Msg      string
	BytesIn  int64 // keystrokes relayed to the agent
	BytesOut int64 // output relayed to the client
	Duration time.Duration
}

// LogValue is the result in log lines.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(slog.String("outcome", r.Outcome), slog.Int("code", r.Code), slog.String("msg", r.Msg),
		slog.Int64("bytes_in", r.BytesIn), slog.Int64("bytes_out", r.BytesOut), slog.Duration("duration", r.Duration))
}

// Close codes sent to the client.
const (
	closeNormal   = websocket.CloseNormalClosure     // 1000, after exit
	closeGoingAwy = websocket.CloseGoingAway         // 1001, server shutdown
	closePolicy   = websocket.ClosePolicyViolation   // 1008, bad client message
	closeInternal = websocket.CloseInternalServerErr // 1011, agent side trouble
)

// relay is one session being served.
type relay struct {
	s   *Session
	o   *Options
	ws  *websocket.Conn
	log *slog.Logger

	wmu    sync.Mutex    // data and text frames to the client
	credit chan struct{} // input credits granted by the agent
	stop   chan struct{} // closed when the relay ends: the client loop stops waiting

	bytesIn, bytesOut atomic.Int64

	emu       sync.Mutex
	clientErr error // why the client loop ended
}

// errBadControl marks a bad client message; its text goes to the client.
type errBadControl struct{ msg string }

func (e *errBadControl) Error() string { return e.msg }

// Serve relays the session between the client ws and the agent until it
// ends, closes ws, and returns how it ended. Serve owns ws.
func (s *Session) Serve(ws *websocket.Conn) Result {
	res := Result{Outcome: OutcomeError, Code: -1, Msg: "session already served"}
	served := false
	s.once.Do(func() { served = true })
	if !served {
		_ = ws.Close()
		return res
	}
	svc := s.svc
	svc.wg.Add(1)
	defer svc.wg.Done()
	svc.m.open.Inc()
	defer svc.m.open.Dec()

	r := &relay{
		s: s, o: &svc.o, ws: ws, log: svc.log.With("agent", s.hs.ID(), "tid", s.tid),
		credit: make(chan struct{}, s.inWin),
		stop:   make(chan struct{}),
	}
	for range s.inWin {
		r.credit <- struct{}{}
	}
	ws.SetReadLimit(MaxClientFrame)
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(r.o.DeadAfter)) })

	// The client loop's end (the client left, or sent a bad message)
	// cancels the agent side's wait.
	clientCtx, clientGone := context.WithCancel(svc.ctx)
	defer clientGone()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer clientGone()
		err := r.readClient(clientCtx)
		r.emu.Lock()
		r.clientErr = err
		r.emu.Unlock()
	})
	wg.Go(r.ping)

	res = r.relayAgent(clientCtx)
	close(r.stop)
	r.finish(res)
	wg.Wait()
	_ = ws.Close()
	res.BytesIn, res.BytesOut = r.bytesIn.Load(), r.bytesOut.Load()
	res.Duration = time.Since(s.begin)
	svc.m.sessions.WithLabelValues(res.Outcome).Inc()
	r.log.Debug("shell: session ended", "result", res)
	return res
}

// relayAgent copies the agent's messages to the client until the session
// has ended on the agent, or cannot go on.
func (r *relay) relayAgent(clientCtx context.Context) Result {
	s := r.s
	st := s.st
	defer st.Close()
	consumed := 0 // output messages written to the client, not yet acked
	for {
		m, err := st.Recv(clientCtx)
		if err != nil {
			if clientCtx.Err() != nil {
				return r.closeAgent()
			}
			return r.agentFailed(err)
		}
		switch m.Type {
		case protocol.TypePtyOutput:
			b, err := m.PtyData().Bytes()
			if err != nil {
				res := r.closeAgent()
				res.Outcome, res.Msg = OutcomeError, "the agent sent bad output: "+err.Error()
				return res
			}
			if err := r.write(websocket.BinaryMessage, b); err != nil {
				r.log.Debug("shell: client write failed", "err", err)
				return r.closeAgent()
			}
			r.bytesOut.Add(int64(len(b)))
			s.svc.m.bytes.WithLabelValues("out").Add(float64(len(b)))
			consumed++
			if consumed >= max(1, r.o.Window/2) || st.Buffered() == 0 {
				if err := r.send(clientCtx, &protocol.Msg{Type: protocol.TypePtyAck, Payload: &protocol.PtyAck{N: uint32(consumed)}}); err != nil && clientCtx.Err() == nil {
					return r.agentFailed(err)
				}
				consumed = 0
			}
		case protocol.TypePtyAck:
			r.grant(m.PtyAck().N)
		case protocol.TypePtyExit:
			return Result{Outcome: OutcomeExited, Code: m.PtyExit().Code, Msg: m.PtyExit().Msg}
		default:
			r.log.Warn("shell: unexpected message from the agent dropped", "type", m.Type)
		}
	}
}

// grant adds n input credits, up to the window.
func (r *relay) grant(n uint32) {
	for range min(n, uint32(r.s.inWin)) {
		select {
		case r.credit <- struct{}{}:
		default:
			return
		}
	}
}

// closeAgent ends the session on the agent (the client is gone, sent a bad
// message, or the server shuts down) and waits for its pty_exit, dropping
// the output still on the way.
func (r *relay) closeAgent() Result {
	res := Result{Outcome: OutcomeClientClosed, Code: -1}
	switch {
	case r.s.svc.ctx.Err() != nil:
		res.Outcome, res.Msg = OutcomeShutdown, "server shutting down"
	default:
		var bad *errBadControl
		if errors.As(r.clientErrNow(), &bad) {
			res.Outcome, res.Msg = OutcomeError, bad.msg
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.o.CloseWait)
	defer cancel()
	if err := r.send(ctx, &protocol.Msg{Type: protocol.TypePtyClose}); err != nil {
		if res.Msg == "" {
			res.Msg = "pty_close not sent: " + err.Error()
		}
		return res
	}
	for {
		m, err := r.s.st.Recv(ctx)
		if err != nil {
			if res.Msg == "" {
				res.Msg = "no pty_exit after pty_close: " + err.Error()
			}
			return res
		}
		if m.Type == protocol.TypePtyExit {
			res.Code = m.PtyExit().Code
			if res.Msg == "" {
				res.Msg = m.PtyExit().Msg
			}
			return res
		}
	}
}

// clientErrNow returns why the client loop ended, nil while it runs.
func (r *relay) clientErrNow() error {
	r.emu.Lock()
	defer r.emu.Unlock()
	return r.clientErr
}

// agentFailed is the result of an agent-side failure.
func (r *relay) agentFailed(err error) Result {
	var ae *hub.AgentError
	switch {
	case errors.Is(err, hub.ErrAgentGone):
		return Result{Outcome: OutcomeAgentGone, Code: -1, Msg: "agent went away: its connection closed"}
	case errors.As(err, &ae):
		return Result{Outcome: OutcomeError, Code: -1, Msg: "agent error: " + ae.Msg}
	case errors.Is(err, io.EOF):
		return Result{Outcome: OutcomeError, Code: -1, Msg: "the agent ended the session without pty_exit"}
	case errors.Is(err, hub.ErrStreamOverflow):
		r.s.svc.sendClose(r.s.hs, r.s.tid)
		return Result{Outcome: OutcomeError, Code: -1, Msg: "the agent sent more output than its window"}
	}
	r.s.svc.sendClose(r.s.hs, r.s.tid)
	return Result{Outcome: OutcomeError, Code: -1, Msg: err.Error()}
}

// send sends m for the session to the agent.
func (r *relay) send(ctx context.Context, m *protocol.Msg) error {
	m.TID = r.s.tid
	return r.s.hs.Send(ctx, m)
}

// write writes one frame to the client within WriteTimeout.
func (r *relay) write(typ int, b []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_ = r.ws.SetWriteDeadline(time.Now().Add(r.o.WriteTimeout))
	return r.ws.WriteMessage(typ, b)
}

// finish tells the client how the session ended and closes the
// connection, after the client's close reply (or CloseWait).
func (r *relay) finish(res Result) {
	var frame any
	code, reason := closeNormal, ""
	switch res.Outcome {
	case OutcomeExited:
		frame = exitFrame{Type: "exit", Code: res.Code, Msg: res.Msg}
	case OutcomeClientClosed:
		// Gone, or closing: a close frame is all it may still read.
	case OutcomeShutdown:
		frame, code, reason = errorFrame{Type: "error", Msg: res.Msg}, closeGoingAwy, "server shutting down"
	default:
		frame, code = errorFrame{Type: "error", Msg: res.Msg}, closeInternal
		var bad *errBadControl
		if errors.As(r.clientErrNow(), &bad) && res.Msg == bad.msg {
			code = closePolicy
		}
	}
	if frame != nil {
		b, _ := json.Marshal(frame)
		if err := r.write(websocket.TextMessage, b); err != nil {
			r.log.Debug("shell: final frame not written", "err", err)
		}
	}
	msg := websocket.FormatCloseMessage(code, reason)
	if err := r.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(r.o.WriteTimeout)); err == nil {
		// The client answers the close; the client loop returns on it.
		_ = r.ws.SetReadDeadline(time.Now().Add(r.o.CloseWait))
	} else {
		_ = r.ws.Close()
	}
}

type exitFrame struct {
	Type string `json:"type"`
	Code int    `json:"code"`
	Msg  string `json:"msg,omitempty"`
}

type errorFrame struct {
	Type string `json:"type"`
	Msg  string `json:"msg"`
}

// readClient reads the client's frames until it leaves, sends a bad
// message or the relay ends: keystrokes go to the agent in chunks of at
// most protocol.PtyMaxData, one input credit each; resizes go as
// pty_resize.
func (r *relay) readClient(ctx context.Context) error {
	for {
		_ = r.ws.SetReadDeadline(time.Now().Add(r.o.DeadAfter))
		typ, data, err := r.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		select {
		case <-r.stop:
			continue // ending: read until the close reply
		default:
		}
		switch typ {
		case websocket.BinaryMessage:
			for len(data) > 0 {
				n := min(len(data), protocol.PtyMaxData)
				select {
				case <-r.credit:
				case <-r.stop:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
				if err := r.send(ctx, &protocol.Msg{Type: protocol.TypePtyInput, Payload: protocol.NewPtyData(data[:n])}); err != nil {
					return fmt.Errorf("send input to the agent: %w", err)
				}
				r.bytesIn.Add(int64(n))
				r.s.svc.m.bytes.WithLabelValues("in").Add(float64(n))
				data = data[n:]
			}
		case websocket.TextMessage:
			c, err := ParseControl(data)
			if err != nil {
				return &errBadControl{msg: err.Error()}
			}
			switch c.Type {
			case "resize":
				if err := r.send(ctx, &protocol.Msg{Type: protocol.TypePtyResize, Payload: &protocol.PtyResize{Cols: c.Cols, Rows: c.Rows}}); err != nil {
					return fmt.Errorf("send resize to the agent: %w", err)
				}
			default:
				r.log.Debug("shell: unknown control message ignored", "type", c.Type)
			}
		}
	}
}

// ping pings the client every PingInterval until the relay ends.
func (r *relay) ping() {
	t := time.NewTicker(r.o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := r.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(r.o.WriteTimeout)); err != nil {
				r.log.Debug("shell: ping failed", "err", err)
				return
			}
		}
	}
}

// Control is a client control message (a JSON text frame).
type Control struct {
	Type string // "resize"; others are ignored
	Cols uint16 // resize: 1…protocol.PtyMaxSize
	Rows uint16
}

// ParseControl parses a client's text frame: a JSON object with a string
// "type"; a "resize" needs integer "cols" and "rows" in 1…4096. The error
// text is meant for the client.
func ParseControl(b []byte) (Control, error) {
	var raw struct {
		Type *string          `json:"type"`
		Cols *json.RawMessage `json:"cols"`
		Rows *json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Control{}, fmt.Errorf("invalid control message: not a JSON object with a string \"type\": %v", err)
	}
	if raw.Type == nil {
		return Control{}, errors.New(`invalid control message: missing "type"`)
	}
	c := Control{Type: *raw.Type}
	if c.Type != "resize" {
		return c, nil
	}
	size := func(name string, v *json.RawMessage) (uint16, error) {
		if v == nil {
			return 0, fmt.Errorf("invalid resize: missing %q", name)
		}
		var n uint16
		if err := json.Unmarshal(*v, &n); err != nil || n < 1 || n > protocol.PtyMaxSize {
			return 0, fmt.Errorf("invalid resize: %q must be an integer 1…%d, got %s", name, protocol.PtyMaxSize, truncate(string(*v), 32))
		}
		return n, nil
	}
	var err error
	if c.Cols, err = size("cols", raw.Cols); err != nil {
		return Control{}, err
	}
	if c.Rows, err = size("rows", raw.Rows); err != nil {
		return Control{}, err
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
