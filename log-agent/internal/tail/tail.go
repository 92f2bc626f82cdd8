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
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

func (t *Tailer) applySpecs(now time.Time) {
	t.specMu.Lock()
	next := t.next
	t.next = nil
	t.specMu.Unlock()
	if next == nil {
		return
	}
	keep := map[string]*Spec{}
	for i := range next {
		s := next[i]
		keep[s.Key] = &s
	}
	for key := range t.specs {
		if _, ok := keep[key]; !ok {
			delete(t.scanned, key)
			for _, f := range t.files {
				if f.spec == key {
					f.spec = ""
					t.releaseFile(f, 0)
				}
			}
		}
	}
	t.specs = keep
	t.rescan = true
}

func (t *Tailer) releaseFile(f *file, wait time.Duration) {
	if !f.release || wait < f.wait {
		f.wait = wait
	}
	f.release = true
}

// scan evaluates every spec's globs.
func (t *Tailer) scan(ctx context.Context, now time.Time) error {
	t.rescan = false
	t.last = now
	for _, f := range t.files {
		f.seen = false
	}
	seen := map[devIno]bool{}
	keys := make([]string, 0, len(t.specs))
	for k := range t.specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sp := t.specs[k]
		first := !t.scanned[k]
		t.scanned[k] = true
		for _, pat := range sp.Patterns {
			matches, err := filepath.Glob(t.opts.Root + pat)
			if err != nil {
				t.fail(fmt.Errorf("glob %s: %w", pat, err))
				continue
			}
			for _, path := range matches {
				fi, err := os.Stat(path)
				if err != nil || !fi.Mode().IsRegular() {
					continue
				}
				key := devInoOf(path, fi)
				if seen[key] {
					continue
				}
				seen[key] = true
				if err := t.found(ctx, sp, path, fi, key, first && sp.AtEnd, now); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range t.files {
		if !f.seen && !f.release {
			t.releaseFile(f, t.opts.RotateWait)
		}
	}
	for k := range t.shadows {
		if !seen[k] {
			delete(t.shadows, k)
		}
	}
	for k := range t.skipped {
		if !seen[k] {
			delete(t.skipped, k)
		}
	}
	for k := range t.young {
		if !seen[k] {
			delete(t.young, k)
		}
	}
	return nil
}

func devInoOf(path string, fi os.FileInfo) devIno {
	d, i := fileKey(path, fi)
	return devIno{d, i}
}

// found handles one file matched by a glob.
func (t *Tailer) found(ctx context.Context, sp *Spec, path string, fi os.FileInfo, key devIno, atEnd bool, now time.Time) error {
	if f := t.byKey[key]; f != nil {
		f.seen = true
		if f.path != path || f.spec != sp.Key {
			f.path = path
			f.spec = sp.Key
			t.putStore(f, false)
		}
		if f.release && f.spec != "" {
			f.release = false // back under a glob (a rename seen mid-scan)
		}
		return nil
	}
	if _, ok := t.shadows[key]; ok {
		return nil
	}
	if sz, ok := t.skipped[key]; ok && sz == fi.Size() {
		return nil
	}
	if y, ok := t.young[key]; ok {
		y.path = path
		return nil // checkYoung decides
	}
	return t.discover(ctx, sp, path, fi, key, atEnd, now, false)
}

// discover matches a file not followed yet (see the package doc); settled:
// a young file that stopped growing is taken as new even when short.
func (t *Tailer) discover(ctx context.Context, sp *Spec, path string, fi os.FileInfo, key devIno, atEnd bool, now time.Time, settled bool) error {
	fd, err := os.Open(path)
	if err != nil {
		t.fail(fmt.Errorf("open %s: %w", path, err))
		return nil
	}
	head, err := t.head(fd, fi.Size())
	if err != nil {
		fd.Close()
		t.fail(fmt.Errorf("read %s: %w", path, err))
		return nil
	}
	if compressed(head) {
		fd.Close()
		if _, ok := t.skipped[key]; !ok {
			t.log.Debug("skipping a compressed file", "path", path)
		}
		t.skipped[key] = fi.Size()
		return nil
	}
	name := t.sourceName(sp, path)
	nf := &file{spec: sp.Key, name: name, path: path, key: key, fd: fd, size: fi.Size(), grown: now, seen: true}
	all := t.opts.Store.All()
	// 1. a checkpoint of this inode with a matching fingerprint
	for _, c := range all {
		if _, live := t.files[c.ID]; live || t.isOrphan(c.ID) {
			continue
		}
		if c.Dev == key.dev && c.Ino == key.ino && (fingerprint{c.FPLen, c.FPHash}).matches(head) {
			return t.resume(nf, c, head, now)
		}
	}
	// 2. the copy of a truncated lineage
	for i, o := range t.orphans {
		if o.file.fp.n > 0 && o.file.fp.matches(head) {
			t.orphans = append(t.orphans[:i], t.orphans[i+1:]...)
			delete(t.young, key)
			return t.adopt(nf, o, head)
		}
	}
	// 3. a copy of a followed file
	if len(head) > 0 {
		for _, f := range t.files {
			if f.fp.n > 0 && f.fp.matches(head) {
				fd.Close()
				delete(t.young, key)
				t.shadows[key] = f.id
				return nil
			}
		}
	}
	// 4. a checkpoint by fingerprint alone
	if len(head) > 0 {
		for _, c := range all {
			if _, live := t.files[c.ID]; live || t.isOrphan(c.ID) {
				continue
			}
			if c.FPLen > 0 && (fingerprint{c.FPLen, c.FPHash}).matches(head) {
				return t.resume(nf, c, head, now)
			}
		}
	}
	// 5. new — unless it is shorter than a fingerprint and still young: a
	// copy being written looks like that.
	if len(head) < t.opts.FingerprintBytes && !settled {
		fd.Close()
		t.young[key] = &youngFile{spec: sp.Key, path: path, size: fi.Size(), grown: now, atEnd: atEnd}
		return nil
	}
	delete(t.young, key)
	nf.id = checkpoint.NewID()
	nf.fp = fpOf(head)
	nf.proc = newLineProc(t.procCfg(sp.Format), &t.cnt)
	if atEnd {
		off, err := lastLineEnd(fd, fi.Size())
		if err != nil {
			fd.Close()
			t.fail(fmt.Errorf("read %s: %w", path, err))
			return nil
		}
		nf.off = off
	}
	nf.sentEnd = nf.off
	t.track(nf)
	if err := t.putStore(nf, true); err != nil {
		return err
	}
	if nf.off > 0 {
		// Start after the existing lines: the checkpoint moves there now.
		t.opts.Store.Advance(nf.id, nf.off)
	}
	t.log.Debug("following", "path", path, "id", nf.id, "offset", nf.off, "fp", nf.fp.n, "size", nf.size, "ino", key.ino, "live", len(t.files))
	return nil
}

func (t *Tailer) sourceName(sp *Spec, path string) string {
	switch {
	case sp.Name == "":
		return path
	case sp.StripPrefix != "":
		return sp.Name + ":" + strings.TrimPrefix(path, t.opts.Root+sp.StripPrefix)
	}
	return sp.Name
}

func (t *Tailer) procCfg(f Format) *procConfig {
	c := t.cfg
	c.format = f
	return &c
}

func (t *Tailer) isOrphan(id string) bool {
	for _, o := range t.orphans {
		if o.file.id == id {
			return true
		}
	}
	return false
}

func (t *Tailer) track(f *file) {
	t.files[f.id] = f
	t.byKey[f.key] = f
}

// resume continues the lineage of checkpoint c in nf.
func (t *Tailer) resume(nf *file, c checkpoint.File, head []byte, now time.Time) error {
	nf.id = c.ID
	nf.fp = fpOf(head)
	if c.FPLen > nf.fp.n {
		nf.fp = fingerprint{c.FPLen, c.FPHash}
	}
	nf.off = max(c.Offset, t.ended[c.ID])
	delete(t.ended, c.ID)
	if nf.off > nf.size {
		// Shorter than where we were, with the same first bytes: it was
		// truncated and rewritten while we were away. A new lineage.
		t.log.Warn("file shorter than its checkpoint: reading it again from its start",
			"path", nf.path, "offset", c.Offset, "size", nf.size)
		t.opts.Store.Remove(c.ID)
		nf.id = checkpoint.NewID()
		nf.off = 0
		nf.fp = fpOf(head)
	}
	nf.sentEnd = nf.off
	nf.proc = newLineProc(t.procCfg(t.formatOf(nf.spec)), &t.cnt)
	t.track(nf)
	t.log.Debug("resuming", "path", nf.path, "id", nf.id, "offset", nf.off, "fp", nf.fp.n, "ckfp", c.FPLen, "size", nf.size, "ino", nf.key.ino)
	return t.putStore(nf, nf.id != c.ID)
}

func (t *Tailer) formatOf(spec string) Format {
	if sp := t.specs[spec]; sp != nil {
		return sp.Format
	}
	return Plain
}

// adopt continues orphan o (a truncated lineage) in its copy nf.
func (t *Tailer) adopt(nf *file, o *orphan, head []byte) error {
	of := o.file
	nf.id, nf.proc, nf.off, nf.sentEnd = of.id, of.proc, of.off, of.sentEnd
	nf.fp = of.fp
	if fp := fpOf(head); fp.n > nf.fp.n {
		nf.fp = fp
	}
	t.track(nf)
	t.bump(func(s *Stats) { s.Adopted++ })
	t.log.Debug("continuing a truncated file in its copy", "path", nf.path, "id", nf.id, "offset", nf.off)
	return t.putStore(nf, false)
}

// putStore records f's identity; sync saves the store at once (a new
// lineage must be on disk before any of its records is in the spool).
func (t *Tailer) putStore(f *file, sync bool) error {
	t.opts.Store.Put(checkpoint.File{ID: f.id, Name: f.name, Spec: f.spec, Path: f.path,
		Dev: f.key.dev, Ino: f.key.ino, FPLen: f.fp.n, FPHash: f.fp.h})
	if sync {
		if err := t.opts.Store.Save(); err != nil {
			t.fail(err)
		}
	}
	return nil
}

// head reads a file's first bytes (the fingerprint's).
func (t *Tailer) head(fd *os.File, size int64) ([]byte, error) {
	n := min(size, int64(t.opts.FingerprintBytes))
	b := make([]byte, n)
	k, err := fd.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

func compressed(b []byte) bool {
	return bytes.HasPrefix(b, []byte{0x1f, 0x8b}) || // gzip
		bytes.HasPrefix(b, []byte("BZh")) ||
		bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) ||
		bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) // zstd
}

// lastLineEnd returns the offset after the last "\n" of the file's last
// 64 KiB, or size when there is none.
func lastLineEnd(fd *os.File, size int64) (int64, error) {
	n := min(size, 64<<10)
	b := make([]byte, n)
	k, err := fd.ReadAt(b, size-n)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	b = b[:k]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return size - n + int64(i) + 1, nil
	}
	return size, nil
}

