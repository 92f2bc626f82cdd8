package logging

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/jkframe/segfile"
	"github.com/agentfleet/libagent/logship"
)

// The segment store keeps the lines of each (project, host) in segment
// files <dir>/<project>/<host>/<seq>.seg:
//
//	"LSG1"
//	frame*   u32 length, u32 CRC-32C of the payload, payload
//
// A payload starts with its kind. 'M' (marks, always a segment's first
// frame): the high-water mark of every source of the host so far — uvarint
// count, then (string id, string name, varint highest offset stored) — so
// a segment on its own says what was stored before it, and retention may
// delete any older one. 'R' (records): varint min and max record time,
// uvarint record count, uvarint source count, (string id, string name) per
// source, then the zstd frame of a record block (records.go encoding, source
// indexes into this frame's sources). Strings are uvarint length + bytes.
//
// Exactly-once: a record whose offset is at or below its source's mark is
// a repeat (the agent re-sends after a crash what was not acknowledged) and
// is not stored. The marks are rebuilt at open from the newest segment, so
// they always agree with what the files hold: a frame torn by a crash is
// cut, and its batch was not acknowledged, so the agent sends it again.
//
// Writes are not fsynced per batch: a server process that dies leaves its
// writes in the page cache. A segment is fsynced when it is closed and
// every Options.SyncEvery (a host crash may lose up to that much, which
// the agents no longer hold).

