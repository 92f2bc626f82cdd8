package libagent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrNotConnected is returned by sends while the agent has no live
// connection to the server.
var ErrNotConnected = errors.New("libagent: not connected")

// session is one live WebSocket connection after a successful handshake.
//
// Concurrency: the reader runs inline in Runtime.serve; one writer goroutine
// (owned by serve, which waits for it) drains two bounded queues. Producers
// call send (blocks with ctx while the task-data queue is full) or
// sendTelemetry (never blocks: the oldest queued report is dropped). close is
// safe from any goroutine.
type session struct {
	ws     *websocket.Conn
	caps   []string
	server string // the address dialled, for the transfer helpers

	out  chan []byte   // task data and replies: producer blocks
	tele chan []byte   // telemetry: drop oldest
	done chan struct{} // closed by close

	closeOnce sync.Once
	err       error // why the session ended, set once before done closes

	keepalive    time.Duration
	writeTimeout time.Duration
	st           *stats
}

// stats are the runtime's counters, reported in the type-7 self-report.
type stats struct {
	inPackets, inBytes   atomic.Uint64
	outPackets, outBytes atomic.Uint64
	reconnects           atomic.Int64
	droppedTelemetry     atomic.Uint64
	busyRejected         atomic.Uint64
	malformed            atomic.Uint64
	journalNoSpace       atomic.Uint64 // reliable replies that waited for disk space
	queued               atomic.Int64  // messages waiting in the current session's queues
}

func newSession(ws *websocket.Conn, caps []string, server string, queue int, keepalive, writeTimeout time.Duration, st *stats) *session {
	return &session{
		ws:           ws,
		caps:         caps,
		server:       server,
		out:          make(chan []byte, queue),
		tele:         make(chan []byte, 1),
		done:         make(chan struct{}),
		keepalive:    keepalive,
		writeTimeout: writeTimeout,
		st:           st,
	}
}

// close ends the session: the socket is closed, which unblocks the reader,
// and done is closed, which stops the writer and every blocked producer.
func (s *session) close(err error) {
	s.closeOnce.Do(func() {
		s.err = err
		close(s.done)
		_ = s.ws.Close()
	})
}

// send queues an encoded frame, waiting while the queue is full.
func (s *session) send(ctx context.Context, b []byte) error {
	select {
	case <-s.done:
		return ErrNotConnected
	default:
	}
	// Room in the queue wins over a done ctx: a handler whose deadline just
	// passed still gets its error reply out.
	select {
	case s.out <- b:
		s.st.queued.Add(1)
		return nil
	default:
	}
	select {
	case s.out <- b:
		s.st.queued.Add(1)
		return nil
	case <-s.done:
		return ErrNotConnected
	case <-ctx.Done():
		return fmt.Errorf("send: %w", ctx.Err())
	}
}

// sendTelemetry queues a report, dropping the oldest queued one when the
// telemetry slot is taken: a fresh report makes an unsent old one worthless.
func (s *session) sendTelemetry(b []byte) {
	for {
		select {
		case <-s.done:
			return
		case s.tele <- b:
			s.st.queued.Add(1)
			return
		default:
		}
		select {
		case <-s.tele:
			s.st.queued.Add(-1)
			s.st.droppedTelemetry.Add(1)
		default:
		}
	}
}

// writeLoop is the only writer of data frames. It also sends the keepalive
// pings, so a stuck write shows up as a missed ping interval.
func (s *session) writeLoop() {
	ping := time.NewTicker(s.keepalive)
	defer ping.Stop()
	for {
		var b []byte
		select {
		case <-s.done:
			s.drain()
			return
		case b = <-s.out:
		case b = <-s.tele:
		case <-ping.C:
			if err := s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.writeTimeout)); err != nil {
				s.close(fmt.Errorf("write ping: %w", err))
			}
			continue
		}
		s.st.queued.Add(-1)
		if err := s.write(b); err != nil {
			s.close(err)
		}
	}
}

func (s *session) write(b []byte) error {
	if err := s.ws.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	s.st.outPackets.Add(1)
	s.st.outBytes.Add(uint64(len(b)))
	return nil
}

// drain forgets frames left in the queues of a dead session so the queue
// length gauge stays right. Journaled frames are replayed from the journal.
func (s *session) drain() {
	for {
		select {
		case <-s.out:
		case <-s.tele:
		default:
			return
		}
		s.st.queued.Add(-1)
	}
}

// deadline is the read deadline after any sign of life from the server:
// three keepalive intervals, so a peer that stopped reading or answering
// pings is declared dead within three intervals even when TCP says nothing.
func (s *session) deadline() time.Time { return time.Now().Add(3 * s.keepalive) }
