// Package logship is what log-agent and agent-server share of log
// collection (protocol.CapLog): the record codec — the block of records
// (log lines) a log_batch carries, compressed with zstd, as log-agent
// encodes it and agent-server decodes it — and a project's types and
// batching bounds (project.go). One copy, so both ends read the same bytes
// the same way and accept the same projects.
//
// # Records
//
// A record is one log line (or one multiline record) with the byte offset
// where it starts in its source. Its bytes are kept exactly as read: the
// encoding is length-prefixed binary, so lines that are not UTF-8 (Latin-1,
// GBK, binary garbage) pass through unchanged. The uncompressed block is a
// sequence of
//
//	uvarint source index (into the batch's sources)
//	uvarint offset       byte offset of the line's start in the source
//	varint  time         Unix nanoseconds (the log's own time for docker
//	                     and k8s, the time it was read for files)
//	byte    stream       StreamFile, StreamStdout, StreamStderr
//	byte    flags        FlagTruncated | FlagPartial | FlagMultiline
//	uvarint length
//	bytes   data         without the line's end ("\n" or "\r\n")
//
// and the block travels as one zstd frame (Compress, Decompress).
package logship

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// MaxRecordLen bounds one record's data when decoding (outside input).
const MaxRecordLen = 64 << 20

// ErrCorrupt wraps every decoding error of a record block or its frame.
var ErrCorrupt = errors.New("corrupt log batch")

// Record is one log line.
type Record struct {
	Source int // index into the batch's sources
	Offset int64
	Time   int64 // Unix ns
	Stream byte
	Flags  byte
	Data   []byte
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
// The records' Data alias block. Errors wrap ErrCorrupt and name the
// record and the field.
func DecodeRecords(block []byte, sources int) ([]Record, error) {
	return AppendRecords(nil, block, sources)
}

// AppendRecords is DecodeRecords appending to out: a caller that knows how
// many records the block holds passes a slice with room for them (growing
// the slice was 15 % of the server's ingest).
func AppendRecords(out []Record, block []byte, sources int) ([]Record, error) {
	for len(block) > 0 {
		var r Record
		var n int
		var u uint64
		if u, n = binary.Uvarint(block); n <= 0 || u >= uint64(max(sources, 0)) {
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

var encPool = sync.Pool{New: func() any {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(1<<20),
		// No xxhash of the content: the spool and the segment files frame
		// batches with a CRC-32C, and the checksum was 5-7 % of the agent's
		// CPU (make logbench).
		zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // constant options
	}
	return e
}}

// Compress appends the zstd frame of block to dst.
func Compress(dst, block []byte) []byte {
	e := encPool.Get().(*zstd.Encoder)
	defer encPool.Put(e)
	return e.EncodeAll(block, dst)
}

// decPools holds a pool of decoders per bound: a decoder's memory limit is
// fixed when it is made.
var decPools sync.Map // int → *sync.Pool

func decoders(limit int) *sync.Pool {
	if p, ok := decPools.Load(limit); ok {
		return p.(*sync.Pool)
	}
	p, _ := decPools.LoadOrStore(limit, &sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(limit)))
		if err != nil {
			panic(err) // constant options
		}
		return d
	}})
	return p.(*sync.Pool)
}

// Decompress decodes one zstd frame of at most limit bytes (limit > 0; a
// caller uses one or two bounds, each gets its pool of decoders). Errors
// wrap ErrCorrupt.
func Decompress(data []byte, limit int) ([]byte, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("logship: decompress bound %d", limit)
	}
	var hdr zstd.Header
	if err := hdr.Decode(data); err == nil && hdr.HasFCS && hdr.FrameContentSize > uint64(limit) {
		return nil, fmt.Errorf("%w: block of %d bytes, at most %d", ErrCorrupt, hdr.FrameContentSize, limit)
	}
	pool := decoders(limit)
	d := pool.Get().(*zstd.Decoder)
	defer pool.Put(d)
	block, err := d.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(block) > limit {
		return nil, fmt.Errorf("%w: block of %d bytes, at most %d", ErrCorrupt, len(block), limit)
	}
	return block, nil
}
