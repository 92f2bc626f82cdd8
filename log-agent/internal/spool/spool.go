// Package spool is log-agent's on-disk queue of batches between the
// collector and the sink: every batch is appended here first, the sink is
// fed from here, and a batch leaves when the sink acknowledged it. It lets
// the collector move on (and rotated files go away) while the sink is slow
// or away, and it survives a crash of the agent.
//
// # Files
//
// The directory holds segment files named after the sequence number of
// their first batch (%020d.seg) and a file "acked" holding the highest
// acknowledged sequence number (8 bytes little endian and their CRC-32C).
// A segment is a sequence of frames: a uint32 little-endian length followed
// by a batch.Batch in its binary form, which carries its own CRC.
//
// # Durability
//
// Append writes a frame with one write call: it survives a crash of the
// process (the bytes are in the kernel); Sync makes it survive a crash of
// the host. The owner syncs before it saves the checkpoints that point past
// the batch, so a checkpoint never claims lines the spool lost. Open cuts
// every segment at its first torn or corrupt frame.
//
// # Bound and loss
//
// The segment files never exceed the size bound by more than one frame.
// When an append would pass it, the oldest segments are deleted, whether
// shipped or not: the batches they held that the sink had not acknowledged
// are counted (Stats.Dropped*), and OnDrop is told, so the loss is logged
// and reported, never silent. Before any segment is deleted Persist runs
// (the owner saves its checkpoints there), so no checkpoint on disk is older
// than what the deleted segment held: a restart never reads those lines
// again from the files.
//
// A *Spool is safe for concurrent use by one appender and one Reader.
package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/agentfleet/log-agent/internal/batch"
)

// Errors.
var (
	ErrClosed   = errors.New("spool closed")
	ErrTooLarge = errors.New("batch larger than the spool")
)

