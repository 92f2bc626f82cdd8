package libagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/agentfleet/libagent/journal"
	"github.com/agentfleet/libagent/protocol"
)

// Replier sends the answers to one request. Every message it sends gets the
// request's tid. It may be used from several goroutines and after the
// handler returned (for example by a process waiter), until the task's
// last message.
type Replier interface {
	// Reply sends m now. It blocks while the send queue is full (until ctx
	// is done) and returns ErrNotConnected when the connection is down: the
	// message is lost, as in v1.
	Reply(ctx context.Context, m *protocol.Msg) error
	// ReplyReliable journals m on disk and sends it with a sequence number
	// when the server acknowledges results (protocol.CapAck); the journal
	// replays it after a reconnect until it is acked, so it is delivered
	// even when the connection drops. It blocks while the journal is full,
	// and while the journal's disk is full (retried every 500 ms; logged).
	// Without CapAck it behaves like Reply.
	ReplyReliable(ctx context.Context, m *protocol.Msg) error
}

// task is a running handler, by tid.
type task struct{ cancel context.CancelFunc }

type replier struct {
	rt  *Runtime
	tid string
}

func (r replier) Reply(ctx context.Context, m *protocol.Msg) error {
	m.TID = r.tid
	return r.rt.Push(ctx, m)
}

func (r replier) ReplyReliable(ctx context.Context, m *protocol.Msg) error {
	m.TID = r.tid
	return r.rt.pushReliable(ctx, m)
}

// Replier returns a Replier for task tid outside the handler that owns
// it: for an agent that, after a restart, reports on tasks its previous
// process started (their handlers died with it). Replies that should
// survive a lost connection go through ReplyReliable once WaitConnected
// returned: before the first handshake the runtime does not know yet
// whether the server acks results.
func (rt *Runtime) Replier(tid string) Replier { return replier{rt: rt, tid: tid} }

// dispatch runs the handler for m on the worker pool. It never blocks the
// reader: when every worker is busy the request is answered with an error.
func (rt *Runtime) dispatch(ctx context.Context, s *session, m *protocol.Msg) {
	switch m.Type {
	case protocol.TypeAck:
		if rt.jr != nil {
			rt.ack(m.Ack().Seq)
		}
		return
	case protocol.TypeHandshake:
		return // a late or repeated handshake carries nothing for us
	}
	h, ok := rt.handlers[m.Type]
	if !ok {
		if e := protocol.Unsupported(m); e != nil {
			rt.reply(ctx, s, e)
		} else {
			rt.log.Debug("push of unhandled type dropped", "type", m.Type)
		}
		return
	}
	if h.inline {
		if err := rt.runHandler(rt.ctx, h.fn, m); err != nil {
			if m.TID != "" {
				rt.reply(ctx, s, protocol.Errorf(m.TID, "%s", err.Error()))
			} else {
				rt.log.Warn("handler failed", "type", m.Type, "err", err)
			}
		}
		return
	}
	select {
	case rt.pool <- struct{}{}:
	default:
		rt.st.busyRejected.Add(1)
		rt.log.Warn("all handler workers busy, request refused", "type", m.Type, "tid", m.TID, "workers", cap(rt.pool))
		if m.TID != "" {
			rt.reply(ctx, s, protocol.Errorf(m.TID, "agent busy: %d requests running", cap(rt.pool)))
		}
		return
	}
	hctx, cancel := context.WithCancel(rt.ctx)
	if h.timeout > 0 {
		hctx, cancel = context.WithTimeout(rt.ctx, h.timeout)
	}
	if h.connScoped {
		rt.wg.Go(func() {
			select {
			case <-s.done:
				cancel()
			case <-hctx.Done():
			}
		})
	}
	t := &task{cancel: cancel}
	if m.TID != "" {
		rt.mu.Lock()
		if old, dup := rt.tasks[m.TID]; dup {
			old.cancel() // a resent request replaces the running one
		}
		rt.tasks[m.TID] = t
		rt.mu.Unlock()
	}
	rt.wg.Go(func() {
		defer func() { <-rt.pool }()
		defer func() {
			if m.TID != "" {
				rt.mu.Lock()
				// Only remove our own entry: a resent request may own the tid now.
				if rt.tasks[m.TID] == t {
					delete(rt.tasks, m.TID)
				}
				rt.mu.Unlock()
			}
			cancel()
		}()
		err := rt.runHandler(hctx, h.fn, m)
		if err != nil && m.TID != "" {
			// hctx may be what failed (timeout, kill): answer on a fresh one.
			ectx, ecancel := context.WithTimeout(rt.ctx, rt.opts.WriteTimeout)
			perr := rt.Push(ectx, protocol.ErrorReply(m.TID, err))
			ecancel()
			if perr != nil {
				rt.log.Warn("cannot send error reply", "type", m.Type, "tid", m.TID, "err", err, "send_err", perr)
			}
		} else if err != nil {
			rt.log.Warn("handler failed", "type", m.Type, "err", err)
		}
	})
}

