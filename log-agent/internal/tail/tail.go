// Package tail follows log files: it finds them by glob, reads their new
// lines, follows them across rotation (rename and copytruncate), finishes
// files that were deleted or rotated away, and resumes from checkpoints
// after a restart. Its output is a stream of Chunks, each a run of lines
// of one file with the offset up to which that file is accounted for.
//
// # Discovery
//
// Every Spec holds globs; they are evaluated at start, every Options.Scan
// and right after a followed file was renamed, deleted or truncated. A file
// found is matched, in this order, with
//
//  1. a checkpoint of the same device and inode whose fingerprint matches:
//     reading resumes at the checkpoint's offset (a restart, or a file seen
//     before);
//  2. a lineage whose file was truncated in place and whose fingerprint it
//     carries: it is logrotate's copy, and reading continues in it where the
//     truncated file was left (no line of the copytruncate window is lost
//     when the glob matches the copy);
//  3. a followed file with the same fingerprint but another inode: a copy
//     of a file being read, ignored (kept as a shadow, adopted by rule 2
//     when the original is truncated);
//  4. a checkpoint with the same fingerprint that is not followed (a copy
//     made while the agent was down): reading resumes at its offset;
//  5. otherwise a new file, read from its beginning — except for the files
//     found by the first scan of a Spec marked AtEnd (the files present
//     when a project first starts, with read_from "end"), which start after
//     their last complete line.
//
// Files whose first bytes are a gzip, bzip2, xz or zstd header are skipped
// (rotated and compressed copies).
//
// # Following
//
// A followed file is read until its end, then checked every Options.Poll:
// its size (truncated when smaller than the read offset, or when its
// fingerprint no longer matches) and whether its path still names it. A
// file renamed away from its path or deleted keeps its open descriptor and
// is read to its end; it is finished once it has not grown for
// Options.RotateWait. A file that stays where it is but does not grow for
// Options.CloseIdle has its descriptor closed and reopened when it grows.
//
// The Tailer runs in one goroutine (Run); SetSpecs and Stats are safe to
// call from others. Lines are handed over on a bounded channel: when the
// consumer is slow, reading waits (back-pressure, no unbounded memory).
package tail

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentfleet/log-agent/internal/checkpoint"
	"github.com/agentfleet/log-agent/internal/project"
)

// Defaults of Options.
const (
	DefaultPoll             = 250 * time.Millisecond
	DefaultScan             = 10 * time.Second
	DefaultRotateWait       = 5 * time.Second
	DefaultCloseIdle        = 5 * time.Minute
	DefaultFingerprintBytes = 1024
	DefaultReadBuffer       = 256 << 10
	DefaultKeep             = 24 * time.Hour
	DefaultMaxFinished      = 4096
)

// Spec is a set of files to follow.
type Spec struct {
	// Key names the spec uniquely within the Tailer ("paths",
	// "ctr:<id>", "pod:<uid>/<container>").
	Key string
	// Patterns are absolute globs (filepath.Match syntax); Options.Root
	// is put in front of them.
	Patterns []string
	// Name is the records' source name; empty: the file's path.
	Name string
	// StripPrefix, when set, makes a file's source name Name + ":" + its
	// path without Root + StripPrefix (files inside a container).
	StripPrefix string
	Format      Format
	// AtEnd: never-seen files found by this spec's first scan start after
	// their last complete line instead of at their beginning.
	AtEnd bool
}

