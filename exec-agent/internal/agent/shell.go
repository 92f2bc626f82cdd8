package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// Interactive sessions (pty.v1): pty_open runs on the worker pool for the
// session's lifetime (like an exec) and is scoped to its connection; the
// messages that feed a session (input, resize, ack, close) are handled
// inline, in arrival order, and only hand their content to the session.

// Session end messages (pty_exit.msg).
const (
	msgClosed   = "closed by the server"
	msgShutdown = "agent shutting down"
	msgConnLost = "connection lost"
)

// defaultTerm is TERM when pty_open.env sets none.
const defaultTerm = "TERM=xterm-256color"

// exitTimeout bounds the sending of pty_exit.
const exitTimeout = 10 * time.Second

// inWindow is the number of pty_input messages the agent lets the server
// have unacknowledged: 16 × 32 KiB of keystrokes (a paste) at most.
const inWindow = protocol.PtyDefaultWindow

// shellSession is one live interactive session.
type shellSession struct {
	tid string
	sh  *runner.Shell
	w   libagent.Replier
	log *slog.Logger

	in     chan []byte   // keystrokes for the terminal; holds at most inWindow
	credit chan struct{} // output credits granted by the server
	outWin int
	drain  time.Duration // output read after the main process ended, per read

	endOnce sync.Once
	end     chan struct{} // closed when the session must end; reason says why
	reason  string

	lastActive atomic.Int64 // unix ns of the last input or output
	bytesIn    atomic.Int64
	bytesOut   atomic.Int64
}

// stop asks the session to end for reason (the first reason wins). It
// never blocks: inline handlers call it.
func (s *shellSession) stop(reason string) {
	s.endOnce.Do(func() {
		s.reason = reason
		close(s.end)
	})
}

func (s *shellSession) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// session returns the live session of tid, nil when there is none.
func (a *agent) session(tid string) *shellSession {
	a.shellMu.Lock()
	defer a.shellMu.Unlock()
	return a.shells[tid]
}

// ptyOpen starts an interactive session and runs it until it ends.
func (a *agent) ptyOpen(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	o := req.PtyOpen()
	log := a.rt.Logger().With("tid", req.TID)
	refuse := func(err error) error {
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypePtyOpened, Payload: &protocol.PtyOpened{Msg: err.Error(), Kind: kindOf(err)}})
	}
	env := slices.Clone(o.Env)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TERM=") }) {
		env = append(env, defaultTerm)
	}
	spec := runner.ShellSpec{TaskID: req.TID, Cmd: o.Cmd, User: o.User, Env: env, Cols: o.Cols, Rows: o.Rows}
	sh, err := a.run.StartShell(spec)
	if err != nil {
		log.Info("shell refused", "spec", spec, "err", err)
		return refuse(err)
	}
	s := &shellSession{
		tid: req.TID, sh: sh, w: w, log: log,
		in:     make(chan []byte, inWindow),
		outWin: protocol.PtyWindow(o.Window),
		drain:  a.drain,
		end:    make(chan struct{}),
	}
	s.credit = make(chan struct{}, s.outWin)
	for range s.outWin {
		s.credit <- struct{}{}
	}
	s.touch()
	a.shellMu.Lock()
	a.shells[req.TID] = s // a resent pty_open replaces the entry; the old handler's context is cancelled
	a.shellMu.Unlock()
	defer func() {
		a.shellMu.Lock()
		if a.shells[req.TID] == s {
			delete(a.shells, req.TID)
		}
		a.shellMu.Unlock()
	}()
	log.Info("shell started", "spec", spec, "pid", sh.Pid())
	err = w.Reply(ctx, &protocol.Msg{Type: protocol.TypePtyOpened, Payload: &protocol.PtyOpened{
		OK: true, Pid: sh.Pid(), Window: inWindow,
	}})
	if err != nil {
		s.stop(fmt.Sprintf("sending pty_opened: %v", err))
	}
	code := a.runShell(ctx, s)
	msg := s.reason
	log.Info("shell ended", "pid", sh.Pid(), "code", code, "reason", msg,
		"bytes_in", s.bytesIn.Load(), "bytes_out", s.bytesOut.Load(), "duration", time.Since(sh.Begin()).Round(time.Millisecond))
	if msg == msgConnLost {
		return nil // nobody to tell
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exitTimeout)
	defer cancel()
	if err := w.Reply(ectx, &protocol.Msg{Type: protocol.TypePtyExit, Payload: &protocol.PtyExit{Code: code, Msg: msg}}); err != nil {
		log.Debug("shell: sending pty_exit", "err", err)
	}
	return nil
}

