package logging

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/agentfleet/libagent/logship"
)

// The frames of a segment file (the layout is in segments.go): strings,
// frames and their reader, recovery of a segment's marks, the decoding of
// marks and record frames, and counting a segment's lines from the frame
// headers.

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
	recs       []logship.Record // nil unless decoded
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
	block, err := logship.Decompress(p, MaxBlock)
	if err != nil {
		return nil, err
	}
	if fm.recs, err = logship.DecodeRecords(block, len(fm.sources)); err != nil {
		return nil, err
	}
	return fm, nil
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