// GlobEscape quotes the glob metacharacters of a literal path, for a
// Spec's Patterns made from paths that come from outside (a container's log
// path, a pod's directory).
func GlobEscape(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Options configure a Tailer.
type Options struct {
	Project *project.Project
	Store   *checkpoint.Store
	Log     *slog.Logger
	// Now is the clock (default time.Now).
	Now        func() time.Time
	Poll       time.Duration
	Scan       time.Duration
	RotateWait time.Duration
	CloseIdle  time.Duration
	// FingerprintBytes is how many first bytes identify a file.
	FingerprintBytes int
	ReadBuffer       int
	// Root is put in front of every pattern (the host's root when the
	// agent runs in a container); "" is none.
	Root string
	// Keep and MaxFinished bound the checkpoints kept of finished files.
	Keep        time.Duration
	MaxFinished int
}

// Chunk is a run of lines of one lineage.
type Chunk struct {
	ID    string
	Name  string
	Lines []Line
	// End: every byte of the lineage before End is in Lines, in an
	// earlier chunk, or was dropped by exclude.
	End int64
	// Size is the file's size when it was read.
	Size int64
	// Done: the lineage is finished (no more chunks).
	Done bool

	arena *[]byte
}

// chunkMem recycles the chunks' line bytes and line slices: at 100 MB/s a
// new 256 KiB arena per read would be most of the agent's garbage.
var (
	arenaPool = sync.Pool{New: func() any { b := make([]byte, 0, DefaultReadBuffer+4096); return &b }}
	linesPool = sync.Pool{New: func() any { l := make([]Line, 0, 2048); return &l }}
)

// Release gives the chunk's memory back; the chunk and its lines' Data
// must not be used after.
func (c *Chunk) Release() {
	if c.arena != nil && cap(*c.arena) <= 4*DefaultReadBuffer {
		*c.arena = (*c.arena)[:0]
		arenaPool.Put(c.arena)
	}
	if cap(c.Lines) <= 8192 {
		l := c.Lines[:0]
		linesPool.Put(&l)
	}
	c.arena, c.Lines = nil, nil
}

// Stats are the tailer's counters.
type Stats struct {
	Files       int    // followed now
	Lines       uint64 // records emitted
	Bytes       uint64 // raw bytes read
	Excluded    uint64 // records dropped by exclude
	Capped      uint64 // records cut at max_line
	BadFormat   uint64 // docker/CRI lines that did not decode
	Rotations   uint64 // files renamed away or deleted
	Truncations uint64 // files truncated in place
	Adopted     uint64 // copies continued after a truncation
	// LostBytes: bytes of truncated files known to be unread when no copy
	// was found (a lower bound: writes after the last check are unknown).
	LostBytes uint64
	Errors    uint64
	LastError string
	// Unread: bytes in the followed files after the read offsets.
	Unread int64
}

type fingerprint struct {
	n int
	h uint64
}

func fpOf(b []byte) fingerprint {
	h := fnv.New64a()
	h.Write(b)
	return fingerprint{n: len(b), h: h.Sum64()}
}

// matches reports whether b (a file's first bytes) starts with the
// fingerprinted bytes.
func (fp fingerprint) matches(b []byte) bool {
	if len(b) < fp.n {
		return false
	}
	return fpOf(b[:fp.n]).h == fp.h
}

type devIno struct{ dev, ino uint64 }

type file struct {
	id    string
	spec  string // "" after its spec was removed
	name  string
	path  string
	key   devIno
	fd    *os.File
	fp    fingerprint
	off   int64 // next byte to read
	size  int64 // last size seen
	proc  *lineProc
	grown time.Time // last time it grew (or was opened)
	// release: the file is finished once read to its end and idle for
	// wait (renamed away, deleted, no longer matched, spec removed).
	release bool
	wait    time.Duration
	seen    bool // matched by the current scan
	sentEnd int64
}

type youngFile struct {
	spec  string
	path  string
	size  int64
	grown time.Time
	atEnd bool
}

type orphan struct {
	file     *file // its proc, offset and fingerprint, detached
	lastSize int64
	at       time.Time
}

// Tailer follows the files of a project's specs.
type Tailer struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	cfg  procConfig
	cnt  lineCounts

	specMu  sync.Mutex
	next    []Spec // set by SetSpecs, applied by the loop
	changed chan struct{}

	specs   map[string]*Spec
	scanned map[string]bool // specs scanned at least once
	files   map[string]*file
	byKey   map[devIno]*file
	shadows map[devIno]string // copy → lineage id it copies
	skipped map[devIno]int64  // compressed files → size when checked
	// young: files found shorter than a fingerprint that match nothing
	// yet; read once they reach FingerprintBytes (a copy being written
	// is recognised then) or stop growing for RotateWait.
	young   map[devIno]*youngFile
	orphans []*orphan
	// ended: the offsets lineages finished at in this run (the store's
	// offset lags until the batcher spooled their last lines).
	ended  map[string]int64
	rescan bool
	last   time.Time // last scan
	buf    []byte
	out    chan<- *Chunk

	st      atomic.Pointer[Stats]
	errs    atomic.Uint64
	lastErr atomic.Value

	// beforeRead, for tests, runs in read just before a file's bytes are
	// read (where a busy machine may deschedule the tailer).
	beforeRead func(f *file)
}

