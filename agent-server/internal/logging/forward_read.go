package logging

import (
	"errors"
	"os"
	"path/filepath"
)

// readMore appends to lines the records after the read position, up to
// the window, and moves the read position past them.
func (h *fwdHost) readMore(lines []*fwdLine) []*fwdLine {
	o := &h.f.o
	bytes := 0
	for _, l := range lines {
		bytes += l.n
	}
	if len(lines) >= o.Window || bytes >= o.WindowBytes {
		return lines
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var file *os.File
	var fileSeg uint64
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	maxPayload := int(h.f.nc.MaxPayload())
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	for len(lines) < o.Window && bytes < o.WindowBytes {
		if h.deleted[h.read.Seg] {
			// Retention took it: beforeDelete counted what was left.
			h.frame = nil
			next := h.nextSeg(h.read.Seg)
			if next == 0 {
				break
			}
			h.read = fwdPos{Seg: next, Off: int64(len(segMagic))}
			continue
		}
		if h.frame == nil {
			if file == nil || fileSeg != h.read.Seg {
				if file != nil {
					file.Close()
					file = nil
				}
				f, err := os.Open(filepath.Join(h.dir, segName(h.read.Seg)))
				if err != nil {
					if !h.skipMissing(err) {
						break
					}
					continue
				}
				file, fileSeg = f, h.read.Seg
			}
			if !h.loadFrame(file) {
				break
			}
			continue
		}
		recs := h.frame.recs
		for h.read.Idx < len(recs) && len(lines) < o.Window && bytes < o.WindowBytes {
			r := &recs[h.read.Idx]
			src := h.frame.sources[r.Source]
			msg, cut := h.f.lineMsg(h.project, h.host, h.subject, src, r, maxPayload)
			at := h.read
			h.read.Idx++
			after := h.read
			if h.read.Idx >= len(recs) {
				after = fwdPos{Seg: h.read.Seg, Off: h.frameNext}
			}
			lines = append(lines, &fwdLine{msg: msg, id: MsgID(h.project, h.host, src.id, r.Offset, h.gen), at: at, after: after, n: len(r.Data), cut: cut})
			bytes += len(r.Data)
		}
		if h.read.Idx >= len(recs) {
			h.read = fwdPos{Seg: h.read.Seg, Off: h.frameNext}
			h.frame = nil
		}
	}
	for seq := range h.deleted {
		if seq < h.read.Seg {
			delete(h.deleted, seq)
		}
	}
	return lines
}

// skipMissing moves the read position past a segment that cannot be
// opened; false when there is nothing to move to. h.mu is held.
func (h *fwdHost) skipMissing(err error) bool {
	if !errors.Is(err, os.ErrNotExist) {
		h.f.log.Error("log forwarding: open segment", "project", h.project, "host", h.host, "err", err)
		return false
	}
	next := h.nextSeg(h.read.Seg)
	if next == 0 {
		return false // the host's folder is gone (project removed)
	}
	h.f.m.unreadable.WithLabelValues(h.project).Inc()
	h.f.log.Error("log segment gone before it was forwarded (its lines cannot be counted)",
		"project", h.project, "host", h.host, "segment", h.read.Seg)
	h.read = fwdPos{Seg: next, Off: int64(len(segMagic))}
	return true
}

// loadFrame decodes the next record frame at or after the read position
// into h.frame, moving to the next segment at the end of a closed one;
// false when there is none yet. h.mu is held.
func (h *fwdHost) loadFrame(file *os.File) bool {
	for {
		p, next, err := readFrameAt(file, h.read.Off, h.buf)
		if err != nil {
			later := h.nextSeg(h.read.Seg)
			if later == 0 {
				return false // the end of the open segment, or its frame being written
			}
			// A later segment exists, so this one was closed before it
			// was made: read once more (it may have grown until then).
			if p, next, err = readFrameAt(file, h.read.Off, h.buf); err != nil {
				if fi, serr := file.Stat(); serr == nil && fi.Size() > h.read.Off {
					h.f.m.unreadable.WithLabelValues(h.project).Inc()
					h.f.log.Error("log segment unreadable from an offset on, rest skipped by the forwarding",
						"project", h.project, "host", h.host, "segment", h.read.Seg, "offset", h.read.Off, "size", fi.Size())
				}
				h.read = fwdPos{Seg: later, Off: int64(len(segMagic))}
				return false
			}
		}
		h.buf = p[:0]
		if p[0] != frameRecs {
			h.read = fwdPos{Seg: h.read.Seg, Off: next}
			continue
		}
		fm, err := decodeRecordFrame(p, true)
		if err != nil {
			h.f.m.unreadable.WithLabelValues(h.project).Inc()
			h.f.log.Error("log frame undecodable, skipped by the forwarding", "project", h.project, "host", h.host,
				"segment", h.read.Seg, "offset", h.read.Off, "err", err)
			h.read = fwdPos{Seg: h.read.Seg, Off: next}
			continue
		}
		h.read.Idx = min(h.read.Idx, len(fm.recs))
		h.frame, h.frameNext = fm, next
		return true
	}
}

// nextSeg returns the host's first segment after seq, 0 when none.
func (h *fwdHost) nextSeg(seq uint64) uint64 {
	seqs, err := segments(h.dir)
	if err != nil {
		return 0
	}
	for _, s := range seqs {
		if s > seq {
			return s
		}
	}
	return 0
}

// segDeleted counts the lines of a segment retention deletes that were
// not read yet as dropped, and makes the reader skip it.
func (h *fwdHost) segDeleted(seq uint64, path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq < h.read.Seg {
		return
	}
	off, idx := int64(len(segMagic)), 0
	if seq == h.read.Seg {
		off, idx = h.read.Off, h.read.Idx
	}
	n, _, err := linesFrom(path, off, idx)
	h.deleted[seq] = true
	if err != nil {
		h.f.log.Error("log forwarding: count the lines of a segment deleted by retention", "project", h.project, "host", h.host, "segment", seq, "err", err)
	}
	if n == 0 {
		return
	}
	h.stat.dropped += n
	h.f.m.dropped.WithLabelValues(h.project, "retention").Add(float64(n))
	h.f.log.Warn("log lines deleted by retention before they were forwarded to NATS", "project", h.project, "host", h.host,
		"segment", seq, "lines", n)
}
