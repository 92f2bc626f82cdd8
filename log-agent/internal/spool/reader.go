package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/agentfleet/log-agent/internal/batch"
)

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
// failed delivery). The batches handed out and not acknowledged are no
// longer in flight: those whose segment was deleted meanwhile are counted
// dropped, the others are read again.
func (r *Reader) Rewind() {
	r.s.mu.Lock()
	r.s.land()
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

// Close releases the reader's file and ends the flights as Rewind does.
func (r *Reader) Close() {
	r.s.mu.Lock()
	r.s.land()
	r.s.mu.Unlock()
	r.closeFile()
}

// Next returns up to maxBatches batches (at least one; their Data stays
// valid until the next call) totalling about maxBytes, waiting until one is
// there or ctx is done.
func (r *Reader) Next(ctx context.Context, maxBatches int, maxBytes int64) ([]*batch.Batch, error) {
	for {
		bs, err := r.read(ctx, maxBatches, maxBytes)
		if err != nil {
			return nil, err
		}
		if r.s.afterRead != nil {
			r.s.afterRead()
		}
		r.s.mu.Lock()
		bs = r.s.handOut(bs)
		r.s.mu.Unlock()
		if len(bs) > 0 {
			return bs, nil
		}
	}
}

// read is Next without the bookkeeping of the flights.
func (r *Reader) read(ctx context.Context, maxBatches int, maxBytes int64) ([]*batch.Batch, error) {
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
