package logging

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/hub"
)

// Ingest: a log_batch is stored off its session's reader, so that a slow
// disk does not hold the agent's other messages (exec results, file
// transfers, pongs). Each session that sends batches gets one worker fed
// by a queue of at most Options.IngestQueue batches: one worker per
// session keeps the agent's batches in order (the store's per-source marks
// need them in order), and the ack still goes out only after the append.
//
// A full queue is back-pressure: the reader waits for room, at most
// Options.IngestWait, then disconnects the agent (counted and logged). The
// agent reconnects and sends again what was not acknowledged, in order;
// nothing is lost and memory stays bounded (IngestQueue batches, each at
// most the hub's frame limit, per session). Batches queued when a session
// ends are not stored: they were not acknowledged, the agent sends them
// again.

// Defaults of the ingest options.
const (
	DefaultIngestQueue = 16
	DefaultIngestWait  = 10 * time.Second
)

// ingester is the worker of one session.
type ingester struct {
	sess *hub.Session
	q    chan *protocol.Msg
	quit chan struct{} // closed when the session ended or the service stops
}

// ingesterOf returns the session's worker, starting it on first use; nil
// once the service is stopping.
func (s *Service) ingesterOf(sess *hub.Session) *ingester {
	s.ingMu.Lock()
	defer s.ingMu.Unlock()
	if s.ingStopped {
		return nil
	}
	if w := s.ing[sess]; w != nil {
		return w
	}
	w := &ingester{sess: sess, q: make(chan *protocol.Msg, s.o.IngestQueue), quit: make(chan struct{})}
	s.ing[sess] = w
	s.ingWG.Add(1)
	go s.runIngester(w)
	return w
}

func (s *Service) runIngester(w *ingester) {
	defer s.ingWG.Done()
	for {
		select {
		case <-w.quit:
			if n := len(w.q); n > 0 {
				s.log.Debug("log batches not stored: session ended (the agent sends them again)", "agent", w.sess.ID(), "batches", n)
			}
			return
		case m := <-w.q:
			select {
			case <-w.quit:
				return // ended while waiting: not acknowledged, sent again
			default:
			}
			s.ingest(w.sess, m)
		}
	}
}

// onBatch queues a log_batch for the session's worker (the reader's side).
func (s *Service) onBatch(sess *hub.Session, m *protocol.Msg) {
	w := s.ingesterOf(sess)
	if w == nil {
		s.m.refused.WithLabelValues("stopping").Inc()
		s.ack(sess, m.TID, &protocol.LogAck{Err: "server stopping"})
		return
	}
	select {
	case w.q <- m:
		return
	default:
	}
	s.m.ingestFull.WithLabelValues("waited").Inc()
	t := time.NewTimer(s.o.IngestWait)
	defer t.Stop()
	select {
	case w.q <- m:
	case <-w.quit:
	case <-t.C:
		s.m.ingestFull.WithLabelValues("disconnected").Inc()
		s.log.Warn("log ingest queue full: agent disconnected (it reconnects and sends the batches again)",
			"agent", sess.ID(), "queue", cap(w.q), "waited", s.o.IngestWait)
		sess.Close()
	}
}

// OnDisconnect ends the session's ingest worker.
func (s *Service) OnDisconnect(sess *hub.Session) {
	s.ingMu.Lock()
	w := s.ing[sess]
	delete(s.ing, sess)
	s.ingMu.Unlock()
	if w != nil {
		close(w.quit)
	}
}

// stopIngest ends every worker and waits for them (the appends in
// progress finish); batches arriving after it are refused.
func (s *Service) stopIngest() {
	s.ingMu.Lock()
	s.ingStopped = true
	ws := s.ing
	s.ing = map[*hub.Session]*ingester{}
	s.ingMu.Unlock()
	for _, w := range ws {
		close(w.quit)
	}
	s.ingWG.Wait()
}

// ingest decodes, deduplicates, stores and acknowledges one log_batch (on
// the session's worker).
func (s *Service) ingest(sess *hub.Session, m *protocol.Msg) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("log batch handler panic", "agent", sess.ID(), "panic", p, "stack", string(debug.Stack()))
			s.ack(sess, m.TID, &protocol.LogAck{Err: "internal error"})
		}
	}()
	host := sess.ID()
	var b protocol.LogBatch
	if err := m.GetExtra(protocol.KeyLogBatch, &b); err != nil {
		s.refuse(sess, m.TID, &b, "malformed", err)
		return
	}
	recs, err := DecodeBatch(&b)
	if err != nil {
		s.refuse(sess, m.TID, &b, "corrupt", err)
		return
	}
	srcs := make([]Source, len(b.Sources))
	for i, x := range b.Sources {
		srcs[i] = Source{ID: x.ID, Name: x.Name}
	}
	s.rm.RLock()
	s.mu.Lock()
	p := s.projects[b.Project]
	s.mu.Unlock()
	if p == nil {
		s.rm.RUnlock()
		s.refuse(sess, m.TID, &b, "unknown_project", fmt.Errorf("%w %q", errUnknownBatch, b.Project))
		return
	}
	if s.o.BeforeAppend != nil {
		s.o.BeforeAppend(b.Project, host)
	}
	res, err := s.segs.AppendBatch(b.Project, host, srcs, recs, b.Data)
	s.rm.RUnlock()
	if err != nil {
		s.refuse(sess, m.TID, &b, "store", err)
		return
	}
	s.m.received(b.Project, host, len(res.Stored), res.Bytes, res.Dup)
	if len(res.Stored) > 0 {
		s.tail.publish(b.Project, host, srcs, res.Stored)
		s.fwd.notify(b.Project, host)
	}
	s.ack(sess, m.TID, &protocol.LogAck{Project: b.Project, Seq: b.Seq, OK: true, Stored: len(res.Stored), Dup: res.Dup})
}
