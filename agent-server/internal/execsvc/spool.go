package execsvc

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/agentfleet/jkframe/hashcopy"
)

// Spool is a file received into the cache dir, with its size and MD5.
//
// A spool made by NewLiveSpool can also be read while it is being filled
// (followers, see Service.StartUpload). Its methods are safe for concurrent
// use; Size and MD5 are set once filling ended and must not be read before.
type Spool struct {
	f    *os.File
	Size int64
	MD5  [16]byte

	live *liveState // nil: filled before anyone reads it
}

// liveState is what followers of a spool being filled wait on.
type liveState struct {
	mu       sync.Mutex
	n        int64         // bytes written so far
	filled   bool          // writing ended without error: n is the size
	released bool          // the last byte may be read
	err      error         // followers end with it (set once)
	changed  chan struct{} // closed and replaced at every change
}

// ErrSpoolClosed ends the followers of a spool closed before it was
// released.
var ErrSpoolClosed = errors.New("spool closed")

// NewSpool copies r into a new temp file in dir, at most limit bytes
// (beyond: ErrTooLarge), computing the MD5 as it goes. Close removes it.
func NewSpool(dir string, r io.Reader, limit int64) (*Spool, error) {
	return NewLiveSpool(dir, r, limit, nil)
}

// NewLiveSpool is NewSpool whose file can be followed while it fills:
// grown, when not nil, is called from the filling goroutine after each
// write with the spool and the number of bytes written so far, so the
// caller can start a follower (Service.StartUpload) once enough has
// arrived. Followers never see the last byte before Release (or a failure
// before Abort): a spool found bad at the end never reaches a reader as
// whole. When filling fails, the followers end with the error and the
// file is removed.
func NewLiveSpool(dir string, r io.Reader, limit int64, grown func(sp *Spool, n int64)) (*Spool, error) {
	f, err := os.CreateTemp(dir, "spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp := &Spool{f: f, live: &liveState{changed: make(chan struct{})}}
	n, sum, err := sp.fill(r, limit, grown)
	if err != nil {
		sp.Abort(err)
		sp.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp.Size, sp.MD5 = n, sum
	l := sp.live
	l.mu.Lock()
	l.filled = true
	l.notify()
	l.mu.Unlock()
	return sp, nil
}

// fill copies r into the file in large writes (multipart parts are read
// a few KiB at a time, and as many small writes would cost more than the
// copy itself), with the MD5 computed beside the copy (hashcopy).
func (sp *Spool) fill(r io.Reader, limit int64, grown func(*Spool, int64)) (int64, [16]byte, error) {
	h := md5.New()
	n, err := hashcopy.Copy(&spoolWriter{sp: sp, limit: limit, grown: grown}, r, h,
		hashcopy.Options{BufSize: copyBuf, FillBuffers: true})
	var sum [16]byte
	h.Sum(sum[:0])
	return n, sum, err
}

// spoolWriter appends to a spool's file, refusing to go past limit
// (ErrTooLarge), and after each write tells the followers and grown how
// far the file has got.
type spoolWriter struct {
	sp    *Spool
	limit int64
	grown func(*Spool, int64)
	n     int64
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, w.limit)
	}
	k, err := w.sp.f.WriteAt(p, w.n)
	if err != nil {
		return k, err
	}
	w.n += int64(k)
	l := w.sp.live
	l.mu.Lock()
	l.n = w.n
	l.notify()
	l.mu.Unlock()
	if w.grown != nil {
		w.grown(w.sp, w.n)
	}
	return k, nil
}

// notify wakes the followers; l.mu is held.
func (l *liveState) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Release lets followers read the last byte and the end of a filled
// spool. Call it once the spool's size and MD5 are found good.
func (sp *Spool) Release() {
	if sp.live == nil {
		return
	}
	l := sp.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.filled && l.err == nil && !l.released {
		l.released = true
		l.notify()
	}
}

// Abort ends the followers with err (unless Release came first), so that
// they never take what they read for a whole file.
func (sp *Spool) Abort(err error) {
	if sp.live == nil {
		return
	}
	l := sp.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil && !l.released {
		l.err = err
		l.notify()
	}
}

// ReadAt reads the spooled bytes.
func (sp *Spool) ReadAt(p []byte, off int64) (int, error) { return sp.f.ReadAt(p, off) }

// Close removes the file; followers not released end with ErrSpoolClosed.
func (sp *Spool) Close() {
	sp.Abort(ErrSpoolClosed)
	_ = sp.f.Close()
	_ = os.Remove(sp.f.Name())
}

// follow returns a reader of the spool from its start that waits for the
// bytes still to come, until ctx ends. Only for spools of NewLiveSpool.
func (sp *Spool) follow(ctx context.Context) io.Reader {
	return &follower{sp: sp, ctx: ctx}
}

type follower struct {
	sp  *Spool
	ctx context.Context
	off int64
}

func (fr *follower) Read(p []byte) (int, error) {
	l := fr.sp.live
	for {
		l.mu.Lock()
		avail := l.n
		if !l.released && avail > 0 {
			avail-- // held back until Release
		}
		released, err, changed := l.released, l.err, l.changed
		l.mu.Unlock()
		if fr.off < avail {
			p = p[:min(int64(len(p)), avail-fr.off)]
			k, rerr := fr.sp.f.ReadAt(p, fr.off)
			fr.off += int64(k)
			if rerr != nil && !(rerr == io.EOF && k == len(p)) {
				l.mu.Lock()
				err := l.err // closed because it failed: say why
				l.mu.Unlock()
				if err != nil {
					return k, err
				}
				return k, fmt.Errorf("spool: %w", rerr)
			}
			return k, nil
		}
		switch {
		case err != nil:
			return 0, err
		case released:
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-fr.ctx.Done():
			return 0, fr.ctx.Err()
		}
	}
}