// chunkBuilder collects a chunk's lines, copying their bytes.
type chunkBuilder struct {
	ck    *Chunk
	arena []byte
	spans []int
}

func (b *chunkBuilder) add(l *Line) {
	b.spans = append(b.spans, len(b.arena))
	b.arena = append(b.arena, l.Data...)
	ln := *l
	ln.Data = nil
	b.ck.Lines = append(b.ck.Lines, ln)
}

func (b *chunkBuilder) done() *Chunk {
	*b.ck.arena = b.arena
	for i := range b.ck.Lines {
		end := len(b.arena)
		if i+1 < len(b.spans) {
			end = b.spans[i+1]
		}
		b.ck.Lines[i].Data = b.arena[b.spans[i]:end:end]
	}
	return b.ck
}

func newBuilder(f *file, hint int) *chunkBuilder {
	arena := arenaPool.Get().(*[]byte)
	if cap(*arena) < hint {
		*arena = make([]byte, 0, hint)
	}
	lines := linesPool.Get().(*[]Line)
	return &chunkBuilder{ck: &Chunk{ID: f.id, Name: f.name, arena: arena, Lines: (*lines)[:0]}, arena: (*arena)[:0]}
}

// send hands a chunk over, waiting for room.
func (t *Tailer) send(ctx context.Context, f *file, b *chunkBuilder, end int64, done bool) error {
	ck := b.done()
	ck.End, ck.Size, ck.Done = end, f.size, done
	if len(ck.Lines) == 0 && end <= f.sentEnd && !done {
		return nil
	}
	select {
	case t.out <- ck:
		f.sentEnd = max(f.sentEnd, end)
		return nil
	case <-ctx.Done():
		return errStopped
	}
}

