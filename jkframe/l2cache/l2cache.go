// Package l2cache is a two-level spool: bytes written to a Cache are kept in
// memory up to a threshold, and beyond it appended to a temporary file on
// disk, then read back in the order they were written.
//
// A Cache is an append-then-read queue of bytes, not a key-value cache: every
// byte written is returned by Read exactly once, in order, however writes and
// reads interleave. Read never blocks; it returns io.EOF whenever everything
// written so far has been read, and returns data again after more is written.
// When all bytes have been read the disk file is truncated and new writes go
// to memory again, so a spool that is drained regularly stays small.
package l2cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = errors.New("l2cache: closed")

// Cache is a byte spool over memory and a temporary file.
//
// All methods are safe for concurrent use; the intended use is one writer and
// one reader goroutine. With several writers (or readers) each call is still
// atomic, but the order in which their bytes interleave is unspecified.
type Cache struct {
	threshold int
	dir       string

	mu     sync.Mutex
	mem    []byte // mem[mr:] are unread bytes held in memory
	mr     int
	file   *os.File // created on the first spill; nil before
	fr, fw int64    // file[fr:fw] are unread bytes on disk
	closed bool
}

// New returns an empty Cache that keeps up to threshold unread bytes in
// memory and spills the rest to a temporary file in dir ("" means
// os.TempDir()). The file is created on first use and removed by Close.
func New(threshold int, dir string) *Cache {
	if threshold < 0 {
		threshold = 0
	}
	if dir == "" {
		dir = os.TempDir()
	}
	return &Cache{threshold: threshold, dir: dir}
}

// Write appends p. Bytes go to memory while the unread bytes in memory stay
// within the threshold and nothing is waiting on disk; the rest is appended
// to the disk file. It returns an error only when the file cannot be created
// or written; n then counts the bytes that were stored.
func (c *Cache) Write(p []byte) (n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	if c.fw == c.fr { // nothing on disk: memory may take bytes, keeping order
		room := c.threshold - (len(c.mem) - c.mr)
		if room > 0 {
			k := min(room, len(p))
			c.compact(k)
			c.mem = append(c.mem, p[:k]...)
			n, p = k, p[k:]
		}
	}
	if len(p) == 0 {
		return n, nil
	}
	if c.file == nil {
		f, err := os.CreateTemp(c.dir, "l2cache-*")
		if err != nil {
			return n, fmt.Errorf("l2cache: create spool file: %w", err)
		}
		c.file = f
	}
	m, err := c.file.WriteAt(p, c.fw)
	c.fw += int64(m)
	n += m
	if err != nil {
		return n, fmt.Errorf("l2cache: write spool file: %w", err)
	}
	return n, nil
}

// compact makes room to append k bytes to mem without growing it when the
// read part at the front is large enough to reuse.
func (c *Cache) compact(k int) {
	if c.mr == 0 {
		return
	}
	if c.mr == len(c.mem) {
		c.mem, c.mr = c.mem[:0], 0
		return
	}
	if len(c.mem)+k > cap(c.mem) && c.mr >= len(c.mem)/2 {
		n := copy(c.mem, c.mem[c.mr:])
		c.mem, c.mr = c.mem[:n], 0
	}
}

// Read reads the oldest unread bytes into p. It returns io.EOF when there are
// none (it does not wait for a writer).
func (c *Cache) Read(p []byte) (n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.mr < len(c.mem) {
		n = copy(p, c.mem[c.mr:])
		c.mr += n
		if c.mr == len(c.mem) {
			c.mem, c.mr = c.mem[:0], 0
		}
		return n, nil
	}
	if c.fr == c.fw {
		return 0, io.EOF
	}
	want := int64(len(p))
	if left := c.fw - c.fr; left < want {
		want = left
	}
	n, err = c.file.ReadAt(p[:want], c.fr)
	c.fr += int64(n)
	if n == int(want) {
		err = nil // ReadAt may report io.EOF together with the last bytes
	}
	if err != nil {
		return n, fmt.Errorf("l2cache: read spool file: %w", err)
	}
	if c.fr == c.fw {
		// Drained: start the file over so it does not grow without bound.
		c.fr, c.fw = 0, 0
		if err := c.file.Truncate(0); err != nil {
			return n, fmt.Errorf("l2cache: truncate spool file: %w", err)
		}
	}
	return n, nil
}

// Len returns the number of unread bytes.
func (c *Cache) Len() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.mem)-c.mr) + c.fw - c.fr
}

// DiskLen returns the number of unread bytes held in the disk file.
func (c *Cache) DiskLen() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fw - c.fr
}

// Close discards unread bytes and removes the temporary file. Later calls
// to Read and Write return ErrClosed; calling Close again does nothing.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.mem, c.mr = nil, 0
	if c.file == nil {
		return nil
	}
	name := c.file.Name()
	err := c.file.Close()
	c.file = nil
	if rerr := os.Remove(name); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("l2cache: remove spool file: %w", err)
	}
	return nil
}
