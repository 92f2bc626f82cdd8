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
// # Shipped or dropped: one owner
//
// Every batch leaves the spool exactly once, counted either shipped
// (Stats.Shipped*) or dropped (Stats.Dropped*), decided under the spool's
// lock. The Reader records the batches it hands out (in flight). When the
// bound deletes a segment, the batches of it nobody has acknowledged are
// counted dropped at once, except those in flight: their fate waits for
// the shipper. Ack counts the in-flight batches it covers shipped — the
// sink holds them, whether or not their segment is still on disk — and
// Rewind (or Reader.Close) counts the in-flight batches whose segment is
// gone dropped. So a batch delivered and acknowledged is never counted
// dropped, and one that is counted dropped was never acknowledged.
//
// A *Spool is safe for concurrent use by one appender and one Reader.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/agentfleet/jkframe/durable"
	"github.com/agentfleet/jkframe/segfile"
	"github.com/agentfleet/log-agent/internal/batch"
)

// Errors.
var (
	ErrClosed   = errors.New("spool closed")
	ErrTooLarge = errors.New("batch larger than the spool")
)

const (
	frameHead = 4
	// MinSize is the smallest bound Open accepts.
	MinSize = 1 << 20
	// maxFrame bounds one frame when reading (outside input: the disk).
	maxFrame = 512 << 20
)

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

// Stats are the spool's counters. Shipped and Dropped count the batches
// that left the spool since Open (see the package doc).
type Stats struct {
	Bytes   int64 // on disk
	Pending int   // batches not acknowledged
	// PendingBytes: the uncompressed bytes (Batch.Bytes) of the batches
	// neither acknowledged nor counted dropped, in flight ones included.
	PendingBytes int64
	// Unsettled: batches handed out whose segment was deleted since; they
	// count shipped or dropped when the shipper acknowledges or rewinds.
	Unsettled      int
	Acked          uint64
	Next           uint64
	ShippedBatches int64
	ShippedLines   int64
	ShippedBytes   int64
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

func segPath(s *segment) string { return s.path }

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
	pbytes  int64    // Stats.PendingBytes
	flights []flight // handed out by the Reader, in sequence order
	// afterRead, for tests, runs when the Reader has read batches and
	// not yet handed them out.
	afterRead func()
	wake      chan struct{} // closed and replaced on every append and on Close
	buf       []byte
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
	s.acked = segfile.ReadAcked(filepath.Join(dir, segfile.AckedName))
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
	f, err := os.OpenFile(filepath.Join(dir, segfile.AckedName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.ackf = f
	s.pending = s.countPending()
	return s, nil
}

func (s *Spool) load(recovered func(*batch.Batch, bool)) error {
	files, err := segfile.List(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	prev := uint64(0)
	for _, f := range files {
		seg, err := s.recover(f.Path, &prev, recovered)
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
	seg := &segment{path: path}
	err := segfile.Recover(path, func(r *bufio.Reader) int64 {
		var buf []byte
		for {
			var b batch.Batch
			n, err := readFrame(r, &buf, &b)
			if err != nil || b.Seq <= *prev {
				return seg.size
			}
			if recovered != nil {
				recovered(&b, b.Seq <= s.acked)
			}
			if b.Seq > s.acked {
				s.pbytes += int64(b.Bytes)
			}
			*prev = b.Seq
			if seg.first == 0 {
				seg.first = b.Seq
			}
			seg.last = b.Seq
			seg.size += n
			seg.batches++
		}
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
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
	s.pbytes += int64(b.Bytes)
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
			s.acked = seg.last
			if err := s.writeAcked(); err != nil {
				return err
			}
			s.dropped(d)
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		s.size -= seg.size
		s.segs = s.segs[1:]
		s.pending = s.countPending()
	}
	return nil
}

// unacked counts the batches of seg after the acknowledged position that
// are not in flight, and marks those in flight gone.
func (s *Spool) unacked(seg *segment) (Drop, error) {
	var d Drop
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
		if b.Seq <= s.acked {
			continue
		}
		if fl := s.flightOf(b.Seq); fl != nil {
			fl.gone = true
			continue
		}
		if d.Batches == 0 {
			d.First = b.Seq
		}
		d.Last = b.Seq
		d.Batches++
		d.Lines += int64(b.Lines)
		d.Bytes += int64(b.Bytes)
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
	path := segfile.Path(s.dir, seq)
	f, err := durable.CreateAppend(path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.active = f
	s.segs = append(s.segs, &segment{path: path})
	return nil
}

// Ack records that the sink holds every batch up to and including upTo,
// counts the batches in flight up to it shipped and deletes the segments
// that are wholly acknowledged (after Persist). Only batches the Reader
// handed out can be acknowledged.
func (s *Spool) Ack(upTo uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if upTo >= s.next {
		return fmt.Errorf("spool ack %d: beyond the last sequence number %d", upTo, s.next-1)
	}
	if upTo > s.acked && (len(s.flights) == 0 || s.flights[len(s.flights)-1].seq < upTo) {
		return fmt.Errorf("spool ack %d: not handed out by the reader", upTo)
	}
	k := 0
	for k < len(s.flights) && s.flights[k].seq <= upTo {
		f := s.flights[k]
		s.st.ShippedBatches++
		s.st.ShippedLines += f.lines
		s.st.ShippedBytes += f.bytes
		s.pbytes -= f.bytes
		k++
	}
	s.flights = s.flights[:copy(s.flights, s.flights[k:])]
	if upTo <= s.acked {
		return nil
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
	var err error
	s.segs, err = segfile.Trim(s.segs, n, segPath, func(seg *segment) { s.size -= seg.size })
	return err
}

// writeAcked stores the acknowledged position (no fsync: a host crash may
// lose it, and then batches are delivered again, which the sink absorbs).
func (s *Spool) writeAcked() error {
	b := segfile.Acked(s.acked)
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
	st.Bytes, st.Pending, st.PendingBytes, st.Acked, st.Next = s.size, s.pending, s.pbytes, s.acked, s.next
	for _, f := range s.flights {
		if f.gone {
			st.Unsettled++
		}
	}
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
