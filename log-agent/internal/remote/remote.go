// Package remote delivers log-agent's batches to agent-server over the
// agent's session (protocol.CapLog): each batch goes out as a log_batch with
// a tid of its own, and counts as delivered only when the server's log_ack
// for that tid says it is stored.
//
// Ship sends the batches it is given one after the other without waiting
// (the session's send queue bounds what is in flight), then waits for the
// acks in order: the batches acknowledged before the first failure are
// reported, the rest are sent again by the collector's shipper. A lost
// connection or a server that stays silent for Timeout fails the rest.
//
// A *Sink is safe for concurrent use (one per agent, shared by every
// project's shipper).
package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/log-agent/internal/batch"
)

// DefaultTimeout is how long Ship waits for one ack. The acks of a session
// that ended never come: Ship also gives up as soon as it sees the agent
// disconnected (checked every connCheck), and the timeout covers a
// reconnect between two checks. Sending a batch again is harmless: the
// server stores each line once.
const DefaultTimeout = 15 * time.Second

const connCheck = 100 * time.Millisecond

// Pusher sends a message on the current session (libagent.Runtime).
type Pusher interface {
	Push(ctx context.Context, m *protocol.Msg) error
	// HasCap reports whether the current session uses capability c.
	HasCap(c string) bool
	// Connected reports whether a session is live.
	Connected() bool
}

// ErrNoCap: the server of the current session does not take batches.
var ErrNoCap = errors.New("not connected to a server that takes log batches (" + protocol.CapLog + ")")

// Sink is the collector.Sink of the server.
type Sink struct {
	push    Pusher
	timeout time.Duration
	prefix  string
	n       atomic.Uint64

	mu      sync.Mutex
	waiting map[string]chan *protocol.LogAck
}

// New returns a Sink pushing through p; timeout ≤ 0 means DefaultTimeout.
func New(p Pusher, timeout time.Duration) *Sink {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Sink{push: p, timeout: timeout, prefix: "lb-" + hex.EncodeToString(b[:]) + "-", waiting: map[string]chan *protocol.LogAck{}}
}

// Message returns the log_batch of b with tid.
func Message(b *batch.Batch, tid string) (*protocol.Msg, error) {
	lb := protocol.LogBatch{Project: b.Project, Seq: b.Seq, Created: b.Created, Lines: b.Lines, Bytes: b.Bytes, Data: b.Data,
		Sources: make([]protocol.LogSource, len(b.Sources))}
	for i, s := range b.Sources {
		lb.Sources[i] = protocol.LogSource{ID: s.ID, Name: s.Name, First: s.First, End: s.End}
	}
	m := &protocol.Msg{Type: protocol.TypeLogBatch, TID: tid}
	if err := m.SetExtra(protocol.KeyLogBatch, &lb); err != nil {
		return nil, err
	}
	return m, nil
}

// Ship implements collector.Sink.
func (s *Sink) Ship(ctx context.Context, bs []*batch.Batch) (int, error) {
	tids := make([]string, 0, len(bs))
	chans := make([]chan *protocol.LogAck, 0, len(bs))
	defer func() {
		s.mu.Lock()
		for _, t := range tids {
			delete(s.waiting, t)
		}
		s.mu.Unlock()
	}()
	if !s.push.HasCap(protocol.CapLog) {
		return 0, ErrNoCap
	}
	var sendErr error
	for _, b := range bs {
		tid := s.prefix + strconv.FormatUint(s.n.Add(1), 10)
		m, err := Message(b, tid)
		if err != nil {
			sendErr = err
			break
		}
		ch := make(chan *protocol.LogAck, 1)
		s.mu.Lock()
		s.waiting[tid] = ch
		s.mu.Unlock()
		tids, chans = append(tids, tid), append(chans, ch)
		if err := s.push.Push(ctx, m); err != nil {
			sendErr = fmt.Errorf("send batch %d: %w", b.Seq, err)
			chans = chans[:len(chans)-1] // not sent: no ack to wait for
			break
		}
	}
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	tick := time.NewTicker(connCheck)
	defer tick.Stop()
	for i, ch := range chans {
		a, err := s.wait(ctx, ch, t.C, tick.C)
		if err != nil {
			return i, fmt.Errorf("batch %d of %s: %w", bs[i].Seq, bs[i].Project, err)
		}
		if !a.OK {
			return i, fmt.Errorf("server refused batch %d of %s: %s", bs[i].Seq, bs[i].Project, a.Err)
		}
		if a.Seq != bs[i].Seq || a.Project != bs[i].Project {
			return i, fmt.Errorf("ack for %s/%d answers batch %s/%d", a.Project, a.Seq, bs[i].Project, bs[i].Seq)
		}
	}
	if sendErr != nil {
		return len(chans), sendErr
	}
	return len(bs), nil
}

// wait returns the ack on ch, or fails when the timer fires, the agent is
// seen disconnected or ctx ends.
func (s *Sink) wait(ctx context.Context, ch <-chan *protocol.LogAck, timeout, tick <-chan time.Time) (*protocol.LogAck, error) {
	for {
		select {
		case a := <-ch:
			return a, nil
		case <-tick:
			if !s.push.Connected() {
				return nil, errors.New("connection lost before the ack")
			}
		case <-timeout:
			return nil, fmt.Errorf("no ack within %s", s.timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ErrUnknownAck is returned by Ack for a tid nobody waits for (a late ack
// after a timeout, or a reconnect).
var ErrUnknownAck = errors.New("ack for no pending batch")

// Ack hands a log_ack to the Ship waiting for its tid. It never blocks.
func (s *Sink) Ack(m *protocol.Msg) error {
	var a protocol.LogAck
	if m.Type == protocol.TypeError {
		a.Err = m.ErrMsg
	} else if err := m.GetExtra(protocol.KeyLogAck, &a); err != nil {
		return err
	}
	s.mu.Lock()
	ch, ok := s.waiting[m.TID]
	delete(s.waiting, m.TID)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: tid %s", ErrUnknownAck, m.TID)
	}
	ch <- &a // buffered 1, and removed from waiting: never blocks
	return nil
}