// read reads one buffer of f; more reports that the buffer was filled.
func (t *Tailer) read(ctx context.Context, f *file) (more bool, err error) {
	if f.fd == nil {
		return false, nil
	}
	if f.off == 0 && f.fp.n < t.opts.FingerprintBytes {
		// Nothing read yet and short when found: it may turn out to be
		// a copy being written (logrotate's copytruncate).
		if copied, err := t.copyOf(f); copied || err != nil {
			return false, err
		}
	}
	// The bytes at f.off must still be this lineage's: a file truncated
	// and rewritten past f.off since the last read would otherwise feed
	// the new content into the old lineage.
	if same, size, err := t.same(f); err != nil {
		t.fail(err)
		return false, nil
	} else if !same {
		return false, t.truncated(ctx, f, size, t.now())
	}
	n, rerr := f.fd.ReadAt(t.buf, f.off)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		t.fail(fmt.Errorf("read %s: %w", f.path, rerr))
		return false, nil
	}
	if n == 0 {
		return false, nil
	}
	now := t.now()
	b := newBuilder(f, n+256)
	f.proc.feed(t.buf[:n], f.off, now, b.add)
	f.off += int64(n)
	f.size = max(f.size, f.off)
	f.grown = now
	if err := t.send(ctx, f, b, f.proc.start(f.off), false); err != nil {
		return false, err
	}
	return n == len(t.buf), nil
}