// runHandler calls fn and turns a panic into an error.
func (rt *Runtime) runHandler(ctx context.Context, fn HandlerFunc, m *protocol.Msg) (err error) {
	defer func() {
		if p := recover(); p != nil {
			rt.log.Error("handler panic", "type", m.Type, "tid", m.TID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error: handler for type %d panicked: %v", int(m.Type), p)
		}
	}()
	return fn(ctx, m, replier{rt: rt, tid: m.TID})
}

// reply sends a runtime-generated answer on s without blocking the reader
// for long: a full queue drops it.
func (rt *Runtime) reply(ctx context.Context, s *session, m *protocol.Msg) {
	b, err := protocol.Encode(m)
	if err != nil {
		rt.log.Error("encode reply", "err", err)
		return
	}
	select {
	case s.out <- b:
		rt.st.queued.Add(1)
	case <-s.done:
	case <-ctx.Done():
	default:
		rt.log.Warn("send queue full, error reply dropped", "tid", m.TID)
	}
}

// journalNoSpaceRetry is how often a reliable reply retries its append
// while the journal's disk is full (an ack wakes it sooner).
const journalNoSpaceRetry = 500 * time.Millisecond

// pushReliable journals m and sends it when the connection acks results.
// It blocks while the journal is full, and while its disk is full.
func (rt *Runtime) pushReliable(ctx context.Context, m *protocol.Msg) error {
	// While disconnected, journal when the last server acked results: it
	// is most likely the one the agent reconnects to.
	rt.mu.Lock()
	useJournal := rt.jr != nil && rt.acking
	rt.mu.Unlock()
	if !useJournal {
		return rt.Push(ctx, m)
	}
	m.Seq = 0
	payload, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	var noSpace time.Time // when the file system was first found full
	for {
		rt.jmu.Lock()
		rt.mu.Lock()
		wake := rt.ackCh
		rt.mu.Unlock()
		seq, err := rt.jr.Append(payload)
		if errors.Is(err, journal.ErrFull) {
			rt.jmu.Unlock()
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return fmt.Errorf("journal full: %w", ctx.Err())
			}
		}
		if errors.Is(err, journal.ErrNoSpace) {
			// The disk is full: nothing was journaled. Wait for space as
			// for a full journal (an ack may free a segment; anything else
			// on the disk may free space), so the message is not lost.
			rt.jmu.Unlock()
			if noSpace.IsZero() {
				noSpace = time.Now()
				rt.st.journalNoSpace.Add(1)
				rt.log.Warn("journal: the disk is full; the reply waits until space comes back",
					"tid", m.TID, "type", m.Type.String(), "err", err)
			}
			t := time.NewTimer(journalNoSpaceRetry)
			select {
			case <-wake:
				t.Stop()
				continue
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("journal: %w (%w)", err, ctx.Err())
			}
		}
		if err != nil {
			rt.jmu.Unlock()
			return fmt.Errorf("journal: %w", err)
		}
		if !noSpace.IsZero() {
			rt.log.Info("journal: space came back; the reply is journaled",
				"tid", m.TID, "type", m.Type.String(), "waited", time.Since(noSpace).Round(time.Millisecond))
		}
		// Sent here only when a session is active: otherwise the replay after
		// the next handshake sends it. Both happen under jmu, so never twice.
		if s := rt.current(); s != nil {
			if err := s.send(ctx, withSeq(payload, seq)); err != nil && !errors.Is(err, ErrNotConnected) {
				rt.jmu.Unlock()
				return err
			}
		}
		rt.jmu.Unlock()
		return nil
	}
}

// ack trims the journal up to seq and wakes producers waiting for room.
func (rt *Runtime) ack(seq uint64) {
	if err := rt.jr.Ack(seq); err != nil {
		rt.log.Warn("journal ack", "seq", seq, "err", err)
	}
	rt.mu.Lock()
	close(rt.ackCh)
	rt.ackCh = make(chan struct{})
	rt.mu.Unlock()
}

// withSeq inserts "seq":N into an encoded message (which has no seq).
func withSeq(payload []byte, seq uint64) []byte {
	i := bytes.IndexByte(payload, '{')
	if i < 0 {
		return payload
	}
	out := make([]byte, 0, len(payload)+32)
	out = append(out, payload[:i+1]...)
	out = append(out, `"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	if rest := bytes.TrimSpace(payload[i+1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, payload[i+1:]...)
}

// mergeExtra adds agent-defined keys to the "ai" object of an encoded
// type-7 message. Keys of the standard report win.
func mergeExtra(b []byte, extra map[string]any) ([]byte, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	var ai map[string]json.RawMessage
	if err := json.Unmarshal(env["ai"], &ai); err != nil {
		return nil, err
	}
	for k, v := range extra {
		if _, std := ai[k]; std {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("self-report field %q: %w", k, err)
		}
		ai[k] = raw
	}
	rawAI, err := json.Marshal(ai)
	if err != nil {
		return nil, err
	}
	env["ai"] = rawAI
	return json.Marshal(env)
}