// New returns a Tailer; Run starts it.
func New(opts Options) *Tailer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Poll, DefaultPoll)
	def(&opts.Scan, DefaultScan)
	def(&opts.RotateWait, DefaultRotateWait)
	def(&opts.CloseIdle, DefaultCloseIdle)
	def(&opts.Keep, DefaultKeep)
	if opts.FingerprintBytes <= 0 {
		opts.FingerprintBytes = DefaultFingerprintBytes
	}
	if opts.ReadBuffer <= 0 {
		opts.ReadBuffer = DefaultReadBuffer
	}
	if opts.MaxFinished <= 0 {
		opts.MaxFinished = DefaultMaxFinished
	}
	p := opts.Project
	t := &Tailer{
		opts: opts, log: opts.Log, now: opts.Now,
		cfg:     procConfig{maxLine: p.MaxLine, exclude: p.ExcludeRE(), mlStart: p.MultilineRE()},
		changed: make(chan struct{}, 1),
		specs:   map[string]*Spec{}, scanned: map[string]bool{},
		files: map[string]*file{}, byKey: map[devIno]*file{},
		shadows: map[devIno]string{}, skipped: map[devIno]int64{}, young: map[devIno]*youngFile{},
		ended: map[string]int64{},
		buf:   make([]byte, opts.ReadBuffer),
	}
	if p.Multiline != nil {
		t.cfg.mlMax = p.Multiline.MaxLines
		t.cfg.mlTimeout = time.Duration(p.Multiline.Timeout) * time.Second
	}
	t.st.Store(&Stats{})
	return t
}

// SetSpecs replaces the set of specs. Files of removed specs are read to
// their end and finished; specs added are scanned at once.
func (t *Tailer) SetSpecs(specs []Spec) {
	t.specMu.Lock()
	t.next = append([]Spec(nil), specs...)
	if t.next == nil {
		t.next = []Spec{}
	}
	t.specMu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Stats returns the counters as of the last loop turn.
func (t *Tailer) Stats() Stats {
	s := *t.st.Load()
	s.Errors = t.errs.Load()
	if e, ok := t.lastErr.Load().(string); ok {
		s.LastError = e
	}
	return s
}

func (t *Tailer) fail(err error) {
	t.errs.Add(1)
	t.lastErr.Store(err.Error())
	t.log.Warn("tail", "err", err)
}

var errStopped = errors.New("tail: stopped")

// Run follows the files until ctx is done, sending chunks to out. It
// returns nil when ctx ends.
func (t *Tailer) Run(ctx context.Context, out chan<- *Chunk) error {
	t.out = out
	tick := time.NewTicker(t.opts.Poll)
	defer tick.Stop()
	defer t.closeAll()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if err := t.turn(ctx); err != nil {
			if errors.Is(err, errStopped) {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-t.changed:
		}
	}
}

// turn does one round: apply specs, scan when due, read every file to its
// end (round robin, one buffer per file per pass), then the periodic work.
func (t *Tailer) turn(ctx context.Context) error {
	now := t.now()
	t.applySpecs(now)
	if t.rescan || now.Sub(t.last) >= t.opts.Scan {
		if err := t.scan(ctx, now); err != nil {
			return err
		}
	}
	for {
		busy := false
		for _, f := range t.sorted() {
			more, err := t.read(ctx, f)
			if err != nil {
				return err
			}
			busy = busy || more
		}
		if !busy {
			break
		}
		if ctx.Err() != nil {
			return errStopped
		}
		now = t.now()
		if t.rescan || now.Sub(t.last) >= t.opts.Scan {
			if err := t.scan(ctx, now); err != nil {
				return err
			}
		}
	}
	now = t.now()
	if err := t.checkAll(ctx, now); err != nil {
		return err
	}
	if t.rescan {
		if err := t.scan(ctx, now); err != nil {
			return err
		}
	}
	if err := t.checkYoung(ctx, now); err != nil {
		return err
	}
	if err := t.periodic(ctx, now); err != nil {
		return err
	}
	t.publish()
	return nil
}

func (t *Tailer) sorted() []*file {
	fs := make([]*file, 0, len(t.files))
	for _, f := range t.files {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].id < fs[j].id })
	return fs
}

func (t *Tailer) bump(fn func(*Stats)) {
	s := *t.st.Load()
	fn(&s)
	t.st.Store(&s)
}

// publish refreshes the Stats snapshot.
func (t *Tailer) publish() {
	s := *t.st.Load()
	s.Files = len(t.files)
	s.Lines, s.Bytes, s.Excluded, s.Capped, s.BadFormat = t.cnt.lines, t.cnt.bytes, t.cnt.excluded, t.cnt.capped, t.cnt.badFormat
	var unread int64
	for _, f := range t.files {
		if f.size > f.off {
			unread += f.size - f.off
		}
	}
	s.Unread = unread
	t.st.Store(&s)
}

func (t *Tailer) closeAll() {
	for _, f := range t.files {
		if f.fd != nil {
			f.fd.Close()
			f.fd = nil
		}
	}
	t.publish()
}