// checkAll checks the identity and size of every file (see the package
// doc), finishes the released files that are done and the orphans whose
// copy did not show up.
func (t *Tailer) checkAll(ctx context.Context, now time.Time) error {
	for _, f := range t.sorted() {
		if err := t.check(ctx, f, now); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tailer) check(ctx context.Context, f *file, now time.Time) error {
	if !f.release {
		fi, err := os.Stat(f.path)
		if err != nil || devInoOf(f.path, fi) != f.key {
			// Renamed away or deleted: read what is left, then finish.
			t.bump(func(s *Stats) { s.Rotations++ })
			t.releaseFile(f, t.opts.RotateWait)
			t.rescan = true
			if f.fd == nil {
				// Closed while idle: nothing more can be read.
				return t.finish(ctx, f, now)
			}
		} else if f.fd == nil {
			if fi.Size() == f.size {
				return nil
			}
			fd, err := os.Open(f.path)
			if err != nil {
				t.fail(fmt.Errorf("reopen %s: %w", f.path, err))
				return nil
			}
			f.fd = fd
			f.grown = now
		}
	}
	if f.fd == nil {
		return nil
	}
	same, size, err := t.same(f)
	if err != nil {
		t.fail(err)
		return nil
	}
	if !same {
		return t.truncated(ctx, f, size, now)
	}
	f.size = size
	if size > f.off {
		return nil // more to read: the next turn reads it
	}
	if f.release && now.Sub(f.grown) >= f.wait {
		return t.finish(ctx, f, now)
	}
	if !f.release && now.Sub(f.grown) >= t.opts.CloseIdle {
		// Idle: give the descriptor back; check reopens it on growth.
		f.fd.Close()
		f.fd = nil
	}
	return nil
}

// copyOf turns f (a lineage that read nothing yet) into a shadow of the
// followed file it turns out to copy, or into the continuation of the
// truncated lineage it copies.
func (t *Tailer) copyOf(f *file) (bool, error) {
	fi, err := f.fd.Stat()
	if err != nil || fi.Size() <= int64(f.fp.n) {
		return false, nil
	}
	head, err := t.head(f.fd, fi.Size())
	if err != nil || len(head) <= f.fp.n {
		return false, nil
	}
	for i, o := range t.orphans {
		if o.file.fp.n > 0 && o.file.fp.matches(head) {
			t.orphans = append(t.orphans[:i], t.orphans[i+1:]...)
			t.forget(f)
			nf := &file{spec: f.spec, name: o.file.name, path: f.path, key: f.key, fd: f.fd, size: fi.Size(), grown: f.grown, seen: true}
			return true, t.adopt(nf, o, head)
		}
	}
	for _, g := range t.files {
		if g != f && g.fp.n > 0 && g.fp.matches(head) {
			t.forget(f)
			f.fd.Close()
			t.shadows[f.key] = g.id
			return true, nil
		}
	}
	return false, nil
}

// forget drops a lineage that never emitted anything.
func (t *Tailer) forget(f *file) {
	delete(t.files, f.id)
	if t.byKey[f.key] == f {
		delete(t.byKey, f.key)
	}
	t.opts.Store.Remove(f.id)
}

// checkYoung looks at the young files again: grown to a fingerprint's
// size, or idle for RotateWait, they are discovered for good.
func (t *Tailer) checkYoung(ctx context.Context, now time.Time) error {
	keys := make([]devIno, 0, len(t.young))
	for k := range t.young {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ino < keys[j].ino })
	for _, k := range keys {
		y := t.young[k]
		sp := t.specs[y.spec]
		fi, err := os.Stat(y.path)
		if sp == nil || err != nil || devInoOf(y.path, fi) != k {
			delete(t.young, k)
			continue
		}
		if fi.Size() != y.size {
			y.size, y.grown = fi.Size(), now
		}
		settled := now.Sub(y.grown) >= t.opts.RotateWait
		if fi.Size() < int64(t.opts.FingerprintBytes) && !settled {
			continue
		}
		delete(t.young, k)
		if err := t.discover(ctx, sp, y.path, fi, k, y.atEnd, now, settled); err != nil {
			return err
		}
	}
	return nil
}

