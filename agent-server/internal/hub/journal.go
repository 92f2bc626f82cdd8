package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"
)

// journal is the ack.v1 state of a session. hwm, unacked and timer are
// guarded by the session's mutex; mu serializes writes to the AckStore.
type journal struct {
	id        string
	hwm       uint64 // highest seq handed to a waiter or the journal handler
	unacked   int    // stored since the last ack
	timer     *time.Timer
	mu        sync.Mutex
	persisted uint64 // highest seq written to the AckStore (under mu)
}

var errNoJournalHandler = errors.New("no journal handler registered")

// execDoneAckDelay is how soon an exec_done is acked at the latest.
const execDoneAckDelay = 20 * time.Millisecond

// journaled handles a message carrying a seq: dedup, delivery, ack batching.
func (s *Session) journaled(msg *protocol.Msg) string {
	h := s.hub
	jr := s.jr
	s.mu.Lock()
	hwm := jr.hwm
	s.mu.Unlock()
	if msg.Seq <= hwm {
		h.m.dropped.WithLabelValues(reasonDuplicate).Inc()
		return ""
	}
	if msg.Seq > hwm+1 {
		h.m.gaps.Inc()
		h.logLimited("hub: gap in journal", "agent", s.id, "journal", jr.id, "after", hwm, "seq", msg.Seq)
	}
	if msg.TID == "" || !s.deliver(msg) {
		if err := s.callJournalHandler(msg); err != nil {
			h.log.Error("hub: journaled message not stored; closing so the agent replays it",
				"agent", s.id, "journal", jr.id, "seq", msg.Seq, "err", err)
			return reasonJournal
		}
	}
	s.mu.Lock()
	jr.hwm = msg.Seq
	jr.unacked++
	now := jr.unacked >= h.opts.AckBatch
	if !now {
		delay := h.opts.AckDelay
		if msg.Type == protocol.TypeExecDone {
			// Soon, but not here: this goroutine would otherwise write the
			// ack's high-water mark while the exec's result is being
			// stored, and on SQLite (one writer connection) the result's
			// write would wait for it — latency on every exec.
			delay = min(delay, execDoneAckDelay)
			if jr.timer != nil && jr.timer.Stop() {
				h.wg.Done() // the pending ack is rescheduled below
				jr.timer = nil
			}
		}
		if jr.timer == nil {
			h.wg.Add(1)
			jr.timer = time.AfterFunc(delay, s.ackTimer)
		}
	}
	s.mu.Unlock()
	if now {
		s.flushAck()
	}
	return ""
}

func (s *Session) callJournalHandler(msg *protocol.Msg) (err error) {
	h := s.hub
	h.hmu.RLock()
	fn := h.journalHandler
	if typed := h.journalTypes[msg.Type]; typed != nil {
		fn = typed
	}
	h.hmu.RUnlock()
	if fn == nil {
		return errNoJournalHandler
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("journal handler panic: %v", r)
		}
	}()
	return fn(s, msg)
}

func (s *Session) ackTimer() {
	defer s.hub.wg.Done()
	s.mu.Lock()
	s.jr.timer = nil
	s.mu.Unlock()
	s.flushAck()
}

// flushAck persists the high-water mark and has the writer send the
// cumulative ack (unless the session is closed).
func (s *Session) flushAck() {
	h := s.hub
	jr := s.jr
	jr.mu.Lock()
	defer jr.mu.Unlock()
	s.mu.Lock()
	seq := jr.hwm
	jr.unacked = 0
	if jr.timer != nil {
		if jr.timer.Stop() {
			h.wg.Done()
		}
		jr.timer = nil
	}
	s.mu.Unlock()
	if seq > jr.persisted {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.WriteTimeout)
		err := h.opts.Acks.SetJournalAck(ctx, s.id, jr.id, seq)
		cancel()
		if err != nil {
			// Not acked: the agent keeps the messages and replays them.
			h.log.Error("hub: store journal ack", "agent", s.id, "journal", jr.id, "seq", seq, "err", err)
			return
		}
		jr.persisted = seq
	}
	s.mu.Lock()
	if !s.closed && seq > 0 {
		s.ackSeq = seq
		s.ackDirty = true
		s.startWriterLocked()
	}
	s.mu.Unlock()
}
