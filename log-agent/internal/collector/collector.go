// Package collector runs one log-collection project on this node: a
// discovery (the project's globs, its Docker containers or its Kubernetes
// pods) feeding a tail.Tailer, a batcher that closes batches by lines
// (batch), bytes (buffer) and time (interval), compresses them and appends
// them to the project's spool, and a shipper that hands the spooled
// batches to a Sink and drops them from the spool once acknowledged.
//
//	discovery ─specs→ tailer ─chunks (bounded)→ batcher ─append→ spool ─read→ shipper ─Ship→ Sink
//	                                             │ checkpoint offsets                 │ ack
//
// # Delivery guarantees
//
// A file's checkpoint offset moves only after its lines are in the spool,
// and is saved (after an fsync of the spool) every CheckpointEvery, before
// any spool segment is deleted, and on shutdown. A batch leaves the spool
// only when the Sink acknowledged it. After a crash the collector resumes
// each file at max(checkpoint, end of the file's lines found in the spool),
// and re-sends the batches not acknowledged: delivery is at-least-once and
// a receiver that drops records by (source id, offset) — see package batch
// — stores each line exactly once. After a clean stop nothing is sent
// twice.
//
// The only loss is the spool's bound: when the sink stays away until the
// spool is full, the oldest batches are deleted, counted in Status and
// logged. Every batch counts once, shipped or dropped: the spool owns that
// decision (see package spool); a batch the sink acknowledged counts
// shipped even when the spool deleted it while it was being delivered. Memory stays bounded: chunks wait on a small channel, the batcher
// holds one batch, the shipper at most ShipMaxBytes.
package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/agentfleet/libagent/logship"

	"github.com/agentfleet/log-agent/internal/batch"
	"github.com/agentfleet/log-agent/internal/checkpoint"
	"github.com/agentfleet/log-agent/internal/project"
	"github.com/agentfleet/log-agent/internal/spool"
	"github.com/agentfleet/log-agent/internal/tail"
)

// Sink receives the batches. Ship delivers batches in order and returns
// how many of the first ones the sink acknowledged (holds durably); err
// describes why the rest were not. It must honour ctx. The collector calls
// Ship from one goroutine and retries the rest with backoff.
type Sink interface {
	Ship(ctx context.Context, batches []*batch.Batch) (acked int, err error)
}

// Discovery finds what a project collects and keeps the tailer's specs up
// to date until ctx is done (docker containers, k8s pods).
type Discovery interface {
	Run(ctx context.Context, set func([]tail.Spec)) error
	// Info is the seed's per-node task_info entries.
	Info() []map[string]any
}

// Defaults of Options.
const (
	DefaultSpoolBytes      = 256 << 20
	DefaultCheckpointEvery = time.Second
	DefaultShipMaxBatches  = 256
	DefaultShipMaxBytes    = 1 << 20
	chunkQueue             = 4
)

// Options configure a Collector.
type Options struct {
	Project *project.Project
	// Dir is the project's state directory: checkpoint.json and spool/.
	Dir string
	// Sink receives the batches; nil: they wait in the spool.
	Sink Sink
	// Discovery: nil for logtail (the project's paths).
	Discovery       Discovery
	SpoolBytes      int64
	CheckpointEvery time.Duration
	ShipMaxBatches  int
	ShipMaxBytes    int64
	Backoff         *backoff.Backoff
	Log             *slog.Logger
	Now             func() time.Time
	// Tail tunes the tailer (Project, Store, Log and Now are set here).
	Tail tail.Options

	// afterShip, for tests, runs between the sink's acknowledgement of
	// batches and the spool's.
	afterShip func(acked []*batch.Batch)
}

// Status is a project's state on this node.
type Status struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Running bool   `json:"running"`
	Files   int    `json:"files"`
	// Lines and Bytes read from the sources; Bytes counts raw bytes.
	Lines     uint64 `json:"lines"`
	Bytes     uint64 `json:"bytes"`
	Excluded  uint64 `json:"excluded"`
	Capped    uint64 `json:"capped"`
	BadFormat uint64 `json:"bad_format"`
	// Shipped: acknowledged by the sink.
	ShippedLines   uint64 `json:"shipped_lines"`
	ShippedBytes   uint64 `json:"shipped_bytes"`
	ShippedBatches uint64 `json:"shipped_batches"`
	// Dropped: deleted from the full spool unshipped.
	DroppedBatches int64 `json:"dropped_batches"`
	DroppedLines   int64 `json:"dropped_lines"`
	DroppedBytes   int64 `json:"dropped_bytes"`
	// LostBytes: truncated before read, no copy found (tail.Stats).
	LostBytes    uint64 `json:"lost_bytes"`
	SpoolBytes   int64  `json:"spool_bytes"`
	SpoolPending int    `json:"spool_pending"`
	// LagBytes: bytes in the sources not yet read plus bytes in the spool
	// not yet acknowledged.
	LagBytes  int64            `json:"lag_bytes"`
	Errors    uint64           `json:"errors"`
	LastError string           `json:"last_error,omitempty"`
	Info      []map[string]any `json:"info"`
}

