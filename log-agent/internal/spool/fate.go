package spool

import (
	"sort"

	"github.com/agentfleet/log-agent/internal/batch"
)

// The fate of each batch, shipped or dropped, decided under s.mu (see the
// package doc): the batches the Reader handed out are in flight until Ack
// counts them shipped or Rewind / Reader.Close end them.

// flight is a batch the Reader handed out and nobody acknowledged yet.
type flight struct {
	seq          uint64
	lines, bytes int64
	gone         bool // its segment was deleted to make room
}

// dropped counts d as lost and tells OnDrop. s.mu is held.
func (s *Spool) dropped(d Drop) {
	if d.Batches == 0 {
		return
	}
	s.st.DroppedBatches += int64(d.Batches)
	s.st.DroppedLines += d.Lines
	s.st.DroppedBytes += d.Bytes
	s.pbytes -= d.Bytes
	if s.opts.OnDrop != nil {
		s.opts.OnDrop(d)
	}
}

// flightOf returns the in-flight entry of seq, or nil. s.mu is held.
func (s *Spool) flightOf(seq uint64) *flight {
	i, ok := sort.Find(len(s.flights), func(i int) int {
		switch f := s.flights[i].seq; {
		case seq < f:
			return -1
		case seq > f:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return &s.flights[i]
}

// handOut records bs as in flight and returns those of them still in the
// spool (a segment deleted while the Reader read it took its batches with
// it, counted dropped). s.mu is held.
func (s *Spool) handOut(bs []*batch.Batch) []*batch.Batch {
	i := 0
	for i < len(bs) && bs[i].Seq <= s.acked {
		i++
	}
	bs = bs[i:]
	for _, b := range bs {
		s.flights = append(s.flights, flight{seq: b.Seq, lines: int64(b.Lines), bytes: int64(b.Bytes)})
	}
	return bs
}

// land ends the flights: the ones whose segment is gone are counted
// dropped, the others are pending again. s.mu is held.
func (s *Spool) land() {
	var d Drop
	for _, f := range s.flights {
		if !f.gone {
			continue
		}
		if d.Batches == 0 {
			d.First = f.seq
		}
		d.Last = f.seq
		d.Batches++
		d.Lines += f.lines
		d.Bytes += f.bytes
	}
	s.flights = s.flights[:0]
	s.dropped(d)
}
