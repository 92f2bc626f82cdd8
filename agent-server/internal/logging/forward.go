package logging

// Forwarding to NATS JetStream: a stream per project, at least once.
//
// The embedded segments are the source the forwarding reads from, so
// ingest never waits for NATS: a batch is stored and acknowledged to its
// agent as before, and a worker per (project, host) reads what was stored
// after its cursor, publishes it line by line to the project's stream
// with a message id made of (project, host, source, offset) and moves the
// cursor only over what JetStream acknowledged. A round that fails keeps
// its lines in memory and sends them again, in the same order, after a
// backoff; JetStream drops what it already stored by the message id (its
// duplicate window). The cursor file (forward_cursor.go) makes a restart
// resume where the acknowledgements stopped.
//
// Retention may delete segments the forwarding has not read (NATS away for
// longer than logging.max_age, or more than logging.max_size behind): the
// store calls beforeDelete first, which counts the lines of the segment
// after the read position as dropped, logs them, and makes the reader skip
// the segment.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agentfleet/jkframe/backoff"
)

// forwarder owns the NATS connection and the workers. Safe for concurrent
// use; start, then notify from any goroutine, stop once.
type forwarder struct {
	o    ForwardOptions
	segs *Store
	log  *slog.Logger
	m    *fwdMetrics
	// gen reports whether a project is configured, and its generation
	// (changes when it is removed and configured again).
	gen func(project string) (int64, bool)
	nc  *nats.Conn
	js  jetstream.JetStream

	mu      sync.Mutex
	ctx     context.Context // nil until start
	stopped bool
	streams map[string]bool
	hosts   map[string]*fwdHost // "project/host"
	wg      sync.WaitGroup
}

func newForwarder(o ForwardOptions, segs *Store, gen func(string) (int64, bool), m *fwdMetrics, log *slog.Logger) (*forwarder, error) {
	o.defaults()
	nc, err := connectNATS(&o, m, log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384), jetstream.WithPublishAsyncTimeout(o.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	if nc.IsConnected() {
		m.connected.Set(1)
	}
	return &forwarder{o: o, segs: segs, log: log, m: m, gen: gen, nc: nc, js: js,
		streams: map[string]bool{}, hosts: map[string]*fwdHost{}}, nil
}

// forwarded returns the generation of a project that is forwarded.
func (f *forwarder) forwarded(project string) (int64, bool) {
	g, ok := f.gen(project)
	if !ok {
		return 0, false
	}
	if len(f.o.Projects) == 0 {
		return g, true
	}
	for _, p := range f.o.Projects {
		if m, _ := path.Match(p, project); m {
			return g, true
		}
	}
	return 0, false
}

// start begins forwarding what is stored of every forwarded project.
func (f *forwarder) start(ctx context.Context) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
	ents, err := os.ReadDir(f.segs.o.Dir)
	if err != nil {
		f.log.Error("log forwarding: list projects", "err", err)
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !nameRE.MatchString(e.Name()) {
			continue
		}
		hosts, err := f.segs.Hosts(e.Name())
		if err != nil {
			f.log.Error("log forwarding: list hosts", "project", e.Name(), "err", err)
			continue
		}
		for _, h := range hosts {
			f.notify(e.Name(), h)
		}
	}
}

