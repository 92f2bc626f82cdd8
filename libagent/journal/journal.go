// Package journal is the agent side of reliable task results: a bounded
// on-disk journal of outgoing messages, each keyed by a sequence number that
// increases monotonically across restarts. A message stays in the journal
// until the server acknowledges it (Ack, cumulative); after a reconnect the
// agent replays what is still pending (Pending) and the server drops
// duplicates by sequence number.
//
// # Files
//
// The journal directory holds segment files named after the sequence number
// of their first record (%020d.seg) and a file "acked" holding the highest
// acknowledged sequence number. A record is
//
//	length  uint32 little endian  payload length
//	crc     uint32 little endian  CRC-32C of seq and payload
//	seq     uint64 little endian
//	payload [length]byte
//
// Records are appended to the newest segment; when it would grow past the
// segment size (an eighth of the bound, at most 16 MiB) a new segment is
// started. Ack deletes every older segment whose records are all
// acknowledged, so space comes back without rewriting live data; the active
// segment is kept for the next records even when all of it is acknowledged
// (recreating it per ack cost fsyncs), and rolled over when its space is
// needed.
//
// # Durability
//
// Append writes the record with one write call and returns: a returned
// sequence number survives a crash of the agent process (the bytes are in the
// kernel), and Sync makes everything appended so far survive a crash of the
// host. Fsyncing every record would cost about a millisecond per message,
// more than a whole exec round trip is allowed to take, so the owner calls
// Sync on a short timer instead (libagent: every 200 ms while dirty) and
// Close syncs. Ack moves the acknowledged position in memory; it is written
// (temp + fsync + rename) by Sync, and always before a wholly acknowledged
// segment is deleted, so the stored position never falls behind a deleted
// record and sequence numbers are never reused after a restart. Records lost
// to a host crash between two Syncs could let sequence numbers repeat; the
// server's high-water mark (AdvanceTo) closes that gap on the next handshake.
// Open scans every segment and cuts it at the first record that is short or
// fails its CRC (a torn write from a crash), so only whole records are ever
// replayed.
//
// # Bound
//
// The total size of the segment files never exceeds maxBytes: Append returns
// ErrFull instead, and the caller blocks or fails its producer until an Ack
// frees space. When the file system itself is full (ENOSPC, a quota),
// Append returns an error wrapping ErrNoSpace and leaves no partial record
// behind: the same append succeeds once space comes back.
//
// A *Journal is safe for concurrent use. Pending works on a snapshot and does
// not hold the journal's lock while calling fn, so producers keep appending
// during a replay.
package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/agentfleet/jkframe/durable"
	"github.com/agentfleet/jkframe/segfile"
	"github.com/agentfleet/libagent/statefile"
)

// Sentinel errors.
var (
	// ErrFull means the journal holds maxBytes of unacknowledged records.
	ErrFull = errors.New("journal full")
	// ErrTooLarge means one record could never fit in the journal.
	ErrTooLarge = errors.New("record larger than the journal")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("journal closed")
	// ErrNoSpace wraps the error of an append that failed because the file
	// system is full (durable.IsNoSpace): nothing was appended, and the
	// append may be retried.
	ErrNoSpace = errors.New("file system full")
)

const (
	headerSize  = 16
	maxSegBytes = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	first, last uint64
	path        string
	size        int64
}

func segPath(s *segment) string { return s.path }

// Journal is an open journal directory.
type Journal struct {
	dir      string
	maxBytes int64
	segMax   int64

	mu     sync.Mutex
	segs   []*segment
	active *os.File // open for append on segs[len(segs)-1], or nil
	size   int64    // sum of segs[i].size
	next   uint64
	acked  uint64
	closed bool
	// dirty: records written since the last fsync; ackDirty: acked moved
	// since the "acked" file was last written.
	dirty, ackDirty bool
}