// runShell runs the session's output pump and input writer until the
// session has ended, and returns the exit code. The output is read to its
// end, so pty_exit (sent by the caller) follows the last pty_output.
func (a *agent) runShell(ctx context.Context, s *shellSession) int {
	var wg sync.WaitGroup
	drop := make(chan struct{}) // closed when output is no longer sent
	pumped := make(chan struct{})
	stopWriter := make(chan struct{})
	wg.Go(func() {
		defer close(pumped)
		s.pump(ctx, drop)
	})
	wg.Go(func() { s.writer(ctx, stopWriter) })

	var idle <-chan time.Time
	var idleT *time.Timer
	if a.idle > 0 {
		idleT = time.NewTimer(a.idle)
		defer idleT.Stop()
		idle = idleT.C
	}
	// Each case runs once: its channel is then set to nil (a closed
	// channel would be ready again on every turn of the loop).
	exited, ctxDone, end := s.sh.Exited(), ctx.Done(), (<-chan struct{})(s.end)
	hungUp := false
	hangup := func(reason string) {
		s.stop(reason)
		if hungUp {
			return
		}
		hungUp = true
		close(drop)
		wg.Go(s.sh.Hangup)
	}
	for done := false; !done; {
		select {
		case <-pumped:
			done = true
		case <-ctxDone:
			ctxDone = nil
			if a.rt.Context().Err() != nil {
				hangup(msgShutdown)
			} else {
				hangup(msgConnLost)
			}
		case <-end:
			end = nil
			hangup(s.reason)
		case <-exited:
			// Background processes may keep the terminal open: a read
			// pending now ends after drain without output (the pump sets
			// that deadline before each later read).
			exited = nil
			_ = s.sh.SetReadDeadline(time.Now().Add(s.drain))
		case <-idle:
			if left := a.idle - time.Since(time.Unix(0, s.lastActive.Load())); left > 0 {
				idleT.Reset(left)
				continue
			}
			idle = nil
			hangup(fmt.Sprintf("idle timeout: no input or output for %s", a.idle))
		}
	}
	s.stop("") // settles the reason: later stops change nothing
	select {
	case <-s.sh.Exited():
	default:
		// The terminal is gone but the main process is not (it closed
		// its terminal): the session is over without a terminal.
		hangup(s.reason)
	}
	code := s.sh.Close() // also ends a writer blocked on the terminal
	close(stopWriter)
	wg.Wait()
	return code
}

// pump sends the terminal's output as pty_output, one message per credit,
// until the terminal reaches its end. Without credit it does not read: the
// program then blocks on its own output. Once the main process has ended,
// each read waits at most drain for output (time spent waiting for credit
// does not count, so a slow client loses nothing). Once drop is closed
// (the session is being hung up) output is read and discarded.
func (s *shellSession) pump(ctx context.Context, drop <-chan struct{}) {
	buf := make([]byte, protocol.PtyMaxData)
	dropping := false
	for {
		if !dropping {
			select {
			case <-s.credit:
			case <-drop:
				dropping = true
			}
		}
		select {
		case <-s.sh.Exited():
			_ = s.sh.SetReadDeadline(time.Now().Add(s.drain))
		default:
		}
		n, err := s.sh.Read(buf)
		if n > 0 && !dropping {
			s.touch()
			s.bytesOut.Add(int64(n))
			m := &protocol.Msg{Type: protocol.TypePtyOutput, Payload: protocol.NewPtyData(buf[:n])}
			if serr := s.w.Reply(ctx, m); serr != nil {
				s.log.Debug("shell: output not sent, dropping the rest", "err", serr)
				dropping = true
			}
		}
		if err != nil {
			return
		}
	}
}

// writer types the queued keystrokes into the terminal and returns the
// credits: at the latest when half the window is consumed, and whenever
// nothing more is queued.
func (s *shellSession) writer(ctx context.Context, stop <-chan struct{}) {
	pending := 0
	broken := false
	for {
		select {
		case <-stop:
			return
		case b := <-s.in:
			if !broken && len(b) > 0 {
				if _, err := s.sh.Write(b); err != nil {
					// The terminal is gone; the session ends by itself.
					s.log.Debug("shell: writing input", "err", err)
					broken = true
				}
				s.touch()
				s.bytesIn.Add(int64(len(b)))
			}
			pending++
			if pending >= max(1, inWindow/2) || len(s.in) == 0 {
				err := s.w.Reply(ctx, &protocol.Msg{Type: protocol.TypePtyAck, Payload: &protocol.PtyAck{N: uint32(pending)}})
				if err != nil {
					s.log.Debug("shell: sending pty_ack", "err", err)
				}
				pending = 0
			}
		}
	}
}

// The inline handlers: they run on the connection's reader and must not
// block. Messages for a tid without a live session are dropped (they
// trail a session that has just ended).

func (a *agent) ptyInput(_ context.Context, req *protocol.Msg, _ libagent.Replier) error {
	s := a.session(req.TID)
	if s == nil {
		a.rt.Logger().Debug("pty_input for no live session dropped", "tid", req.TID)
		return nil
	}
	b, err := req.PtyData().Bytes()
	if err != nil {
		s.stop(fmt.Sprintf("protocol violation: %v", err))
		return nil
	}
	select {
	case s.in <- b:
	default:
		s.stop(fmt.Sprintf("flow control violation: more than %d pty_input messages unacknowledged", inWindow))
	}
	return nil
}

func (a *agent) ptyResize(_ context.Context, req *protocol.Msg, _ libagent.Replier) error {
	s := a.session(req.TID)
	if s == nil {
		return nil
	}
	r := req.PtyResize()
	if err := s.sh.Resize(r.Cols, r.Rows); err != nil {
		s.log.Warn("shell: resize ignored", "cols", r.Cols, "rows", r.Rows, "err", err)
	}
	return nil
}

func (a *agent) ptyAck(_ context.Context, req *protocol.Msg, _ libagent.Replier) error {
	s := a.session(req.TID)
	if s == nil {
		return nil
	}
	for range min(req.PtyAck().N, uint32(s.outWin)) {
		select {
		case s.credit <- struct{}{}:
		default:
			s.log.Debug("shell: pty_ack returns more credit than was granted", "n", req.PtyAck().N)
			return nil
		}
	}
	return nil
}

func (a *agent) ptyClose(_ context.Context, req *protocol.Msg, _ libagent.Replier) error {
	if s := a.session(req.TID); s != nil {
		s.stop(msgClosed)
	}
	return nil
}
