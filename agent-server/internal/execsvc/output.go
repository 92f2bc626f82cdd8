package execsvc

import (
	"context"
	"fmt"
)

// appendLocked takes new output (e.mu held).
func (e *Exec) appendLocked(b []byte) {
	e.total += int64(len(b))
	if n := e.env.cfg.HeadSize - len(e.head); n > 0 {
		e.head = append(e.head, b[:min(n, len(b))]...)
	}
	e.tail.write(b)
	if e.storeFull {
		return
	}
	if len(e.pend)+len(b) > e.env.cfg.MaxPending {
		e.storeFull = true
		e.pend = nil
		e.env.log.Warn("execsvc: store too slow, output no longer stored (head and tail are kept)", "agent", e.agentID, "task", e.tid)
		return
	}
	if len(e.pend) == 0 {
		e.pendOff = e.stored + int64(len(e.inflight))
	}
	e.pend = append(e.pend, b...)
}

// ReadOutput returns output bytes from offset off (at most max): from the
// store, from memory not yet stored, or from the tail. Bytes that were
// dropped are skipped: next-off-len(data) is then the gap. At the end it
// returns no data and next == off.
func (e *Exec) ReadOutput(ctx context.Context, off int64, max int) (data []byte, next int64, err error) {
	e.mu.Lock()
	if off < 0 {
		off = 0
	}
	stored := e.stored
	if off < stored {
		e.mu.Unlock()
		n := min(int64(max), stored-off)
		b, _, err := e.env.journal.ReadOutput(ctx, e.tid, e.agentID, off, n)
		if err != nil {
			return nil, off, fmt.Errorf("read output of task %s: %w", e.tid, err)
		}
		return b, off + int64(len(b)), nil
	}
	defer e.mu.Unlock()
	from := func(buf []byte, start int64) ([]byte, int64, bool) {
		if off >= start && off < start+int64(len(buf)) {
			b := buf[off-start:]
			b = b[:min(len(b), max)]
			return append([]byte(nil), b...), off + int64(len(b)), true
		}
		return nil, 0, false
	}
	if b, n, ok := from(e.inflight, stored); ok {
		return b, n, nil
	}
	if b, n, ok := from(e.pend, e.pendOff); ok && !e.storeFull {
		return b, n, nil
	}
	t := e.tail.bytes()
	tailStart := e.total - int64(len(t))
	if off < tailStart {
		off = tailStart
	}
	if b, n, ok := from(t, tailStart); ok {
		return b, n, nil
	}
	return nil, off, nil
}

// Pty returns the output produced since reader's previous Pty call (at
// most max bytes; the rest comes with the next call), as 1.5's pty
// polling, and the offset where the next call starts. Each reader (an API
// token) has its own cursor, so one reader never takes output from another.
func (e *Exec) Pty(ctx context.Context, reader string, max int) ([]byte, int64, error) {
	e.mu.Lock()
	off := e.ptyOff[reader]
	e.mu.Unlock()
	out, next, err := e.PtyAt(ctx, off, max)
	e.mu.Lock()
	if e.ptyOff == nil {
		e.ptyOff = map[string]int64{}
	}
	e.ptyOff[reader] = max64(e.ptyOff[reader], next)
	e.mu.Unlock()
	return out, next, err
}

// PtyAt returns the output from offset off (at most max bytes) and the
// offset after it, moving no cursor. Bytes that were dropped are skipped.
func (e *Exec) PtyAt(ctx context.Context, off int64, max int) ([]byte, int64, error) {
	var out []byte
	for len(out) < max {
		b, next, err := e.ReadOutput(ctx, off, max-len(out))
		if err != nil {
			return out, off, err
		}
		off = next
		if len(b) == 0 {
			break
		}
		out = append(out, b...)
	}
	return out, off, nil
}

// Output returns the whole output as far as it is kept, for a sync reply:
// a gap of dropped bytes appears as a one-line marker.
func (e *Exec) Output(ctx context.Context, limit int) ([]byte, error) {
	var out []byte
	var off int64
	for len(out) < limit {
		b, next, err := e.ReadOutput(ctx, off, limit-len(out))
		if err != nil {
			return out, err
		}
		if gap := next - off - int64(len(b)); gap > 0 {
			out = fmt.Appendf(out, "\n[... %d bytes dropped ...]\n", gap)
		}
		if len(b) == 0 {
			break
		}
		out = append(out, b...)
		off = next
	}
	return out, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// ring keeps the last size bytes written.
type ring struct {
	size int
	buf  []byte
}

func (r *ring) write(b []byte) {
	if len(b) >= r.size {
		r.buf = append(r.buf[:0], b[len(b)-r.size:]...)
		return
	}
	if len(r.buf)+len(b) > 2*r.size {
		r.buf = append(r.buf[:0], r.buf[len(r.buf)-(r.size-len(b)):]...)
	}
	r.buf = append(r.buf, b...)
}

func (r *ring) bytes() []byte {
	b := r.buf
	if len(b) > r.size {
		b = b[len(b)-r.size:]
	}
	return append([]byte(nil), b...)
}