const (
	segSuffix = ".seg"
	ackedName = "acked"
	frameHead = 4
	// MinSize is the smallest bound Open accepts.
	MinSize = 1 << 20
	// maxFrame bounds one frame when reading (outside input: the disk).
	maxFrame = 512 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options of Open.
type Options struct {
	// MaxBytes bounds the segment files (at least MinSize).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment starts (default
	// MaxBytes/8, at most 16 MiB).
	SegmentBytes int64
	// Persist runs before segments are deleted (the owner saves its
	// checkpoints). It is called with the spool's lock held: it must not
	// call the Spool.
	Persist func() error
	// OnDrop is told about batches deleted unshipped to make room. Called
	// with the spool's lock held.
	OnDrop func(d Drop)
}

// Drop describes unshipped batches deleted to make room.
type Drop struct {
	First, Last uint64 // sequence numbers
	Batches     int
	Lines       int64
	Bytes       int64
}

// Stats are the spool's counters.
type Stats struct {
	Bytes          int64 // on disk
	Pending        int   // batches not acknowledged
	Acked          uint64
	Next           uint64
	DroppedBatches int64
	DroppedLines   int64
	DroppedBytes   int64
}

type segment struct {
	first, last uint64 // 0, 0: empty
	path        string
	size        int64
	batches     int
	sealed      bool // no more appends: the next one starts a new segment
}

// Spool is an open spool directory.
type Spool struct {
	dir  string
	opts Options

	mu      sync.Mutex
	segs    []*segment
	active  *os.File
	ackf    *os.File
	size    int64
	next    uint64
	acked   uint64
	pending int
	dirty   bool
	closed  bool
	st      Stats
	wake    chan struct{} // closed and replaced on every append and on Close
	buf     []byte
}

// Open opens or creates the spool in dir. recovered is called for every
// batch found on disk, in order, with whether it was acknowledged (its Data
// is only valid during the call); the owner learns from it how far the
// spool reaches in each source.
func Open(dir string, opts Options, recovered func(b *batch.Batch, acked bool)) (*Spool, error) {
	if opts.MaxBytes < MinSize {
		return nil, fmt.Errorf("spool %s: size %d below %d", dir, opts.MaxBytes, MinSize)
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(opts.MaxBytes/8, 16<<20)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, wake: make(chan struct{})}
	s.acked = readAcked(filepath.Join(dir, ackedName))
	if err := s.load(recovered); err != nil {
		return nil, err
	}
	s.next = s.acked + 1
	if n := len(s.segs); n > 0 && s.segs[n-1].last+1 > s.next {
		s.next = s.segs[n-1].last + 1
	}
	if len(s.segs) > 0 && s.segs[0].first > s.acked+1 && s.segs[0].first != 0 {
		// Segments before it were dropped or acknowledged: nothing before
		// it is pending.
		s.acked = s.segs[0].first - 1
	}
	f, err := os.OpenFile(filepath.Join(dir, ackedName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.ackf = f
	s.pending = s.countPending()
	return s, nil
}

func readAcked(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (s *Spool) load(recovered func(*batch.Batch, bool)) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, segSuffix) {
			if _, err := strconv.ParseUint(strings.TrimSuffix(n, segSuffix), 10, 64); err == nil {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	prev := uint64(0)
	for _, n := range names {
		seg, err := s.recover(filepath.Join(s.dir, n), &prev, recovered)
		if err != nil {
			return err
		}
		if seg.first == 0 {
			// Empty (torn at its first frame): remove it.
			_ = os.Remove(seg.path)
			continue
		}
		s.segs = append(s.segs, seg)
		s.size += seg.size
	}
	return nil
}

// recover scans one segment, cutting it at the first bad frame.
func (s *Spool) recover(path string, prev *uint64, recovered func(*batch.Batch, bool)) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	seg := &segment{path: path}
	r := bufio.NewReaderSize(f, 64<<10)
	var buf []byte
	for {
		var b batch.Batch
		n, err := readFrame(r, &buf, &b)
		if err != nil || b.Seq <= *prev {
			break
		}
		if recovered != nil {
			recovered(&b, b.Seq <= s.acked)
		}
		*prev = b.Seq
		if seg.first == 0 {
			seg.first = b.Seq
		}
		seg.last = b.Seq
		seg.size += n
		seg.batches++
	}
	if err := f.Truncate(seg.size); err != nil {
		return nil, fmt.Errorf("spool: cut %s: %w", path, err)
	}
	return seg, nil
}

// readFrame reads one frame into b (b.Data aliases *buf) and returns its
// size on disk.
func readFrame(r io.Reader, buf *[]byte, b *batch.Batch) (int64, error) {
	var h [frameHead]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n > maxFrame {
		return 0, fmt.Errorf("%w: frame of %d bytes", batch.ErrCorrupt, n)
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, err
	}
	if err := b.UnmarshalBinary(p); err != nil {
		return 0, err
	}
	return int64(frameHead) + int64(n), nil
}

func (s *Spool) countPending() int {
	n := 0
	for _, seg := range s.segs {
		if seg.last > s.acked {
			if seg.first > s.acked {
				n += seg.batches
			} else {
				n += int(seg.last - s.acked)
			}
		}
	}
	return n
}

// Append assigns b the next sequence number and stores it, deleting the
// oldest segments when the bound would be passed.
func (s *Spool) Append(b *batch.Batch) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	b.Seq = s.next
	buf, err := b.AppendBinary(append(s.buf[:0], 0, 0, 0, 0))
	if err != nil {
		return 0, err
	}
	s.buf = buf
	if len(buf) > 1<<20 {
		defer func() { s.buf = nil }() // do not keep a huge buffer
	}
	binary.LittleEndian.PutUint32(buf, uint32(len(buf)-frameHead))
	rec := int64(len(buf))
	if rec > s.opts.MaxBytes/2 {
		return 0, fmt.Errorf("spool append of %d bytes (bound %d): %w", rec, s.opts.MaxBytes, ErrTooLarge)
	}
	if s.size+rec > s.opts.MaxBytes {
		if err := s.makeRoom(rec); err != nil {
			return 0, err
		}
	}
	if err := s.ensureActive(rec, b.Seq); err != nil {
		return 0, err
	}
	seg := s.segs[len(s.segs)-1]
	if _, err := s.active.Write(buf); err != nil {
		_ = s.active.Truncate(seg.size)
		return 0, fmt.Errorf("spool append: %w", err)
	}
	if seg.first == 0 {
		seg.first = b.Seq
	}
	seg.last = b.Seq
	seg.size += rec
	seg.batches++
	s.size += rec
	s.next++
	s.pending++
	s.dirty = true
	close(s.wake)
	s.wake = make(chan struct{})
	return b.Seq, nil
}

// makeRoom deletes the oldest segments until rec fits, sealing the active
// one when it is the only one. s.mu is held.
func (s *Spool) makeRoom(rec int64) error {
	if len(s.segs) == 1 && s.active != nil {
		if err := s.seal(); err != nil {
			return err
		}
	}
	if err := s.syncLocked(); err != nil {
		return err
	}
	if s.opts.Persist != nil {
		if err := s.opts.Persist(); err != nil {
			return fmt.Errorf("spool: persist before dropping: %w", err)
		}
	}
	for s.size+rec > s.opts.MaxBytes && len(s.segs) > 0 {
		seg := s.segs[0]
		if seg == s.segs[len(s.segs)-1] && s.active != nil {
			if err := s.seal(); err != nil {
				return err
			}
			continue
		}
		if seg.last > s.acked {
			d, err := s.unacked(seg)
			if err != nil {
				return err
			}
			s.st.DroppedBatches += int64(d.Batches)
			s.st.DroppedLines += d.Lines
			s.st.DroppedBytes += d.Bytes
			s.pending -= d.Batches
			s.acked = seg.last
			if err := s.writeAcked(); err != nil {
				return err
			}
			if s.opts.OnDrop != nil {
				s.opts.OnDrop(d)
			}
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		s.size -= seg.size
		s.segs = s.segs[1:]
	}
	return nil
}

// unacked counts the batches of seg after the acknowledged position.
func (s *Spool) unacked(seg *segment) (Drop, error) {
	d := Drop{First: max(seg.first, s.acked+1), Last: seg.last}
	f, err := os.Open(seg.path)
	if err != nil {
		return d, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var buf []byte
	for {
		var b batch.Batch
		if _, err := readFrame(r, &buf, &b); err != nil {
			break
		}
		if b.Seq > s.acked {
			d.Batches++
			d.Lines += int64(b.Lines)
			d.Bytes += int64(b.Bytes)
		}
	}
	return d, nil
}

// seal closes the active segment so that the next append starts a new one.
func (s *Spool) seal() error {
	if n := len(s.segs); n > 0 {
		s.segs[n-1].sealed = true
	}
	if s.active == nil {
		return nil
	}
	err := s.active.Sync()
	if cerr := s.active.Close(); err == nil {
		err = cerr
	}
	s.active = nil
	s.dirty = false
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// ensureActive makes s.active the segment the next frame of rec bytes goes
// to. s.mu is held.
func (s *Spool) ensureActive(rec int64, seq uint64) error {
	if n := len(s.segs); n > 0 {
		last := s.segs[n-1]
		if !last.sealed && (last.size+rec <= s.opts.SegmentBytes || last.size == 0) {
			if s.active != nil {
				return nil
			}
			f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			s.active = f
			return nil
		}
		if err := s.seal(); err != nil {
			return err
		}
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: sync dir: %w", err)
	}
	s.active = f
	s.segs = append(s.segs, &segment{path: path})
	return nil
}

// Ack records that the sink holds every batch up to and including upTo and
// deletes the segments that are wholly acknowledged (after Persist).
func (s *Spool) Ack(upTo uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if upTo <= s.acked {
		return nil
	}
	if upTo >= s.next {
		return fmt.Errorf("spool ack %d: beyond the last sequence number %d", upTo, s.next-1)
	}
	s.acked = upTo
	s.pending = s.countPending()
	if err := s.writeAcked(); err != nil {
		return err
	}
	n := 0
	for n < len(s.segs) && s.segs[n].first != 0 && s.segs[n].last <= s.acked && (n < len(s.segs)-1 || s.segs[n].sealed) {
		n++
	}
	if n == 0 {
		return nil
	}
	if s.opts.Persist != nil {
		if err := s.syncLocked(); err != nil {
			return err
		}
		if err := s.opts.Persist(); err != nil {
			return fmt.Errorf("spool: persist before deleting: %w", err)
		}
	}
	var errs []error
	keep := s.segs[:0]
	for i, seg := range s.segs {
		if i >= n {
			keep = append(keep, seg)
			continue
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			keep = append(keep, seg)
			continue
		}
		s.size -= seg.size
	}
	clear(s.segs[len(keep):])
	s.segs = keep
	return errors.Join(errs...)
}

// writeAcked stores the acknowledged position (no fsync: a host crash may
// lose it, and then batches are delivered again, which the sink absorbs).
func (s *Spool) writeAcked() error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], s.acked)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := s.ackf.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: write acked: %w", err)
	}
	return nil
}

// Sync makes every appended batch durable.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncLocked()
}

