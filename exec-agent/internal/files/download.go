package files

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/agentfleet/jkframe/compress"
	"github.com/agentfleet/libagent/protocol"
)

// ErrChanged: the file changed while it was being sent.
var ErrChanged = errors.New("file changed during the download")

// ErrNotRegular: a download of something that is not a regular file (a
// directory, a device, a socket).
var ErrNotRegular = errors.New("not a regular file")

// Download is an open file to send. Its size is fixed when it is opened;
// the methods read it with ReadAt, so they do not disturb each other, but a
// Download is meant for one transfer at a time.
type Download struct {
	f    *os.File
	path string
	size int64
}

// Open opens path (path rule in the package doc) for a download. Only
// regular files can be downloaded (a device such as /dev/zero would never end).
func Open(path string) (*Download, error) {
	clean, err := CleanPath(path)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	f, err := os.Open(clean)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("download: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("download %s: %s, %w", clean, kind(fi.Mode()), ErrNotRegular)
	}
	return &Download{f: f, path: clean, size: fi.Size()}, nil
}

// Path is the cleaned path.
func (d *Download) Path() string { return d.path }

// Size is the file's size when it was opened.
func (d *Download) Size() int64 { return d.size }

// Close closes the file.
func (d *Download) Close() error { return d.f.Close() }

// Sum reads the whole file (Size bytes) once and returns its MD5 — what v1's
// download_rep announces before the blocks.
func (d *Download) Sum(ctx context.Context) ([16]byte, error) {
	s, err := d.Section(0, 0)
	if err != nil {
		return [16]byte{}, err
	}
	if _, err := io.CopyBuffer(io.Discard, ctxReader{ctx, s}, make([]byte, copyBuf)); err != nil {
		return [16]byte{}, fmt.Errorf("download %s: %w", d.path, err)
	}
	return s.Sum()
}

// Section returns a reader of length bytes from offset (length 0: to the
// end), for an HTTP body or Range; it computes the MD5 of what it reads.
// An offset beyond the end is an error.
func (d *Download) Section(offset, length int64) (*Section, error) {
	if offset < 0 || length < 0 || offset > d.size {
		return nil, fmt.Errorf("download %s: range offset %d length %d outside the file (%d bytes)", d.path, offset, length, d.size)
	}
	if length == 0 || length > d.size-offset {
		length = d.size - offset
	}
	return &Section{r: io.NewSectionReader(d.f, offset, length), n: length, h: md5.New(), path: d.path}, nil
}

// Section reads a byte range of a Download and hashes it on the way.
type Section struct {
	r    *io.SectionReader
	n    int64
	read int64
	h    hash.Hash
	path string
}

// Len is the number of bytes the section holds.
func (s *Section) Len() int64 { return s.n }

func (s *Section) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.read += int64(n)
	if err == io.EOF && s.read < s.n {
		err = fmt.Errorf("download %s: %w: %d bytes short", s.path, ErrChanged, s.n-s.read)
	}
	return n, err
}

// Sum returns the MD5 of the bytes read; an error when the section was not
// read to its end.
func (s *Section) Sum() ([16]byte, error) {
	var sum [16]byte
	if s.read != s.n {
		return sum, fmt.Errorf("download %s: only %d of %d bytes read", s.path, s.read, s.n)
	}
	s.h.Sum(sum[:0])
	return sum, nil
}

// Blocks sends the whole file as v1 download_data blocks of blockSize
// bytes (≤ 0: protocol.DefaultBlockSize) in offset order, each encoded with
// compress.Encode, by calling send; it stops at send's first error. want is
// the MD5 announced in download_rep (from Sum): if the bytes sent differ
// (the file changed in between) Blocks returns ErrChanged after the last
// block, for a download_error.
func (d *Download) Blocks(ctx context.Context, blockSize int, want [16]byte, send func(protocol.DownloadData) error) error {
	if blockSize <= 0 {
		blockSize = protocol.DefaultBlockSize
	}
	s, err := d.Section(0, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, blockSize)
	var off uint64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("download %s: %w", d.path, err)
		}
		n, err := io.ReadFull(s, buf)
		if n > 0 {
			if serr := send(protocol.DownloadData{Offset: off, Data: compress.Encode(buf[:n])}); serr != nil {
				return fmt.Errorf("download %s: send block at %d: %w", d.path, off, serr)
			}
			off += uint64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	sum, err := s.Sum()
	if err != nil {
		return err
	}
	if sum != want {
		return fmt.Errorf("download %s: %w: md5 %x, announced %x", d.path, ErrChanged, sum, want)
	}
	return nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "special (" + m.Type().String() + ")"
}