// notify tells the worker of (project, host) that lines were stored,
// starting it when there is none. It never blocks on NATS.
func (f *forwarder) notify(project, host string) {
	if f == nil {
		return
	}
	key := project + "/" + host
	f.mu.Lock()
	h := f.hosts[key]
	f.mu.Unlock()
	if h == nil {
		gen, ok := f.forwarded(project)
		if !ok {
			return
		}
		nh, err := f.newHost(project, host, gen)
		if err != nil {
			f.log.Error("log forwarding: host not started", "project", project, "host", host, "err", err)
			return
		}
		f.mu.Lock()
		if h = f.hosts[key]; h == nil && f.ctx != nil && !f.stopped {
			h = nh
			f.hosts[key] = h
			ctx, cancel := context.WithCancel(f.ctx)
			hard, abort := context.WithCancel(context.WithoutCancel(f.ctx))
			h.cancel, h.abort = cancel, abort
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer abort()
				h.run(ctx, hard)
			}()
		}
		f.mu.Unlock()
		if h == nil {
			return
		}
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// forget stops the workers of a removed project and waits for them.
func (f *forwarder) forget(project string) {
	if f == nil {
		return
	}
	var hs []*fwdHost
	f.mu.Lock()
	for k, h := range f.hosts {
		if h.project == project {
			hs = append(hs, h)
			delete(f.hosts, k)
		}
	}
	delete(f.streams, project)
	f.mu.Unlock()
	for _, h := range hs {
		h.cancel()
		h.abort()
		<-h.done
	}
	f.m.forget(project)
}

// stop ends every worker (each finishes its round, whose acknowledgements
// come within the ack timeout, and saves its cursor) and closes the
// connection.
func (f *forwarder) stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.stopped = true
	for _, h := range f.hosts {
		h.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.nc.Close()
	f.m.connected.Set(0)
}

// beforeDelete is the store's hook: segment seq of (project, host) is
// about to be deleted by retention.
func (f *forwarder) beforeDelete(project, host string, seq uint64, path string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	h := f.hosts[project+"/"+host]
	f.mu.Unlock()
	if h != nil {
		h.segDeleted(seq, path)
	}
}

// ForwardStatus is a project's forwarding as task_info shows it.
type ForwardStatus struct {
	Stream string `json:"stream"`
	// Lines forwarded and acknowledged, and lines dropped (deleted by
	// retention before they were forwarded), since the server started.
	Lines   int64 `json:"lines"`
	Dropped int64 `json:"dropped"`
	// LagBytes: stored bytes not forwarded yet.
	LagBytes  int64  `json:"lag_bytes"`
	Failing   bool   `json:"failing"`
	LastError string `json:"last_error,omitempty"`
}

// status returns a project's forwarding; nil when it is not forwarded.
func (f *forwarder) status(project string) *ForwardStatus {
	if f == nil {
		return nil
	}
	if _, ok := f.forwarded(project); !ok {
		return nil
	}
	st := &ForwardStatus{Stream: f.o.StreamName(project)}
	f.mu.Lock()
	var hs []*fwdHost
	for _, h := range f.hosts {
		if h.project == project {
			hs = append(hs, h)
		}
	}
	f.mu.Unlock()
	for _, h := range hs {
		h.mu.Lock()
		st.Lines += h.stat.lines
		st.Dropped += h.stat.dropped
		st.LagBytes += h.stat.lag
		if h.stat.lastErr != "" {
			st.Failing = true
			st.LastError = h.stat.lastErr
		}
		h.mu.Unlock()
	}
	return st
}

// fwdHost forwards the lines of one (project, host). Its goroutine owns
// acked, saved, retry and the failure state; mu guards the read position
// and the segment bookkeeping that beforeDelete shares, and stat.
type fwdHost struct {
	f                  *forwarder
	project, host, dir string
	subject, stream    string
	gen                int64
	wake               chan struct{}
	cancel, abort      context.CancelFunc // stop after the round; at once
	done               chan struct{}
	acked, saved       fwdCursor // Pos: the next line to acknowledge
	// verify: lines may have been stored without their acknowledgement
	// reaching us (a failed round, a restart); look before sending.
	verify                bool
	retry                 []*fwdLine
	failing               int
	failedAt, lastFailLog time.Time
	bo                    backoff.Backoff
	lastSave              time.Time
	frame                 *recordFrame // decoded frame at read
	frameNext             int64
	buf                   []byte

	mu      sync.Mutex
	read    fwdPos // next record to read
	deleted map[uint64]bool
	stat    struct {
		lines, dropped, lag int64
		lastErr             string
	}
}

// fwdLine is one line read and not yet acknowledged.
type fwdLine struct {
	msg   *nats.Msg
	id    string
	at    fwdPos // the line's position
	after fwdPos // the position after the line
	n     int
	cut   bool
	// stored: found in the stream (markStored), not to be sent again.
	stored bool
	seq    uint64 // its stream sequence, when stored
}

// newHost loads (or makes) the host's cursor.
func (f *forwarder) newHost(project, host string, gen int64) (*fwdHost, error) {
	dir := filepath.Join(f.segs.o.Dir, project, hostDir(host))
	h := &fwdHost{f: f, project: project, host: host, dir: dir, gen: gen,
		subject: f.o.Subject(project, host), stream: f.o.StreamName(project),
		wake: make(chan struct{}, 1), done: make(chan struct{}), deleted: map[uint64]bool{},
		bo: backoff.Backoff{Min: f.o.BackoffMin, Max: f.o.BackoffMax, Stable: 10 * time.Second}}
	cur, ok, err := loadFwdCursor(dir)
	if err != nil {
		// A damaged cursor: start again from the oldest line; JetStream
		// drops the re-sends within its duplicate window.
		f.log.Error("log forwarding cursor unreadable, forwarding again from the oldest stored line", "project", project, "host", host, "err", err)
	}
	if !ok {
		seqs, err := segments(dir)
		if err != nil {
			return nil, err
		}
		if len(seqs) == 0 {
			return nil, fmt.Errorf("no segment in %s", dir)
		}
		cur = fwdCursor{Pos: fwdPos{Seg: seqs[0], Off: int64(len(segMagic))}}
		if f.o.StartNewest {
			last := seqs[len(seqs)-1]
			_, end, err := linesFrom(filepath.Join(dir, segName(last)), int64(len(segMagic)), 0)
			if err != nil {
				return nil, err
			}
			cur.Pos = fwdPos{Seg: last, Off: end}
		}
		if err := saveFwdCursor(dir, cur); err != nil {
			return nil, fmt.Errorf("forwarding cursor: %w", err)
		}
	}
	h.read, h.acked, h.saved, h.verify = cur.Pos, cur, cur, true
	return h, nil
}

// run forwards until ctx is done; hard ends a round waiting for its
// acknowledgements.
func (h *fwdHost) run(ctx, hard context.Context) {
	defer close(h.done)
	defer func() {
		if p := recover(); p != nil {
			h.f.log.Error("log forwarding worker panic; the host's forwarding stops until the server restarts",
				"project", h.project, "host", h.host, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	poll := time.NewTicker(h.f.o.Poll)
	defer poll.Stop()
	for {
		more, err := h.round(hard)
		if ctx.Err() != nil {
			h.abandonDeleted()
			h.save()
			return
		}
		if err != nil {
			h.failed(err)
			h.save()
			h.updateLag()
			if backoff.Sleep(ctx, nil, h.bo.Next()) != nil {
				h.abandonDeleted()
				h.save()
				return
			}
			continue
		}
		h.recovered()
		if more {
			if time.Since(h.lastSave) >= time.Second {
				h.save()
				h.updateLag()
			}
			continue
		}
		h.save()
		h.updateLag()
		select {
		case <-ctx.Done():
			h.abandonDeleted()
			h.save()
			return
		case <-h.wake:
		case <-poll.C:
		}
	}
}

// round publishes the lines to send again and up to a window of new ones
// and waits for their acknowledgements (each comes, fails or times out
// within the ack timeout) unless ctx ends first. more: the window was full.
func (h *fwdHost) round(ctx context.Context) (bool, error) {
	f := h.f
	lines := h.retry
	h.retry = nil
	lines = h.readMore(lines)
	if len(lines) == 0 {
		return false, nil
	}
	bytes := 0
	for _, l := range lines {
		bytes += l.n
	}
	more := len(lines) >= f.o.Window || bytes >= f.o.WindowBytes
	if !f.nc.IsConnected() {
		h.retry = lines
		return false, errNotConnected
	}
	if err := f.ensureStream(ctx, h.project); err != nil {
		h.retry = lines
		return false, err
	}
	if h.verify {
		if err := h.markStored(ctx, lines); err != nil {
			h.retry = lines
			return false, err
		}
		h.verify = false
	}
	t0 := time.Now()
	futs := make([]jetstream.PubAckFuture, len(lines))
	var perr error
	for i, l := range lines {
		if l.stored {
			continue
		}
		fut, err := f.js.PublishMsgAsync(l.msg, jetstream.WithMsgID(l.id), jetstream.WithExpectStream(h.stream),
			jetstream.WithStallWait(f.o.AckTimeout))
		if err != nil {
			perr = fmt.Errorf("publish to %s: %w", h.subject, err)
			break
		}
		futs[i] = fut
	}
	ok, dups := 0, 0
	var aerr error
	for i, fut := range futs {
		if fut == nil {
			if !lines[i].stored {
				break // not published (perr) nor after
			}
			if aerr == nil {
				ok = i + 1
				h.acked.Seq = max(h.acked.Seq, lines[i].seq)
			}
			continue
		}
		select {
		case ack := <-fut.Ok():
			if aerr == nil {
				ok = i + 1
				h.acked.Seq = max(h.acked.Seq, ack.Sequence)
				if ack.Duplicate {
					dups++
				}
			}
		case err := <-fut.Err():
			if aerr == nil {
				aerr = fmt.Errorf("publish to %s: %w", h.subject, err)
			}
		case <-ctx.Done():
			aerr = ctx.Err()
		}
		if ctx.Err() != nil {
			break
		}
	}
	h.retry = lines[ok:]
	if ok > 0 {
		f.m.ack.Observe(time.Since(t0).Seconds())
		var bytes, cut int
		for _, l := range lines[:ok] {
			bytes += l.n
			if l.cut {
				cut++
			}
		}
		h.acked.Pos = lines[ok-1].after
		h.mu.Lock()
		h.stat.lines += int64(ok)
		h.mu.Unlock()
		if dups > 0 {
			f.m.dups.WithLabelValues(h.project).Add(float64(dups))
		}
		if cut > 0 {
			f.m.truncated.WithLabelValues(h.project).Add(float64(cut))
		}
		f.m.bytes.WithLabelValues(h.project).Add(float64(bytes))
		// Last: what a reader of the line count sees done is done.
		f.m.lines.WithLabelValues(h.project).Add(float64(ok))
	}
	if err := errors.Join(aerr, perr); err != nil {
		h.verify = true
		if failReason(err) == "no_stream" {
			f.streamLost(h.project)
		}
		return false, err
	}
	return more, nil
}

func (h *fwdHost) failed(err error) {
	now := time.Now()
	reason := failReason(err)
	h.bo.Disconnected(now)
	h.mu.Lock()
	h.stat.lastErr = err.Error()
	h.mu.Unlock()
	h.f.m.failures.WithLabelValues(h.project, reason).Inc()
	if h.failing == 0 {
		h.failedAt = now
	}
	h.failing++
	if h.failing == 1 || now.Sub(h.lastFailLog) >= 5*time.Minute {
		h.lastFailLog = now
		h.f.log.Warn("log forwarding to NATS failed; retrying with backoff (the lines stay stored)",
			"project", h.project, "host", h.host, "reason", reason, "failures", h.failing, "pending_lines", len(h.retry), "err", err)
	}
}

func (h *fwdHost) recovered() {
	if h.failing == 0 {
		return
	}
	h.f.log.Info("log forwarding to NATS resumed", "project", h.project, "host", h.host,
		"failures", h.failing, "after", time.Since(h.failedAt).Round(time.Millisecond))
	h.failing = 0
	h.bo.Connected(time.Now())
	h.mu.Lock()
	h.stat.lastErr = ""
	h.mu.Unlock()
}

// save writes the cursor when it moved; then, without keep_store, deletes
// the segments wholly forwarded.
func (h *fwdHost) save() {
	h.lastSave = time.Now()
	if h.acked == h.saved {
		return
	}
	if err := saveFwdCursor(h.dir, h.acked); err != nil {
		if !errors.Is(err, os.ErrNotExist) { // the project was removed
			h.f.log.Error("log forwarding cursor not saved", "project", h.project, "host", h.host, "err", err)
		}
		return
	}
	h.saved = h.acked
	if !h.f.o.DropForwarded {
		return
	}
	seqs, err := segments(h.dir)
	if err != nil {
		return
	}
	for _, seq := range seqs {
		if seq >= h.saved.Pos.Seg {
			break
		}
		if err := os.Remove(filepath.Join(h.dir, segName(seq))); err == nil {
			h.f.m.deleted.Inc()
		} else if !errors.Is(err, os.ErrNotExist) {
			h.f.log.Error("forwarded log segment not deleted", "project", h.project, "host", h.host, "err", err)
		}
	}
}

// updateLag sets the bytes stored after the acknowledged position.
func (h *fwdHost) updateLag() {
	seqs, err := segments(h.dir)
	if err != nil {
		return
	}
	var lag int64
	for _, seq := range seqs {
		if seq < h.acked.Pos.Seg {
			continue
		}
		fi, err := os.Stat(filepath.Join(h.dir, segName(seq)))
		if err != nil {
			continue
		}
		n := fi.Size()
		if seq == h.acked.Pos.Seg {
			n -= h.acked.Pos.Off
		}
		lag += max(n, 0)
	}
	h.f.m.lag.WithLabelValues(h.project, h.host).Set(float64(lag))
	h.mu.Lock()
	h.stat.lag = lag
	h.mu.Unlock()
}

// abandonDeleted, when the worker ends, counts the lines read and not
// acknowledged whose segment retention deleted meanwhile (they cannot be
// read again after a restart) and moves the cursor past them.
func (h *fwdHost) abandonDeleted() {
	n := 0
	for n < len(h.retry) {
		if _, err := os.Stat(filepath.Join(h.dir, segName(h.retry[n].at.Seg))); !errors.Is(err, os.ErrNotExist) {
			break
		}
		n++
	}
	if n == 0 {
		return
	}
	h.f.m.dropped.WithLabelValues(h.project, "retention").Add(float64(n))
	h.f.log.Warn("log lines deleted by retention before they were forwarded to NATS", "project", h.project, "host", h.host, "lines", n)
	h.mu.Lock()
	h.stat.dropped += int64(n)
	if n < len(h.retry) {
		h.acked.Pos = h.retry[n].at
	} else {
		h.acked.Pos = h.read
	}
	h.mu.Unlock()
	h.retry = h.retry[n:]
}

// markStored marks the lines JetStream stored without us seeing the
// acknowledgement: the messages of the host's subject after the last
// sequence acknowledged whose id is one of the lines'. Matching by id
// assumes nothing about their order (a publish may fail and a later one
// succeed). With no sequence known (a new cursor) there is nothing to
// look at; the duplicate window still drops re-sends.
func (h *fwdHost) markStored(ctx context.Context, lines []*fwdLine) error {
	if h.acked.Seq == 0 {
		return nil
	}
	ids := make(map[string]*fwdLine, len(lines))
	for _, l := range lines {
		ids[l.id] = l
	}
	ctx, cancel := context.WithTimeout(ctx, h.f.o.AckTimeout)
	defer cancel()
	st, err := h.f.js.Stream(ctx, h.stream)
	if err != nil {
		return fmt.Errorf("%w %s: %w", errStream, h.stream, err)
	}
	found := 0
	seq := h.acked.Seq + 1
	for range 2 * h.f.o.Window { // only this worker publishes to the subject
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(h.subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("look for lines stored in %s: %w", h.stream, err)
		}
		if l := ids[m.Header.Get(jetstream.MsgIDHeader)]; l != nil && !l.stored {
			l.stored, l.seq = true, m.Sequence
			found++
		}
		seq = m.Sequence + 1
	}
	if found > 0 {
		h.f.log.Info("lines stored by JetStream before a failure or a restart, not sent again",
			"project", h.project, "host", h.host, "lines", found)
	}
	return nil
}
