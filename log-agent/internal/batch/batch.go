// Package batch is the unit log-agent ships: the records (log lines) of one
// project collected over a short time, their sources with the byte ranges
// they cover, and the records compressed with zstd.
//
// # Records
//
// A record is one log line (or one multiline record) with the byte offset
// where it starts in its source file. Its bytes are kept exactly as read:
// the record encoding is length-prefixed binary, so lines that are not
// UTF-8 (Latin-1, GBK, binary garbage) pass through unchanged. When a batch
// travels inside JSON (the agent's WebSocket session) the compressed block
// is base64 text, never the lines themselves.
//
// The uncompressed record block is a sequence of
//
//	uvarint source index (into Batch.Sources)
//	uvarint offset       byte offset of the line's start in the source
//	varint  time         Unix nanoseconds (the log's own time for docker
//	                     and k8s, the time it was read for files)
//	byte    stream       0 file, 1 stdout, 2 stderr
//	byte    flags        FlagTruncated | FlagPartial | FlagMultiline
//	uvarint length
//	bytes   data         without the line's end ("\n" or "\r\n")
//
// # Sources and exactly-once
//
// Batch.Sources lists, for every source the batch covers, its stable id,
// its name (path, container or pod/container) and the byte range [First,
// End) of the source it accounts for: the records in it plus the lines
// dropped by exclude. A receiver that keeps, per source id, the highest
// record offset it stored and ignores records at or below it holds every
// line exactly once however often a batch is delivered (at-least-once
// delivery after a crash re-sends the batches that were not acknowledged).
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Stream of a record.
const (
	StreamFile   byte = 0
	StreamStdout byte = 1
	StreamStderr byte = 2
)

// Flags of a record.
const (
	// FlagTruncated: the line was longer than the project's max_line; Data
	// holds its first bytes followed by a marker naming the bytes dropped.
	FlagTruncated byte = 1 << iota
	// FlagPartial: the file ended without a line end (it was closed or
	// deleted); Data is what was there.
	FlagPartial
	// FlagMultiline: several lines joined by the multiline rule.
	FlagMultiline
)

// Record is one log line.
type Record struct {
	Source int // index into Batch.Sources
	Offset int64
	Time   int64
	Stream byte
	Flags  byte
	Data   []byte
}

// Source is one source a batch covers.
type Source struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	First int64  `json:"first"`
	End   int64  `json:"end"`
}

// Batch is a compressed block of records.
type Batch struct {
	Project string
	Seq     uint64 // assigned by the spool, increasing per project
	Created int64  // Unix nanoseconds when the batch was closed
	Lines   int
	Bytes   int // uncompressed bytes of the lines
	Sources []Source
	Data    []byte // zstd of the record block
}

// Limits of decoding (outside input: a spool file, later the wire).
const (
	MaxSources   = 1 << 16
	MaxRecordLen = 64 << 20
	MaxBlock     = 256 << 20
	maxString    = 64 << 10
)

// ErrCorrupt is returned for a malformed batch or record block.
var ErrCorrupt = errors.New("batch: corrupt")

var (
	encPool = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20))
		if err != nil {
			panic(err) // constant options
		}
		return e
	}}
	decPool = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxBlock))
		if err != nil {
			panic(err)
		}
		return d
	}}
)

// Compress returns the zstd frame of block appended to dst.
func Compress(dst, block []byte) []byte {
	e := encPool.Get().(*zstd.Encoder)
	defer encPool.Put(e)
	return e.EncodeAll(block, dst)
}

// Records decodes the batch's records (at most max uncompressed bytes).
func (b *Batch) Records(max int) ([]Record, error) {
	if max <= 0 || max > MaxBlock {
		max = MaxBlock
	}
	d := decPool.Get().(*zstd.Decoder)
	defer decPool.Put(d)
	var hdr zstd.Header
	if err := hdr.Decode(b.Data); err == nil && hdr.HasFCS && hdr.FrameContentSize > uint64(max) {
		return nil, fmt.Errorf("%w: block of %d bytes, at most %d", ErrCorrupt, hdr.FrameContentSize, max)
	}
	block, err := d.DecodeAll(b.Data, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(block) > max {
		return nil, fmt.Errorf("%w: block of %d bytes, at most %d", ErrCorrupt, len(block), max)
	}
	return DecodeRecords(block, len(b.Sources))
}

// AppendRecord appends r to a record block.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(r.Source))
	dst = binary.AppendUvarint(dst, uint64(r.Offset))
	dst = binary.AppendVarint(dst, r.Time)
	dst = append(dst, r.Stream, r.Flags)
	dst = binary.AppendUvarint(dst, uint64(len(r.Data)))
	return append(dst, r.Data...)
}