// same checks that f's open file still holds f's lineage: not shorter than
// the read offset, and its first bytes still match the fingerprint (which
// grows with the file up to FingerprintBytes).
func (t *Tailer) same(f *file) (bool, int64, error) {
	fi, err := f.fd.Stat()
	if err != nil {
		return true, f.size, fmt.Errorf("stat %s: %w", f.path, err)
	}
	size := fi.Size()
	if size < f.off {
		return false, size, nil
	}
	if size == 0 && f.fp.n == 0 {
		return true, 0, nil
	}
	// A file shorter than its fingerprint was truncated (even when
	// nothing of it was read yet: off 0).
	head, err := t.head(f.fd, size)
	if err != nil {
		return true, size, fmt.Errorf("read %s: %w", f.path, err)
	}
	if !f.fp.matches(head) {
		return false, size, nil
	}
	if len(head) > f.fp.n {
		f.fp = fpOf(head)
		t.putStore(f, false)
	}
	return true, size, nil
}

// truncated handles a file truncated in place (copytruncate): its lineage
// becomes an orphan waiting for its copy, the file a new lineage from 0.
func (t *Tailer) truncated(ctx context.Context, f *file, size int64, now time.Time) error {
	t.bump(func(s *Stats) { s.Truncations++ })
	old := &file{id: f.id, spec: f.spec, name: f.name, path: f.path, fp: f.fp, off: f.off, proc: f.proc, sentEnd: f.sentEnd, size: f.size}
	o := &orphan{file: old, lastSize: f.size, at: now}
	t.log.Debug("file truncated", "path", f.path, "id", f.id, "offset", f.off, "size", size)
	delete(t.files, f.id)
	f.id = checkpoint.NewID()
	f.off, f.sentEnd, f.size = 0, 0, size
	f.proc = newLineProc(t.procCfg(t.formatOf(f.spec)), &t.cnt)
	head, err := t.head(f.fd, size)
	if err != nil {
		head = nil
	}
	f.fp = fpOf(head)
	f.grown = now
	t.files[f.id] = f
	if err := t.putStore(f, true); err != nil {
		return err
	}
	// A copy already seen (a shadow) continues the lineage at once.
	for key, id := range t.shadows {
		if id != old.id {
			continue
		}
		delete(t.shadows, key)
		if nf, chead := t.openShadow(key, old, now); nf != nil {
			return t.adopt(nf, o, chead)
		}
	}
	t.orphans = append(t.orphans, o)
	t.rescan = true
	return nil
}