// Open opens (creating it if needed) the journal in dir, bounded to maxBytes
// of segment files. Torn or corrupt records are cut off.
func Open(dir string, maxBytes int64) (*Journal, error) {
	if maxBytes <= headerSize {
		return nil, fmt.Errorf("journal %s: maxBytes %d too small", dir, maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{dir: dir, maxBytes: maxBytes, segMax: min(max(maxBytes/8, headerSize+1), maxSegBytes)}
	j.acked = segfile.ReadAcked(filepath.Join(dir, segfile.AckedName))
	if err := j.load(); err != nil {
		return nil, err
	}
	j.next = j.acked + 1
	if n := len(j.segs); n > 0 && j.segs[n-1].last+1 > j.next {
		j.next = j.segs[n-1].last + 1
	}
	return j, nil
}

func (j *Journal) load() error {
	files, err := segfile.List(j.dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var prev uint64
	for _, f := range files {
		seg, err := j.recover(f.Path, prev)
		if err != nil {
			return err
		}
		if seg == nil || seg.last <= j.acked {
			if err := os.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("journal: %w", err)
			}
			continue
		}
		prev = seg.last
		j.segs = append(j.segs, seg)
		j.size += seg.size
	}
	return nil
}

// recover scans one segment, cutting it after its last valid record. It
// returns nil for a segment without any valid record.
func (j *Journal) recover(path string, prev uint64) (*segment, error) {
	seg := &segment{path: path}
	err := segfile.Recover(path, func(r *bufio.Reader) int64 {
		for {
			seq, payload, err := readRecord(r, j.maxBytes)
			if err != nil || seq <= prev {
				return seg.size
			}
			if seg.first == 0 {
				seg.first = seq
			}
			seg.last, prev = seq, seq
			seg.size += int64(headerSize + len(payload))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if seg.first == 0 {
		return nil, nil
	}
	return seg, nil
}

var errCorrupt = errors.New("corrupt record")

// readRecord reads one record; io.EOF at a clean end, errCorrupt or
// io.ErrUnexpectedEOF for a damaged or torn one.
func readRecord(r io.Reader, maxBytes int64) (uint64, []byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	if int64(n)+headerSize > maxBytes {
		return 0, nil, errCorrupt
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, io.ErrUnexpectedEOF
	}
	crc := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(h[4:8]) {
		return 0, nil, errCorrupt
	}
	return binary.LittleEndian.Uint64(h[8:16]), payload, nil
}

// Append stores payload and returns its sequence number (see Durability).
// It returns ErrFull when the journal holds its bound, and an error
// wrapping ErrNoSpace when the file system is full.
func (j *Journal) Append(payload []byte) (uint64, error) {
	seq, err := j.append(payload)
	if err != nil && durable.IsNoSpace(err) {
		err = fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return seq, err
}

func (j *Journal) append(payload []byte) (uint64, error) {
	rec := int64(headerSize + len(payload))
	if rec > j.maxBytes {
		return 0, fmt.Errorf("journal append of %d bytes (bound %d): %w", len(payload), j.maxBytes, ErrTooLarge)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, ErrClosed
	}
	if j.size+rec > j.maxBytes {
		if err := j.rollAcked(); err != nil {
			return 0, fmt.Errorf("journal append: %w", err)
		}
	}
	if j.size+rec > j.maxBytes {
		return 0, fmt.Errorf("journal append: %d of %d bytes pending: %w", j.size-j.ackedBytes(), j.maxBytes, ErrFull)
	}
	seq := j.next
	if err := j.ensureActive(rec, seq); err != nil {
		return 0, err
	}
	buf := make([]byte, rec)
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(buf[8:16], seq)
	copy(buf[headerSize:], payload)
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(buf[8:], castagnoli))

	seg := j.segs[len(j.segs)-1]
	if _, err := j.active.Write(buf); err != nil {
		// Leave no partial record behind for the next append to follow.
		_ = j.active.Truncate(seg.size)
		return 0, fmt.Errorf("journal append: %w", err)
	}
	j.dirty = true
	if seg.first == 0 {
		seg.first = seq
	}
	seg.last = seq
	seg.size += rec
	j.size += rec
	j.next++
	return seq, nil
}

// ensureActive makes j.active the segment the next record of rec bytes goes
// to, starting a new segment when the current one is full.
func (j *Journal) ensureActive(rec int64, seq uint64) error {
	if n := len(j.segs); n > 0 {
		last := j.segs[n-1]
		if last.size+rec <= j.segMax || last.size == 0 {
			if j.active != nil {
				return nil
			}
			f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			j.active = f
			return nil
		}
	}
	if j.active != nil {
		if err := j.active.Close(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.active = nil
	}
	path := segfile.Path(j.dir, seq)
	for _, s := range j.segs {
		if s.path == path {
			return fmt.Errorf("journal: segment %s holds records out of order", path)
		}
	}
	f, err := durable.CreateAppend(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.active = f
	j.segs = append(j.segs, &segment{path: path})
	return nil
}

// Ack records that the server holds every record up to and including upTo
// and deletes the segments that are wholly acknowledged. Acking less than a
// previous Ack is a no-op; acking a sequence number never handed out is an
// error.
func (j *Journal) Ack(upTo uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if upTo <= j.acked {
		return nil
	}
	if upTo >= j.next {
		return fmt.Errorf("journal ack %d: beyond the last sequence number %d", upTo, j.next-1)
	}
	j.acked = upTo
	j.ackDirty = true
	if err := j.reclaim(); err != nil {
		return fmt.Errorf("journal ack %d: %w", upTo, err)
	}
	return nil
}

// reclaim deletes the wholly acknowledged segments other than the active
// (last) one, after making the acknowledged position durable, so the stored
// position never falls behind a deleted record. The active segment is kept
// even when wholly acknowledged: deleting and recreating it on every ack
// cost a directory fsync, an ack-file fsync and an unlink per command; its
// space comes back when it rolls over (Append). j.mu is held.
func (j *Journal) reclaim() error {
	n := 0 // wholly acknowledged segments at the front, the last one excluded
	for n < len(j.segs)-1 && j.segs[n].first != 0 && j.segs[n].last <= j.acked {
		n++
	}
	if n == 0 {
		return nil
	}
	if err := j.writeAcked(); err != nil {
		return err
	}
	// One still open by a replay on Windows stays counted; the next Ack
	// or Open deletes it.
	var err error
	j.segs, err = segfile.Trim(j.segs, n, segPath, func(seg *segment) { j.size -= seg.size })
	return err
}

// Pending calls fn for every unacknowledged record in sequence order, for
// replay after a reconnect. It stops at and returns the first error of fn.
// Records appended while Pending runs may or may not be visited; fn must not
// keep payload after it returns.
func (j *Journal) Pending(fn func(seq uint64, payload []byte) error) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	snap := make([]segment, len(j.segs))
	for i, s := range j.segs {
		snap[i] = *s
	}
	j.mu.Unlock()

	for _, seg := range snap {
		if err := j.replay(seg, fn); err != nil {
			return err
		}
	}
	return nil
}

func (j *Journal) replay(seg segment, fn func(uint64, []byte) error) error {
	f, err := os.Open(seg.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // acknowledged and deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("journal replay: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, seg.size))
	for {
		seq, payload, err := readRecord(r, j.maxBytes)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal replay %s: %w", seg.path, err)
		}
		j.mu.Lock()
		acked := j.acked
		j.mu.Unlock()
		if seq <= acked {
			continue
		}
		if err := fn(seq, payload); err != nil {
			return err
		}
	}
}

// NextSeq returns the sequence number the next Append will use.
func (j *Journal) NextSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next
}

// Acked returns the highest acknowledged sequence number (0 = none).
func (j *Journal) Acked() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.acked
}

// Size returns the bytes of segment files in use, at most maxBytes.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// rollAcked frees the active segment when all of it is acknowledged: the
// next record starts a new segment and the old one is deleted. j.mu is held.
func (j *Journal) rollAcked() error {
	n := len(j.segs)
	if n == 0 || j.segs[n-1].first == 0 || j.segs[n-1].last > j.acked {
		return nil
	}
	if j.active != nil {
		if err := j.active.Close(); err != nil {
			return err
		}
		j.active = nil
	}
	// An empty placeholder makes the acknowledged segment no longer the
	// last; ensureActive replaces it with a real one for the next record.
	j.segs = append(j.segs, &segment{})
	err := j.reclaim()
	j.segs = j.segs[:len(j.segs)-1]
	return err
}

// ackedBytes is the size of the records at or below the acknowledged
// position that are still on disk (the active segment's). j.mu is held.
func (j *Journal) ackedBytes() int64 {
	var n int64
	for _, seg := range j.segs {
		if seg.first != 0 && seg.last <= j.acked {
			n += seg.size
		}
	}
	return n
}

// writeAcked stores the acknowledged position atomically. j.mu is held.
func (j *Journal) writeAcked() error {
	b := segfile.Acked(j.acked)
	if err := statefile.WriteAtomic(filepath.Join(j.dir, segfile.AckedName), b[:], 0o600); err != nil {
		return err
	}
	j.ackDirty = false
	return nil
}

// Sync makes every appended record and the acknowledged position durable.
// It is cheap when nothing changed since the last call.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	return j.syncLocked()
}

func (j *Journal) syncLocked() error {
	if j.dirty && j.active != nil {
		if err := j.active.Sync(); err != nil {
			return fmt.Errorf("journal sync: %w", err)
		}
	}
	j.dirty = false
	if j.ackDirty {
		if err := j.writeAcked(); err != nil {
			return fmt.Errorf("journal sync: %w", err)
		}
	}
	return nil
}

// AdvanceTo makes the next sequence number larger than seq: the server
// reports the highest sequence number it holds for this journal at each
// handshake, and numbers it has already seen must not be handed out again
// (which could happen only after a host crash lost unsynced records).
func (j *Journal) AdvanceTo(seq uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq >= j.next {
		j.next = seq + 1
	}
}

// Close syncs and releases the open segment. Further calls return ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	err := j.syncLocked()
	j.closed = true
	if j.active != nil {
		if cerr := j.active.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("journal close: %w", cerr)
		}
		j.active = nil
	}
	return err
}