// Collector is one running project. Status is safe for concurrent use.
type Collector struct {
	opts  Options
	p     *project.Project
	log   *slog.Logger
	store *checkpoint.Store
	sp    *spool.Spool
	tl    *tail.Tailer

	running atomic.Bool
	errs    atomic.Uint64
	lastErr atomic.Value
	saveMu  sync.Mutex
}

// New opens the project's checkpoints and spool (recovering them after a
// crash).
func New(opts Options) (*Collector, error) {
	p := opts.Project
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SpoolBytes <= 0 {
		opts.SpoolBytes = DefaultSpoolBytes
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.ShipMaxBatches <= 0 {
		opts.ShipMaxBatches = DefaultShipMaxBatches
	}
	if opts.ShipMaxBytes <= 0 {
		opts.ShipMaxBytes = DefaultShipMaxBytes
	}
	if opts.Backoff == nil {
		opts.Backoff = &backoff.Backoff{Min: time.Second, Max: time.Minute}
	}
	log := opts.Log.With("project", p.Name)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("collector %s: %w", p.Name, err)
	}
	store, err := checkpoint.Open(filepath.Join(opts.Dir, "checkpoint.json"), p.Name, opts.Now)
	if err != nil {
		return nil, err
	}
	c := &Collector{opts: opts, p: p, log: log, store: store}
	ends := map[string]int64{}
	sp, err := spool.Open(filepath.Join(opts.Dir, "spool"), spool.Options{
		MaxBytes: opts.SpoolBytes,
		Persist:  store.Save,
		OnDrop: func(d spool.Drop) {
			log.Warn("spool full: oldest batches dropped unshipped",
				"batches", d.Batches, "lines", d.Lines, "bytes", d.Bytes, "first_seq", d.First, "last_seq", d.Last)
		},
	}, func(b *batch.Batch, _ bool) {
		for _, s := range b.Sources {
			ends[s.ID] = max(ends[s.ID], s.End)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("collector %s: %w", p.Name, err)
	}
	c.sp = sp
	// The spool may reach further than the last saved checkpoint (a crash
	// between an append and the next save).
	for id, end := range ends {
		store.Advance(id, end)
	}
	to := opts.Tail
	to.Project, to.Store, to.Log, to.Now = p, store, log, opts.Now
	c.tl = tail.New(to)
	return c, nil
}

// Run collects until ctx is done, then flushes the open batch into the
// spool, saves the checkpoints and closes the spool. It returns the first
// failure of a part (nil on a clean stop).
func (c *Collector) Run(ctx context.Context) error {
	c.running.Store(true)
	defer c.running.Store(false)
	chunks := make(chan *tail.Chunk, chunkQueue)
	tctx, stopTail := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	var tailDone = make(chan struct{})
	g.Go(func() error {
		defer close(tailDone)
		return c.tl.Run(tctx, chunks)
	})
	go func() {
		// Stop the tailer when the run ends (or a part failed).
		<-gctx.Done()
		stopTail()
	}()
	g.Go(func() error { return c.batcher(chunks, tailDone) })
	g.Go(func() error { return c.shipper(gctx) })
	if d := c.opts.Discovery; d != nil {
		g.Go(func() error {
			err := d.Run(gctx, c.tl.SetSpecs)
			if err != nil && gctx.Err() == nil {
				return fmt.Errorf("discovery: %w", err)
			}
			return nil
		})
	} else {
		c.tl.SetSpecs([]tail.Spec{c.logtailSpec()})
	}
	err := g.Wait()
	stopTail()
	if perr := c.persist(); err == nil {
		err = perr
	}
	if cerr := c.sp.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *Collector) logtailSpec() tail.Spec {
	return tail.Spec{Key: "paths", Patterns: c.p.Paths, Format: tail.Plain,
		AtEnd: c.store.Fresh() && c.p.ReadFrom == project.ReadFromEnd}
}

// Fresh reports whether the project had no checkpoints when opened.
func (c *Collector) Fresh() bool { return c.store.Fresh() }

// persist makes the spool durable, then the checkpoints that point into
// it.
func (c *Collector) persist() error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if err := c.sp.Sync(); err != nil {
		return err
	}
	if err := c.store.Save(); err != nil {
		return err
	}
	c.writeStatus()
	return nil
}

// writeStatus leaves the status in <dir>/status.json for local tools (no
// fsync: it is rewritten every checkpoint period).
func (c *Collector) writeStatus() {
	b, err := json.MarshalIndent(c.Status(), "", "  ")
	if err != nil {
		return
	}
	tmp := filepath.Join(c.opts.Dir, ".status.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, filepath.Join(c.opts.Dir, "status.json"))
	}
}

func (c *Collector) fail(err error) {
	c.errs.Add(1)
	c.lastErr.Store(err.Error())
	c.log.Warn("collector", "err", err)
}

// batcher builds batches from chunks until the tailer stopped and the
// channel is drained, then spools the open batch.
func (c *Collector) batcher(in <-chan *tail.Chunk, tailDone <-chan struct{}) error {
	b := newBuilder(c.p)
	interval := c.p.IntervalDuration()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	save := time.NewTicker(c.opts.CheckpointEvery)
	defer save.Stop()
	armed := false
	flush := func() error {
		if armed {
			timer.Stop()
			armed = false
		}
		return c.flush(b)
	}
	for {
		select {
		case ck := <-in:
			for i := range ck.Lines {
				l := &ck.Lines[i]
				if b.lines > 0 && b.size+len(l.Data) > c.p.Buffer {
					if err := flush(); err != nil {
						return err
					}
				}
				b.add(ck, l)
				if !armed {
					timer.Reset(interval)
					armed = true
				}
				if b.lines >= c.p.Batch || b.size >= c.p.Buffer {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			b.mark(ck)
			ck.Release()
			if b.lines == 0 {
				// Nothing waits in the batch: the progress (excluded
				// lines, a finished file) is recorded now.
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			armed = false
			if err := c.flush(b); err != nil {
				return err
			}
		case <-save.C:
			if err := c.persist(); err != nil {
				c.fail(err)
			}
		case <-tailDone:
			// The tailer is done sending: spool what is left.
			for {
				select {
				case ck := <-in:
					for i := range ck.Lines {
						b.add(ck, &ck.Lines[i])
						if b.lines >= c.p.Batch || b.size >= c.p.Buffer {
							if err := c.flush(b); err != nil {
								return err
							}
						}
					}
					b.mark(ck)
					ck.Release()
				default:
					return c.flush(b)
				}
			}
		}
	}
}

// builder accumulates one batch.
type builder struct {
	project string
	block   []byte
	idx     map[string]int
	sources []batch.Source
	lines   int
	size    int
}

func newBuilder(p *project.Project) *builder {
	return &builder{project: p.Name, idx: map[string]int{}, block: make([]byte, 0, p.Buffer+1024)}
}

func (b *builder) source(ck *tail.Chunk, first int64) int {
	i, ok := b.idx[ck.ID]
	if !ok {
		i = len(b.sources)
		b.idx[ck.ID] = i
		b.sources = append(b.sources, batch.Source{ID: ck.ID, Name: ck.Name, First: first, End: first})
	}
	return i
}

func (b *builder) add(ck *tail.Chunk, l *tail.Line) {
	i := b.source(ck, l.Offset)
	r := logship.Record{Source: i, Offset: l.Offset, Time: l.Time, Stream: l.Stream, Flags: l.Flags, Data: l.Data}
	b.block = logship.AppendRecord(b.block, &r)
	b.lines++
	b.size += len(l.Data)
	// End: past this line; mark moves it to the chunk's End.
	if s := &b.sources[i]; l.End > s.End {
		s.End = l.End
	}
}

// mark records how far the chunk accounts for its source.
func (b *builder) mark(ck *tail.Chunk) {
	i := b.source(ck, ck.End)
	if s := &b.sources[i]; ck.End > s.End {
		s.End = ck.End
	}
}

func (b *builder) reset() {
	b.block = b.block[:0]
	if cap(b.block) > 4<<20 {
		b.block = nil
	}
	clear(b.idx)
	b.sources = b.sources[:0]
	b.lines, b.size = 0, 0
}

// flush spools the batch (retrying while the spool fails: back-pressure,
// nothing dropped) and moves the checkpoints.
func (c *Collector) flush(b *builder) error {
	if len(b.sources) == 0 {
		return nil
	}
	if b.lines > 0 {
		bt := &batch.Batch{
			Project: b.project, Created: c.opts.Now().UnixNano(), Lines: b.lines, Bytes: b.size,
			Sources: append([]batch.Source(nil), b.sources...),
			Data:    logship.Compress(nil, b.block),
		}
		for {
			_, err := c.sp.Append(bt)
			if err == nil {
				break
			}
			if errors.Is(err, spool.ErrClosed) {
				return err
			}
			c.fail(fmt.Errorf("spool: %w", err))
			time.Sleep(time.Second) // a failing disk: retry, holding the pipeline
		}
	}
	for _, s := range b.sources {
		c.store.Advance(s.ID, s.End)
	}
	b.reset()
	return nil
}

// shipper feeds the spooled batches to the sink.
func (c *Collector) shipper(ctx context.Context) error {
	if c.opts.Sink == nil {
		<-ctx.Done()
		return nil
	}
	r := c.sp.NewReader()
	defer r.Close()
	bo := c.opts.Backoff
	for {
		bs, err := r.Next(ctx, c.opts.ShipMaxBatches, c.opts.ShipMaxBytes)
		if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
			return nil
		}
		if err != nil {
			c.fail(err)
			r.Rewind()
			if bo.Wait(ctx, nil) != nil {
				return nil
			}
			continue
		}
		for len(bs) > 0 {
			n, err := c.ship(ctx, bs)
			if n > 0 {
				if c.opts.afterShip != nil {
					c.opts.afterShip(bs[:n])
				}
				// The spool counts them shipped, even those it deleted
				// meanwhile to make room.
				if aerr := c.sp.Ack(bs[n-1].Seq); aerr != nil && !errors.Is(aerr, spool.ErrClosed) {
					c.fail(aerr)
				}
				bs = bs[n:]
			}
			if err == nil {
				bo.Connected(c.opts.Now())
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			bo.Disconnected(c.opts.Now())
			c.fail(fmt.Errorf("ship: %w", err))
			if bo.Wait(ctx, nil) != nil {
				return nil
			}
			// Read again from the spool: batches dropped from it while
			// the sink was away are not sent.
			r.Rewind()
			break
		}
	}
}

// ship calls the sink, turning a panic into an error.
func (c *Collector) ship(ctx context.Context, bs []*batch.Batch) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, fmt.Errorf("sink panic: %v", p)
		}
	}()
	n, err = c.opts.Sink.Ship(ctx, bs)
	if n < 0 || n > len(bs) {
		return 0, fmt.Errorf("sink acknowledged %d of %d batches", n, len(bs))
	}
	if n < len(bs) && err == nil {
		err = fmt.Errorf("sink acknowledged %d of %d batches", n, len(bs))
	}
	return n, err
}

// Status reports the project's counters.
func (c *Collector) Status() Status {
	ts := c.tl.Stats()
	ss := c.sp.Stats()
	st := Status{
		Name: c.p.Name, Type: c.p.Type, Running: c.running.Load(),
		Files: ts.Files, Lines: ts.Lines, Bytes: ts.Bytes, Excluded: ts.Excluded, Capped: ts.Capped,
		BadFormat: ts.BadFormat, LostBytes: ts.LostBytes,
		ShippedLines: uint64(ss.ShippedLines), ShippedBytes: uint64(ss.ShippedBytes), ShippedBatches: uint64(ss.ShippedBatches),
		DroppedBatches: ss.DroppedBatches, DroppedLines: ss.DroppedLines, DroppedBytes: ss.DroppedBytes,
		SpoolBytes: ss.Bytes, SpoolPending: ss.Pending,
		LagBytes: ts.Unread + max(ss.PendingBytes, 0),
		Errors:   c.errs.Load() + ts.Errors,
	}
	st.LastError = ts.LastError
	if e, ok := c.lastErr.Load().(string); ok && e != "" {
		st.LastError = e
	}
	if d := c.opts.Discovery; d != nil {
		st.Info = d.Info()
	} else {
		for _, p := range c.p.Paths {
			st.Info = append(st.Info, map[string]any{"dir": p})
		}
	}
	return st
}