// openShadow finds the path of a shadow by a scan of the orphan's spec and
// opens it; nil when it is gone.
func (t *Tailer) openShadow(key devIno, old *file, now time.Time) (*file, []byte) {
	sp := t.specs[old.spec]
	if sp == nil {
		return nil, nil
	}
	for _, pat := range sp.Patterns {
		matches, _ := filepath.Glob(t.opts.Root + pat)
		for _, path := range matches {
			fi, err := os.Stat(path)
			if err != nil || devInoOf(path, fi) != key {
				continue
			}
			fd, err := os.Open(path)
			if err != nil {
				return nil, nil
			}
			head, err := t.head(fd, fi.Size())
			if err != nil || !old.fp.matches(head) {
				fd.Close()
				return nil, nil
			}
			return &file{spec: sp.Key, name: old.name, path: path, key: key, fd: fd, size: fi.Size(), grown: now, seen: true}, head
		}
	}
	return nil, nil
}

// finish emits what f has pending and forgets it.
func (t *Tailer) finish(ctx context.Context, f *file, now time.Time) error {
	b := newBuilder(f, 256)
	f.proc.finish(now, b.add)
	if err := t.send(ctx, f, b, f.off, true); err != nil {
		return err
	}
	if f.fd != nil {
		f.fd.Close()
		f.fd = nil
	}
	delete(t.files, f.id)
	t.ended[f.id] = f.off
	if t.byKey[f.key] == f {
		delete(t.byKey, f.key)
	}
	for k, id := range t.shadows {
		if id == f.id {
			delete(t.shadows, k)
		}
	}
	t.opts.Store.Put(checkpoint.File{ID: f.id, Name: f.name, Spec: f.spec, Path: f.path,
		Dev: f.key.dev, Ino: f.key.ino, FPLen: f.fp.n, FPHash: f.fp.h, Finished: true})
	t.log.Debug("finished", "path", f.path, "id", f.id, "offset", f.off)
	return nil
}

// periodic runs the multiline timeouts, expires orphans and prunes the
// checkpoints.
func (t *Tailer) periodic(ctx context.Context, now time.Time) error {
	if t.cfg.mlStart != nil {
		for _, f := range t.sorted() {
			if !f.proc.ml.active {
				continue
			}
			b := newBuilder(f, 256)
			f.proc.tick(now, b.add)
			if err := t.send(ctx, f, b, f.proc.start(f.off), false); err != nil {
				return err
			}
		}
	}
	keep := t.orphans[:0]
	for _, o := range t.orphans {
		if now.Sub(o.at) < 2*t.opts.RotateWait {
			keep = append(keep, o)
			continue
		}
		of := o.file
		if lost := o.lastSize - of.off; lost > 0 {
			t.bump(func(s *Stats) { s.LostBytes += uint64(lost) })
			t.log.Warn("file truncated before it was read to its end and no copy matches the globs: lines lost",
				"path", of.path, "offset", of.off, "size", o.lastSize, "lost_bytes", lost)
		}
		b := newBuilder(of, 256)
		of.proc.finish(now, b.add)
		if err := t.send(ctx, of, b, of.off, true); err != nil {
			return err
		}
		t.opts.Store.Put(checkpoint.File{ID: of.id, Name: of.name, Spec: of.spec, Path: of.path,
			FPLen: of.fp.n, FPHash: of.fp.h, Finished: true})
		t.ended[of.id] = of.off
	}
	t.orphans = keep
	t.opts.Store.Prune(t.opts.Keep, t.opts.MaxFinished)
	if len(t.ended) > 2*t.opts.MaxFinished {
		for id := range t.ended {
			if _, ok := t.opts.Store.Get(id); !ok {
				delete(t.ended, id)
			}
		}
	}
	return nil
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
