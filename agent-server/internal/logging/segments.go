package logging

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
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
	segExt      = ".seg"
	frameHeader = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var encPool = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err) // constant options
	}
	return e
}}

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
	Now      func() time.Time
	Log      *slog.Logger
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
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), segExt)
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(n, 10, 64); err == nil {
			out = append(out, v)
		}
	}
	slices.Sort(out)
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

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func readString(p []byte) (string, []byte, error) {
	u, n := binary.Uvarint(p)
	if n <= 0 || u > maxNameLen || u > uint64(len(p)-n) {
		return "", nil, fmt.Errorf("%w: string", ErrCorrupt)
	}
	return string(p[n : n+int(u)]), p[n+int(u):], nil
}

func appendFrame(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

// frameReader reads the frames of a segment.
type frameReader struct {
	r   *bufio.Reader
	off int64 // of the next frame
	buf []byte
}

func newFrameReader(f io.Reader, off int64) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(f, 1<<20), off: off}
}

// next returns the next whole frame's payload (valid until the next call)
// and its offset; io.EOF at the end or at a torn or corrupt frame.
func (fr *frameReader) next() ([]byte, int64, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, 0, io.EOF
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n == 0 || n > maxFrame {
		return nil, 0, io.EOF
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return nil, 0, io.EOF
	}
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, 0, io.EOF
	}
	at := fr.off
	fr.off += frameHeader + int64(n)
	return p, at, nil
}

// recoverSegment reads a segment's marks and records and returns the marks
// after its last whole frame and that frame's end; nil marks when the
// segment has no whole marks frame.
func recoverSegment(path string) (map[string]*mark, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || string(magic[:]) != segMagic {
		return nil, 0, nil
	}
	fr := newFrameReader(f, 4)
	p, _, err := fr.next()
	if err != nil || len(p) == 0 || p[0] != frameMarks {
		return nil, 0, nil
	}
	marks, err := decodeMarks(p)
	if err != nil {
		return nil, 0, nil
	}
	good := fr.off
	for {
		p, _, err := fr.next()
		if err != nil {
			return marks, good, nil
		}
		fm, err := decodeRecordFrame(p, true)
		if err != nil {
			return marks, good, nil // a frame we cannot read ends the segment: cut it
		}
		for _, r := range fm.recs {
			src := fm.sources[r.Source]
			m := marks[src.id]
			if m == nil {
				m = &mark{name: src.name, high: -1}
				marks[src.id] = m
			}
			m.high = max(m.high, r.Offset)
		}
		good = fr.off
	}
}

func decodeMarks(p []byte) (map[string]*mark, error) {
	p = p[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: marks count", ErrCorrupt)
	}
	p = p[k:]
	marks := make(map[string]*mark, n)
	for range n {
		var id, name string
		var err error
		if id, p, err = readString(p); err != nil {
			return nil, err
		}
		if name, p, err = readString(p); err != nil {
			return nil, err
		}
		high, k := binary.Varint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: mark", ErrCorrupt)
		}
		p = p[k:]
		marks[id] = &mark{name: name, high: high}
	}
	return marks, nil
}

type frameSource struct{ id, name string }

type recordFrame struct {
	minT, maxT int64
	count      int
	sources    []frameSource
	recs       []Record // nil unless decoded
}