// DecodeRecords parses a record block; sources bounds the source indexes.
// Records' Data alias block.
func DecodeRecords(block []byte, sources int) ([]Record, error) {
	var out []Record
	for len(block) > 0 {
		var r Record
		var n int
		var u uint64
		if u, n = binary.Uvarint(block); n <= 0 || u >= uint64(sources) {
			return nil, fmt.Errorf("%w: record %d: source index", ErrCorrupt, len(out))
		}
		r.Source, block = int(u), block[n:]
		if u, n = binary.Uvarint(block); n <= 0 || u > 1<<62 {
			return nil, fmt.Errorf("%w: record %d: offset", ErrCorrupt, len(out))
		}
		r.Offset, block = int64(u), block[n:]
		if r.Time, n = binary.Varint(block); n <= 0 {
			return nil, fmt.Errorf("%w: record %d: time", ErrCorrupt, len(out))
		}
		block = block[n:]
		if len(block) < 2 {
			return nil, fmt.Errorf("%w: record %d: short", ErrCorrupt, len(out))
		}
		r.Stream, r.Flags, block = block[0], block[1], block[2:]
		if u, n = binary.Uvarint(block); n <= 0 || u > MaxRecordLen || u > uint64(len(block)-n) {
			return nil, fmt.Errorf("%w: record %d: length", ErrCorrupt, len(out))
		}
		block = block[n:]
		r.Data, block = block[:u:u], block[u:]
		out = append(out, r)
	}
	return out, nil
}

// frame header: magic, version.
const (
	magic   = "LAB1"
	minHead = 4 + 8 + 8 + 4 + 4 + 4
)

// MarshalBinary encodes the batch (for the spool): a header, the sources,
// the compressed block and a CRC-32C of everything before it.
func (b *Batch) MarshalBinary() ([]byte, error) {
	return b.AppendBinary(nil)
}

// AppendBinary appends the encoding of MarshalBinary to dst.
func (b *Batch) AppendBinary(dst []byte) ([]byte, error) {
	if len(b.Sources) > MaxSources {
		return nil, fmt.Errorf("batch: %d sources, at most %d", len(b.Sources), MaxSources)
	}
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint64(dst, b.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(b.Created))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(b.Lines))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(b.Bytes))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b.Sources)))
	dst = appendString(dst, b.Project)
	for _, s := range b.Sources {
		dst = appendString(dst, s.ID)
		dst = appendString(dst, s.Name)
		dst = binary.AppendUvarint(dst, uint64(s.First))
		dst = binary.AppendUvarint(dst, uint64(s.End))
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Data)))
	dst = append(dst, b.Data...)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	return dst, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// UnmarshalBinary decodes MarshalBinary's encoding; b.Data aliases data.
func (b *Batch) UnmarshalBinary(data []byte) error {
	if len(data) < minHead+4 || string(data[:4]) != magic {
		return fmt.Errorf("%w: header", ErrCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum", ErrCorrupt)
	}
	p := body[4:]
	b.Seq = binary.LittleEndian.Uint64(p)
	b.Created = int64(binary.LittleEndian.Uint64(p[8:]))
	b.Lines = int(binary.LittleEndian.Uint32(p[16:]))
	b.Bytes = int(binary.LittleEndian.Uint32(p[20:]))
	ns := binary.LittleEndian.Uint32(p[24:])
	p = p[28:]
	if ns > MaxSources {
		return fmt.Errorf("%w: %d sources", ErrCorrupt, ns)
	}
	var err error
	if b.Project, p, err = readString(p); err != nil {
		return err
	}
	b.Sources = make([]Source, 0, min(int(ns), len(p)/4))
	for range ns {
		var s Source
		if s.ID, p, err = readString(p); err != nil {
			return err
		}
		if s.Name, p, err = readString(p); err != nil {
			return err
		}
		var u uint64
		var n int
		if u, n = binary.Uvarint(p); n <= 0 || u > 1<<62 {
			return fmt.Errorf("%w: source first", ErrCorrupt)
		}
		s.First, p = int64(u), p[n:]
		if u, n = binary.Uvarint(p); n <= 0 || u > 1<<62 || int64(u) < s.First {
			return fmt.Errorf("%w: source end", ErrCorrupt)
		}
		s.End, p = int64(u), p[n:]
		b.Sources = append(b.Sources, s)
	}
	u, n := binary.Uvarint(p)
	if n <= 0 || u != uint64(len(p)-n) {
		return fmt.Errorf("%w: block length", ErrCorrupt)
	}
	b.Data = p[n:]
	return nil
}

func readString(p []byte) (string, []byte, error) {
	u, n := binary.Uvarint(p)
	if n <= 0 || u > maxString || u > uint64(len(p)-n) {
		return "", nil, fmt.Errorf("%w: string", ErrCorrupt)
	}
	return string(p[n : n+int(u)]), p[n+int(u):], nil
}