func (s *Spool) syncLocked() error {
	if !s.dirty || s.active == nil {
		return nil
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: sync: %w", err)
	}
	s.dirty = false
	return nil
}

// Stats returns the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Bytes, st.Pending, st.Acked, st.Next = s.size, s.pending, s.acked, s.next
	return st
}

// Close syncs and closes the spool; a blocked Reader returns ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.wake)
	err := s.syncLocked()
	if s.active != nil {
		if cerr := s.active.Close(); err == nil {
			err = cerr
		}
		s.active = nil
	}
	if cerr := s.ackf.Close(); err == nil {
		err = cerr
	}
	return err
}

// Reader reads the batches after the acknowledged position, in order. One
// Reader at a time; it is not safe for concurrent use.
type Reader struct {
	s    *Spool
	next uint64 // next sequence number wanted
	f    *os.File
	path string
	off  int64 // read position in f
	r    *bufio.Reader
}

// NewReader returns a reader positioned after the acknowledged batches.
func (s *Spool) NewReader() *Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Reader{s: s, next: s.acked + 1}
}

// Rewind positions the reader after the acknowledged batches again (after a
// failed delivery).
func (r *Reader) Rewind() {
	r.s.mu.Lock()
	r.next = r.s.acked + 1
	r.s.mu.Unlock()
	r.closeFile()
}

