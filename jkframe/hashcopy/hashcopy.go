// Package hashcopy copies a stream while computing its checksum beside the
// copy: the hash runs in a goroutine of its own, fed with the buffers
// already written, so a transfer goes as fast as the slower of the copy and
// the hash rather than their sum while a core is free, and memory stays at
// a few buffers. It is the one checksummed copier of the repository: file
// uploads and downloads in agent-server (spools), exec-agent and agentctl
// use it.
package hashcopy

import (
	"hash"
	"io"
)

// Defaults used for zero fields of Options.
const (
	DefaultBufSize = 256 << 10
	DefaultBuffers = 4
)

// Options tune Copy; the zero value is ready to use.
type Options struct {
	// BufSize is the size of each buffer, so the largest write (default
	// DefaultBufSize).
	BufSize int
	// Buffers is how many buffers the reads, writes and hash cycle
	// through (default DefaultBuffers).
	Buffers int
	// FillBuffers reads until a buffer is full (or the source fails)
	// before writing it: for sources that return a few KiB at a time
	// (multipart parts), where many small writes would cost more than
	// the copy itself. A source's error, io.ErrUnexpectedEOF included, is
	// passed on as it is.
	FillBuffers bool
	// Progress, if set, is called after every write with the bytes
	// written so far.
	Progress func(written int64)
}

// Copy copies src to dst until src returns io.EOF or an error, or dst an
// error, and returns the bytes written. Every byte written, and nothing
// else, goes into h; h is complete when Copy returns, whatever the
// outcome. A source's io.EOF is success (nil); any other error, of src or
// dst, is returned as it is. Bytes read together with a source error are
// written before that error is returned.
func Copy(dst io.Writer, src io.Reader, h hash.Hash, o Options) (int64, error) {
	size, bufs := o.BufSize, o.Buffers
	if size <= 0 {
		size = DefaultBufSize
	}
	if bufs <= 0 {
		bufs = DefaultBuffers
	}
	free := make(chan []byte, bufs)
	for range bufs {
		free <- make([]byte, size)
	}
	toHash := make(chan []byte, bufs)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	defer func() {
		close(toHash)
		<-hashed
	}()

	read := src.Read
	if o.FillBuffers {
		read = func(b []byte) (int, error) { return readFull(src, b) }
	}
	var n int64
	for {
		buf := <-free
		k, rerr := read(buf)
		if k > 0 {
			w, werr := dst.Write(buf[:k])
			if werr == nil && w != k {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return n, werr
			}
			n += int64(k)
			toHash <- buf[:k]
			if o.Progress != nil {
				o.Progress(n)
			}
		} else {
			free <- buf
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// readFull reads into buf until it is full or r fails; unlike io.ReadFull
// it passes r's io.ErrUnexpectedEOF on as it is, and io.EOF also after a
// partial read.
func readFull(r io.Reader, buf []byte) (int, error) {
	k := 0
	for k < len(buf) {
		m, err := r.Read(buf[k:])
		k += m
		if err != nil {
			return k, err
		}
	}
	return k, nil
}