// decodeRecordFrame parses an 'R' payload; with records, the block too.
func decodeRecordFrame(p []byte, records bool) (*recordFrame, error) {
	if len(p) == 0 || p[0] != frameRecs {
		return nil, fmt.Errorf("%w: not a record frame", ErrCorrupt)
	}
	p = p[1:]
	fm := &recordFrame{}
	var k int
	if fm.minT, k = binary.Varint(p); k <= 0 {
		return nil, fmt.Errorf("%w: frame time", ErrCorrupt)
	}
	p = p[k:]
	if fm.maxT, k = binary.Varint(p); k <= 0 {
		return nil, fmt.Errorf("%w: frame time", ErrCorrupt)
	}
	p = p[k:]
	c, k := binary.Uvarint(p)
	if k <= 0 || c > uint64(len(p)) {
		return nil, fmt.Errorf("%w: frame count", ErrCorrupt)
	}
	fm.count, p = int(c), p[k:]
	ns, k := binary.Uvarint(p)
	if k <= 0 || ns > MaxSources {
		return nil, fmt.Errorf("%w: frame sources", ErrCorrupt)
	}
	p = p[k:]
	for range ns {
		var s frameSource
		var err error
		if s.id, p, err = readString(p); err != nil {
			return nil, err
		}
		if s.name, p, err = readString(p); err != nil {
			return nil, err
		}
		fm.sources = append(fm.sources, s)
	}
	if !records {
		return fm, nil
	}
	d := decPool.Get().(*zstd.Decoder)
	defer decPool.Put(d)
	block, err := d.DecodeAll(p, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if fm.recs, err = DecodeRecords(block, len(fm.sources)); err != nil {
		return nil, err
	}
	return fm, nil
}

// Source is a batch source as the store sees it.
type Source struct{ ID, Name string }

// Appended is the outcome of one Append.
type Appended struct {
	Stored []Record // the records stored, Source indexing the call's sources
	Dup    int      // records at or below their source's mark: not stored
	Bytes  int      // bytes of the stored lines
}

// Append stores the records of one batch of host, skipping the ones
// stored before.
func (s *Store) Append(project, host string, sources []Source, recs []Record) (Appended, error) {
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
	var out Appended
	block := make([]byte, 0, 4096)
	used := make([]int, len(sources)) // frame source index + 1
	var fsrc []frameSource
	minT, maxT := int64(0), int64(0)
	for _, r := range recs {
		if r.Offset <= highs[r.Source] {
			out.Dup++
			continue
		}
		highs[r.Source] = r.Offset
		if used[r.Source] == 0 {
			fsrc = append(fsrc, frameSource{sources[r.Source].ID, sources[r.Source].Name})
			used[r.Source] = len(fsrc)
		}
		fr := r
		fr.Source = used[r.Source] - 1
		block = AppendRecord(block, &fr)
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
	p := []byte{frameRecs}
	p = binary.AppendVarint(p, minT)
	p = binary.AppendVarint(p, maxT)
	p = binary.AppendUvarint(p, uint64(len(out.Stored)))
	p = binary.AppendUvarint(p, uint64(len(fsrc)))
	for _, fs := range fsrc {
		p = appendString(p, fs.id)
		p = appendString(p, fs.name)
	}
	e := encPool.Get().(*zstd.Encoder)
	p = e.EncodeAll(block, p)
	encPool.Put(e)
	frame := appendFrame(make([]byte, 0, len(p)+frameHeader), p)
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

type segFile struct {
	project, host string
	seq           uint64
	path          string
	size          int64
	mod           time.Time
}

// Prune applies retention: closed segments older than MaxAge, then the
// oldest closed segments of a project over MaxBytes. It returns how many
// segments and bytes it deleted.
func (s *Store) Prune() (n int, bytes int64, err error) {
	projects, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return 0, 0, err
	}
	now := s.o.Now()
	for _, pe := range projects {
		if !pe.IsDir() || strings.HasPrefix(pe.Name(), ".") {
			continue
		}
		project := pe.Name()
		hosts, err := s.Hosts(project)
		if err != nil {
			return n, bytes, err
		}
		var files []segFile
		var total int64
		for _, host := range hosts {
			dir := filepath.Join(s.o.Dir, project, hostDir(host))
			seqs, err := segments(dir)
			if err != nil {
				continue
			}
			for i, seq := range seqs {
				path := filepath.Join(dir, segName(seq))
				fi, err := os.Stat(path)
				if err != nil {
					continue
				}
				total += fi.Size()
				if i == len(seqs)-1 || s.active(project, host, seq) {
					continue // the newest segment holds the marks in use
				}
				files = append(files, segFile{project, host, seq, path, fi.Size(), fi.ModTime()})
			}
		}
		slices.SortFunc(files, func(a, b segFile) int { return a.mod.Compare(b.mod) })
		for _, f := range files {
			old := s.o.MaxAge > 0 && now.Sub(f.mod) > s.o.MaxAge
			over := s.o.MaxBytes > 0 && total > s.o.MaxBytes
			if !old && !over {
				continue
			}
			if err := os.Remove(f.path); err != nil {
				return n, bytes, err
			}
			n++
			bytes += f.size
			total -= f.size
		}
	}
	return n, bytes, nil
}

// Count returns the number of lines stored for a project by reading the
// frame headers only (O(frames); for tests and tools, not for the API).
func (s *Store) Count(project string) (int64, error) {
	hosts, err := s.Hosts(project)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, host := range hosts {
		dir := filepath.Join(s.o.Dir, project, hostDir(host))
		seqs, err := segments(dir)
		if err != nil {
			continue
		}
		for _, seq := range seqs {
			n, err := countSegment(filepath.Join(dir, segName(seq)))
			if err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

func countSegment(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	var n int64
	var head [frameHeader + 32]byte
	for off := int64(4); off+frameHeader <= size; {
		k, _ := f.ReadAt(head[:], off)
		if k < frameHeader {
			break
		}
		l := int64(binary.LittleEndian.Uint32(head[:4]))
		if l == 0 || off+frameHeader+l > size {
			break
		}
		p := head[frameHeader:k]
		if len(p) > 0 && p[0] == frameRecs {
			p = p[1:]
			_, a := binary.Varint(p)
			if a > 0 {
				_, b := binary.Varint(p[a:])
				if b > 0 {
					c, d := binary.Uvarint(p[a+b:])
					if d > 0 {
						n += int64(c)
					}
				}
			}
		}
		off += frameHeader + l
	}
	return n, nil
}
