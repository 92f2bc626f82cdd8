package logging

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The forwarding cursor of a host is the file forward-nats.json in the
// host's segment folder: the position of the next record to forward. It
// is replaced atomically (a temporary file, fsynced, renamed) and only
// ever names a position whose records before it JetStream acknowledged,
// so a crash makes the forwarder send again what came after it (JetStream
// drops those re-sends by their message id within its duplicate window).
// It lives with the segments: removing a project removes it too.

const cursorFile = "forward-nats.json"

// fwdPos is a position in a host's segments: record Idx of the frame at
// Off of segment Seg.
type fwdPos struct {
	Seg uint64 `json:"seg"`
	Off int64  `json:"off"`
	Idx int    `json:"idx"`
}

func (p fwdPos) less(q fwdPos) bool {
	if p.Seg != q.Seg {
		return p.Seg < q.Seg
	}
	if p.Off != q.Off {
		return p.Off < q.Off
	}
	return p.Idx < q.Idx
}

type fwdCursor struct {
	V   int    `json:"v"`
	Pos fwdPos `json:"pos"`
	// Seq: the stream sequence of the last line acknowledged (0: none
	// known), where the check for lines stored but not acknowledged starts.
	Seq uint64 `json:"seq,omitempty"`
}

var errBadFwdCursor = errors.New("bad forwarding cursor")

// decodeFwdCursor parses a cursor file (read from disk: may be damaged).
func decodeFwdCursor(b []byte) (fwdCursor, error) {
	var c fwdCursor
	if err := json.Unmarshal(b, &c); err != nil {
		return fwdCursor{}, fmt.Errorf("%w: %v", errBadFwdCursor, err)
	}
	if c.V != 1 {
		return fwdCursor{}, fmt.Errorf("%w: version %d", errBadFwdCursor, c.V)
	}
	if c.Pos.Seg == 0 || c.Pos.Off < int64(len(segMagic)) || c.Pos.Idx < 0 || c.Pos.Idx > maxFrame {
		return fwdCursor{}, fmt.Errorf("%w: position %+v out of range", errBadFwdCursor, c.Pos)
	}
	return c, nil
}

func loadFwdCursor(dir string) (fwdCursor, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorFile))
	if errors.Is(err, os.ErrNotExist) {
		return fwdCursor{}, false, nil
	}
	if err != nil {
		return fwdCursor{}, false, err
	}
	c, err := decodeFwdCursor(b)
	return c, err == nil, err
}

func saveFwdCursor(dir string, c fwdCursor) error {
	c.V = 1
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, cursorFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, cursorFile))
}

// errNoFrame: no whole frame at the offset (the end of the segment, or a
// frame still being written, or a damaged one).
var errNoFrame = errors.New("no whole frame")

// readFrameAt reads the frame at off of f; it returns its payload (in buf
// when it fits) and the offset of the next frame.
func readFrameAt(f io.ReaderAt, off int64, buf []byte) ([]byte, int64, error) {
	var hdr [frameHeader]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return nil, 0, errNoFrame
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n == 0 || n > maxFrame {
		return nil, 0, errNoFrame
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	p := buf[:n]
	if _, err := f.ReadAt(p, off+frameHeader); err != nil {
		return nil, 0, errNoFrame
	}
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, 0, errNoFrame
	}
	return p, off + frameHeader + int64(n), nil
}

// frameCount returns the record count of an 'R' payload's head, -1 for
// another frame.
func frameCount(p []byte) int64 {
	if len(p) == 0 || p[0] != frameRecs {
		return -1
	}
	p = p[1:]
	_, a := binary.Varint(p)
	if a <= 0 {
		return -1
	}
	_, b := binary.Varint(p[a:])
	if b <= 0 {
		return -1
	}
	c, d := binary.Uvarint(p[a+b:])
	if d <= 0 {
		return -1
	}
	return int64(c)
}

// linesFrom counts the records of a segment from position (off, idx) to
// its last whole frame, and returns the offset after that frame.
func linesFrom(path string, off int64, idx int) (int64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, off, err
	}
	defer f.Close()
	var n int64
	var buf []byte
	first := true
	for {
		p, next, err := readFrameAt(f, off, buf)
		if err != nil {
			return n, off, nil
		}
		buf = p[:0]
		if c := frameCount(p); c > 0 {
			if first {
				c = max(0, c-int64(idx))
			}
			n += c
		}
		first = false
		off = next
	}
}