func (r *Reader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f, r.r, r.path = nil, nil, ""
	}
}

// Close releases the reader's file.
func (r *Reader) Close() { r.closeFile() }

// Next returns up to maxBatches batches (at least one; their Data stays
// valid until the next call) totalling about maxBytes, waiting until one is
// there or ctx is done.
func (r *Reader) Next(ctx context.Context, maxBatches int, maxBytes int64) ([]*batch.Batch, error) {
	var out []*batch.Batch
	var size int64
	for {
		seg, limit, wake, err := r.locate()
		if err != nil {
			return out, err
		}
		if seg == "" {
			if len(out) > 0 {
				return out, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-wake:
			}
			continue
		}
		if r.path != seg {
			r.closeFile()
			f, err := os.Open(seg)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // dropped under us: locate again
				}
				return out, fmt.Errorf("spool: %w", err)
			}
			r.f, r.path, r.off = f, seg, 0
			r.r = bufio.NewReaderSize(f, 256<<10)
		}
		for r.off < limit && len(out) < maxBatches && (size < maxBytes || len(out) == 0) {
			b := new(batch.Batch)
			var tmp []byte
			n, err := readFrame(r.r, &tmp, b)
			if err != nil {
				return out, fmt.Errorf("spool: read %s at %d: %w", r.path, r.off, err)
			}
			r.off += n
			if b.Seq < r.next {
				continue // acknowledged, or skipped after a drop
			}
			r.next = b.Seq + 1
			out = append(out, b)
			size += n
		}
		if len(out) >= maxBatches || size >= maxBytes {
			return out, nil
		}
		if r.off >= limit {
			// The end of what is committed in this segment: maybe more
			// segments follow; locate says.
			if len(out) > 0 {
				if more, _ := r.more(); !more {
					return out, nil
				}
			}
		}
	}
}

// more reports whether batches after r.next are committed.
func (r *Reader) more() (bool, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.next < r.s.next, nil
}

// locate returns the segment holding r.next and its committed size, or ""
// and a channel closed on the next append when there is nothing to read.
func (r *Reader) locate() (string, int64, <-chan struct{}, error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", 0, nil, ErrClosed
	}
	if r.next <= s.acked {
		r.next = s.acked + 1
	}
	for _, seg := range s.segs {
		if seg.first != 0 && seg.last >= r.next {
			if seg.first > r.next {
				r.next = seg.first // dropped batches before it
			}
			if seg.path == r.path && r.off >= seg.size {
				continue
			}
			return seg.path, seg.size, s.wake, nil
		}
	}
	return "", 0, s.wake, nil
}