const (
	segMagic    = "LSG1"
	frameMarks  = 'M'
	frameRecs   = 'R'
	maxFrame    = 128 << 20
	segExt      = segfile.Suffix // listed by segfile.List
	frameHeader = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// StoreOptions configure the segment store.
type StoreOptions struct {
	Dir string
	// SegmentBytes closes a segment at this size (default 64 MiB).
	SegmentBytes int64
	// SegmentAge closes a segment this long after it was opened (default 1 h).
	SegmentAge time.Duration
	// MaxAge deletes closed segments last written longer ago (0: never).
	MaxAge time.Duration
	// MaxBytes bounds a project's segments (0: no bound); the oldest
	// closed ones go first.
	MaxBytes int64
	// BeforeDelete, when set, is called before retention deletes a
	// segment (the forwarding counts what it had not sent).
	BeforeDelete func(project, host string, seq uint64, path string)
	Now          func() time.Time
	Log          *slog.Logger
}

// Store is the embedded log store. Safe for concurrent use: appends to one
// (project, host) are serialised, different ones run in parallel.
type Store struct {
	o StoreOptions

	mu    sync.Mutex
	hosts map[string]*hostLog // "project/host"
}

type mark struct {
	name string
	high int64
}

type hostLog struct {
	mu      sync.Mutex
	dir     string
	f       *os.File
	seq     uint64
	size    int64
	opened  time.Time
	marks   map[string]*mark
	broken  error // set when the segment could not be repaired; appends fail
	pending bool  // written since the last sync
	// Append's buffers (the record block, the frame's payload and the
	// frame), reused under mu: a 1 MiB block grown from 4 KiB for every
	// batch was most of the server's allocations.
	block, payload, frame []byte
}

// OpenStore returns the store under o.Dir.
func OpenStore(o StoreOptions) (*Store, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentAge <= 0 {
		o.SegmentAge = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	return &Store{o: o, hosts: map[string]*hostLog{}}, nil
}

var safeDirRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// hostDir is the folder name of an agent id: itself when it is a plain
// name, else "~" and its hex.
func hostDir(id string) string {
	if safeDirRE.MatchString(id) {
		return id
	}
	return "~" + hex.EncodeToString([]byte(id))
}

func hostFromDir(d string) (string, bool) {
	if strings.HasPrefix(d, "~") {
		b, err := hex.DecodeString(d[1:])
		return string(b), err == nil
	}
	return d, safeDirRE.MatchString(d)
}

func segName(seq uint64) string { return fmt.Sprintf("%016d%s", seq, segExt) }

// segments lists the segment numbers in dir, ascending.
func segments(dir string) ([]uint64, error) {
	files, err := segfile.List(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, f := range files {
		out = append(out, f.First)
	}
	return out, nil
}

func (s *Store) host(project, host string) (*hostLog, error) {
	key := project + "/" + host
	s.mu.Lock()
	h, ok := s.hosts[key]
	if !ok {
		h = &hostLog{dir: filepath.Join(s.o.Dir, project, hostDir(host))}
		s.hosts[key] = h
	}
	s.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil && h.broken == nil {
		if err := h.open(s.o.Now()); err != nil {
			return nil, err
		}
	}
	return h, h.broken
}

// open recovers the marks from the newest segment and opens it for
// appending (a new segment when there is none or it cannot be read).
func (h *hostLog) open(now time.Time) error {
	if err := os.MkdirAll(h.dir, 0o750); err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	seqs, err := segments(h.dir)
	if err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	h.marks = map[string]*mark{}
	for len(seqs) > 0 {
		last := seqs[len(seqs)-1]
		path := filepath.Join(h.dir, segName(last))
		marks, good, err := recoverSegment(path)
		if err != nil {
			return fmt.Errorf("log store: recover %s: %w", path, err)
		}
		if marks == nil { // not even the marks frame: a segment torn at creation
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("log store: %w", err)
			}
			seqs = seqs[:len(seqs)-1]
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0o640)
		if err != nil {
			return fmt.Errorf("log store: %w", err)
		}
		if err := f.Truncate(good); err != nil {
			f.Close()
			return fmt.Errorf("log store: cut torn frame of %s: %w", path, err)
		}
		if _, err := f.Seek(good, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("log store: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("log store: %w", err)
		}
		h.f, h.seq, h.size, h.marks, h.opened = f, last, good, marks, fi.ModTime()
		return nil
	}
	return h.newSegment(1, now)
}

// newSegment starts segment seq with the marks frame.
func (h *hostLog) newSegment(seq uint64, now time.Time) error {
	path := filepath.Join(h.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	buf := []byte(segMagic)
	buf = appendFrame(buf, h.marksPayload())
	if _, err := f.Write(buf); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("log store: %w", err)
	}
	h.f, h.seq, h.size, h.opened = f, seq, int64(len(buf)), now
	return nil
}

func (h *hostLog) marksPayload() []byte {
	p := []byte{frameMarks}
	ids := make([]string, 0, len(h.marks))
	for id := range h.marks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	p = binary.AppendUvarint(p, uint64(len(ids)))
	for _, id := range ids {
		m := h.marks[id]
		p = appendString(p, id)
		p = appendString(p, m.name)
		p = binary.AppendVarint(p, m.high)
	}
	return p
}

// Source is a batch source as the store sees it.
type Source struct{ ID, Name string }

// Appended is the outcome of one Append.
type Appended struct {
	Stored []logship.Record // the records stored, Source indexing the call's sources
	Dup    int              // records at or below their source's mark: not stored
	Bytes  int              // bytes of the stored lines
}

// Append stores the records of one batch of host, skipping the ones
// stored before.
func (s *Store) Append(project, host string, sources []Source, recs []logship.Record) (Appended, error) {
	return s.AppendBatch(project, host, sources, recs, nil)
}

// AppendBatch is Append with the zstd frame the records were decoded from
// (all of them: a batch's block, as DecodeBatch read it). When every
// record is new and the sources are first used in their order (the
// frame's source list is then the batch's, or its start), the frame is
// stored as it came instead of compressing the records again: the same
// records in the same encoding.
func (s *Store) AppendBatch(project, host string, sources []Source, recs []logship.Record, zblock []byte) (Appended, error) {
	h, err := s.host(project, host)
	if err != nil {
		return Appended{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken != nil {
		return Appended{}, h.broken
	}
	now := s.o.Now()
	if h.size >= s.o.SegmentBytes || now.Sub(h.opened) >= s.o.SegmentAge {
		if err := h.rotate(now); err != nil {
			return Appended{}, err
		}
	}
	highs := make([]int64, len(sources))
	for i, src := range sources {
		highs[i] = -1
		if m := h.marks[src.ID]; m != nil {
			highs[i] = m.high
		}
	}
	out := Appended{Stored: make([]logship.Record, 0, len(recs))}
	used := make([]int, len(sources)) // frame source index + 1
	var fsrc []frameSource
	ordered := true // frame source indexes are the batch's
	minT, maxT := int64(0), int64(0)
	for _, r := range recs {
		if r.Offset <= highs[r.Source] {
			out.Dup++
			continue
		}
		highs[r.Source] = r.Offset
		if used[r.Source] == 0 {
			ordered = ordered && r.Source == len(fsrc)
			fsrc = append(fsrc, frameSource{sources[r.Source].ID, sources[r.Source].Name})
			used[r.Source] = len(fsrc)
		}
		if len(out.Stored) == 0 || r.Time < minT {
			minT = r.Time
		}
		if len(out.Stored) == 0 || r.Time > maxT {
			maxT = r.Time
		}
		out.Stored = append(out.Stored, r)
		out.Bytes += len(r.Data)
	}
	if len(out.Stored) == 0 {
		return out, nil
	}
	p := append(h.payload[:0], frameRecs)
	p = binary.AppendVarint(p, minT)
	p = binary.AppendVarint(p, maxT)
	p = binary.AppendUvarint(p, uint64(len(out.Stored)))
	p = binary.AppendUvarint(p, uint64(len(fsrc)))
	for _, fs := range fsrc {
		p = appendString(p, fs.id)
		p = appendString(p, fs.name)
	}
	block := h.block[:0]
	if zblock != nil && out.Dup == 0 && ordered {
		p = append(p, zblock...)
	} else {
		for _, r := range out.Stored {
			r.Source = used[r.Source] - 1
			block = logship.AppendRecord(block, &r)
		}
		p = logship.Compress(p, block)
	}
	frame := appendFrame(h.frame[:0], p)
	h.block, h.payload, h.frame = keepBuf(block), keepBuf(p), keepBuf(frame)
	if _, err := h.f.Write(frame); err != nil {
		if terr := h.f.Truncate(h.size); terr != nil {
			h.broken = fmt.Errorf("log store %s: write failed (%v) and cannot be undone: %w", h.dir, err, terr)
			return Appended{}, h.broken
		}
		_, _ = h.f.Seek(h.size, io.SeekStart)
		return Appended{}, fmt.Errorf("log store %s: %w", h.dir, err)
	}
	h.size += int64(len(frame))
	h.pending = true
	for i, src := range sources {
		if highs[i] < 0 {
			continue
		}
		m := h.marks[src.ID]
		if m == nil {
			m = &mark{}
			h.marks[src.ID] = m
		}
		m.name, m.high = src.Name, highs[i]
	}
	return out, nil
}

// keepBuf returns b to be reused, or nil when it grew too large to keep
// for each host.
func keepBuf(b []byte) []byte {
	if cap(b) > 4<<20 {
		return nil
	}
	return b[:0]
}

func (h *hostLog) rotate(now time.Time) error {
	if err := h.f.Sync(); err != nil {
		return fmt.Errorf("log store: sync %s: %w", h.dir, err)
	}
	if err := h.f.Close(); err != nil {
		return fmt.Errorf("log store: close %s: %w", h.dir, err)
	}
	h.f = nil
	h.pending = false
	if err := h.newSegment(h.seq+1, now); err != nil {
		h.broken = err
		return err
	}
	return nil
}

// Sync fsyncs every segment written since the last Sync.
func (s *Store) Sync() error {
	s.mu.Lock()
	hs := make([]*hostLog, 0, len(s.hosts))
	for _, h := range s.hosts {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	var errs []error
	for _, h := range hs {
		h.mu.Lock()
		if h.f != nil && h.pending {
			if err := h.f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("log store: sync %s: %w", h.dir, err))
			}
			h.pending = false
		}
		h.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Close syncs and closes the open segments.
func (s *Store) Close() error {
	err := s.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, h := range s.hosts {
		h.mu.Lock()
		if h.f != nil {
			err = errors.Join(err, h.f.Close())
			h.f = nil
		}
		h.mu.Unlock()
		delete(s.hosts, k)
	}
	return err
}

// DropProject closes a project's segments and moves its folder out of the
// way (a rename: quick); the returned path is then deleted with
// os.RemoveAll, outside any lock. "" when the project has no folder.
func (s *Store) DropProject(project string) (string, error) {
	s.mu.Lock()
	for k, h := range s.hosts {
		if strings.HasPrefix(k, project+"/") {
			h.mu.Lock()
			if h.f != nil {
				h.f.Close()
				h.f = nil
			}
			h.broken = errors.New("project removed")
			h.mu.Unlock()
			delete(s.hosts, k)
		}
	}
	s.mu.Unlock()
	dir := filepath.Join(s.o.Dir, project)
	trash := filepath.Join(s.o.Dir, fmt.Sprintf(".removed-%s-%d", project, s.o.Now().UnixNano()))
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return trash, nil
}

// active reports whether path is the open segment of its host.
func (s *Store) active(project, host string, seq uint64) bool {
	s.mu.Lock()
	h := s.hosts[project+"/"+host]
	s.mu.Unlock()
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.f != nil && h.seq == seq
}

// Hosts lists the hosts with stored lines of a project, sorted.
func (s *Store) Hosts(project string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.o.Dir, project))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if h, ok := hostFromDir(e.Name()); ok {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out, nil
}
