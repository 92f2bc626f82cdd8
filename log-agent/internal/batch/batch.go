// Package batch is the unit log-agent ships: the records (log lines) of one
// project collected over a short time, their sources with the byte ranges
// they cover, and the records compressed with zstd.
//
// # Records
//
// The records (log lines, kept byte for byte) are encoded and compressed by
// libagent/logship, the codec agent-server decodes them with.
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
	"fmt"
	"hash/crc32"

	"github.com/agentfleet/libagent/logship"
)

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
	Data    []byte // zstd of the record block (logship.Compress)
}

// Limits of decoding (outside input: a spool file).
const (
	MaxSources = 1 << 16
	MaxBlock   = 256 << 20
	maxString  = 64 << 10
)

// ErrCorrupt is returned for a malformed batch or record block (the
// sentinel of logship, so one errors.Is covers both).
var ErrCorrupt = logship.ErrCorrupt

// Records decodes the batch's records (at most max uncompressed bytes).
func (b *Batch) Records(max int) ([]logship.Record, error) {
	if max <= 0 || max > MaxBlock {
		max = MaxBlock
	}
	block, err := logship.Decompress(b.Data, max)
	if err != nil {
		return nil, err
	}
	return logship.DecodeRecords(block, len(b.Sources))
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
