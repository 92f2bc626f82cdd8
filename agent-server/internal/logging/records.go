package logging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/agentfleet/libagent/protocol"
)

// Record is one log line as the agent read it.
type Record struct {
	Source int // index into the batch's (or frame's) sources
	Offset int64
	Time   int64 // Unix ns
	Stream byte  // 0 file, 1 stdout, 2 stderr
	Flags  byte  // 1 truncated, 2 partial, 4 multiline
	Data   []byte
}

// Limits of what a batch may hold (outside input).
const (
	MaxSources   = 1 << 12
	MaxRecordLen = 64 << 20
	MaxBlock     = 64 << 20
	maxIDLen     = 64
	maxNameLen   = 4096
)

// ErrCorrupt wraps every decoding error of a batch.
var ErrCorrupt = errors.New("corrupt batch")

var decPool = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(MaxBlock))
	if err != nil {
		panic(err) // constant options
	}
	return d
}}

var sourceIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckBatch validates a log_batch's envelope: project name, sources.
func CheckBatch(b *protocol.LogBatch) error {
	if !nameRE.MatchString(b.Project) {
		return fmt.Errorf("%w: project %q", ErrCorrupt, b.Project)
	}
	if len(b.Sources) == 0 && b.Lines > 0 {
		return fmt.Errorf("%w: lines without sources", ErrCorrupt)
	}
	if len(b.Sources) > MaxSources {
		return fmt.Errorf("%w: %d sources, at most %d", ErrCorrupt, len(b.Sources), MaxSources)
	}
	for i, s := range b.Sources {
		if !sourceIDRE.MatchString(s.ID) {
			return fmt.Errorf("%w: sources[%d].id %q", ErrCorrupt, i, s.ID)
		}
		if len(s.Name) > maxNameLen {
			return fmt.Errorf("%w: sources[%d].name longer than %d", ErrCorrupt, i, maxNameLen)
		}
		if s.First < 0 || s.End < s.First {
			return fmt.Errorf("%w: sources[%d] range [%d, %d)", ErrCorrupt, i, s.First, s.End)
		}
	}
	return nil
}

// DecodeBatch decompresses and parses a batch's record block.
func DecodeBatch(b *protocol.LogBatch) ([]Record, error) {
	if err := CheckBatch(b); err != nil {
		return nil, err
	}
	if len(b.Data) == 0 {
		return nil, nil
	}
	d := decPool.Get().(*zstd.Decoder)
	defer decPool.Put(d)
	var hdr zstd.Header
	if err := hdr.Decode(b.Data); err == nil && hdr.HasFCS && hdr.FrameContentSize > MaxBlock {
		return nil, fmt.Errorf("%w: block of %d bytes, at most %d", ErrCorrupt, hdr.FrameContentSize, MaxBlock)
	}
	block, err := d.DecodeAll(b.Data, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(block) > MaxBlock {
		return nil, fmt.Errorf("%w: block of %d bytes, at most %d", ErrCorrupt, len(block), MaxBlock)
	}
	return DecodeRecords(block, len(b.Sources))
}

// DecodeRecords parses a record block (the log-agent's batch encoding:
// uvarint source, uvarint offset, varint time, stream, flags, uvarint
// length, bytes); sources bounds the source indexes. Data aliases block.
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

// AppendRecord appends r in the record block encoding.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(r.Source))
	dst = binary.AppendUvarint(dst, uint64(r.Offset))
	dst = binary.AppendVarint(dst, r.Time)
	dst = append(dst, r.Stream, r.Flags)
	dst = binary.AppendUvarint(dst, uint64(len(r.Data)))
	return append(dst, r.Data...)
}
