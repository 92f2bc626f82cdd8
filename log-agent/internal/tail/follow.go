// Following files: reading them into chunks, checking identity and size
// for rotations and truncation, finishing released files, the periodic
// work (package doc: tail.go).

package tail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/agentfleet/log-agent/internal/checkpoint"
)

// chunkBuilder collects a chunk's lines, copying their bytes.
type chunkBuilder struct {
	ck    *Chunk
	arena []byte
	spans []int
}

func (b *chunkBuilder) add(l *Line) {
	b.spans = append(b.spans, len(b.arena))
	b.arena = append(b.arena, l.Data...)
	ln := *l
	ln.Data = nil
	b.ck.Lines = append(b.ck.Lines, ln)
}

func (b *chunkBuilder) done() *Chunk {
	*b.ck.arena = b.arena
	for i := range b.ck.Lines {
		end := len(b.arena)
		if i+1 < len(b.spans) {
			end = b.spans[i+1]
		}
		b.ck.Lines[i].Data = b.arena[b.spans[i]:end:end]
	}
	if cap(b.spans) <= 8192 {
		s := b.spans[:0]
		spansPool.Put(&s)
	}
	b.spans = nil
	return b.ck
}

// spansPool recycles the builders' line start offsets.
var spansPool = sync.Pool{New: func() any { s := make([]int, 0, 2048); return &s }}

func newBuilder(f *file, hint int) *chunkBuilder {
	arena := arenaPool.Get().(*[]byte)
	if cap(*arena) < hint {
		*arena = make([]byte, 0, hint)
	}
	lines := linesPool.Get().(*[]Line)
	spans := spansPool.Get().(*[]int)
	return &chunkBuilder{ck: &Chunk{ID: f.id, Name: f.name, arena: arena, Lines: (*lines)[:0]}, arena: (*arena)[:0], spans: (*spans)[:0]}
}

// send hands a chunk over, waiting for room.
func (t *Tailer) send(ctx context.Context, f *file, b *chunkBuilder, end int64, done bool) error {
	ck := b.done()
	ck.End, ck.Size, ck.Done = end, f.size, done
	if len(ck.Lines) == 0 && end <= f.sentEnd && !done {
		return nil
	}
	select {
	case t.out <- ck:
		f.sentEnd = max(f.sentEnd, end)
		return nil
	case <-ctx.Done():
		return errStopped
	}
}

// read reads one buffer of f; more reports that the buffer was filled.
func (t *Tailer) read(ctx context.Context, f *file) (more bool, err error) {
	if f.fd == nil {
		return false, nil
	}
	if f.off == 0 && f.fp.n < t.opts.FingerprintBytes {
		// Nothing read yet and short when found: it may turn out to be
		// a copy being written (logrotate's copytruncate).
		if copied, err := t.copyOf(f); copied || err != nil {
			return false, err
		}
	}
	if t.beforeRead != nil {
		t.beforeRead(f)
	}
	n, rerr := f.fd.ReadAt(t.buf, f.off)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		t.fail(fmt.Errorf("read %s: %w", f.path, rerr))
		return false, nil
	}
	if n == 0 {
		return false, nil // a truncation to below f.off: check sees it
	}
	// The bytes read must still be this lineage's: a file truncated and
	// rewritten past f.off since the last check would otherwise feed the
	// new content into the old lineage and skip the old one's last lines
	// (issue 17). The check comes after the read: checked before it, a
	// copytruncate and new writes between the check and the read (a
	// tailer descheduled there) went unseen. Found different, what was
	// read is dropped and the lineage continues in its copy.
	if same, size, err := t.same(f); err != nil {
		t.fail(err)
		return false, nil
	} else if !same {
		return false, t.truncated(ctx, f, size, t.now())
	}
	now := t.now()
	b := newBuilder(f, n+256)
	f.proc.feed(t.buf[:n], f.off, now, b.add)
	f.off += int64(n)
	f.size = max(f.size, f.off)
	f.grown = now
	if err := t.send(ctx, f, b, f.proc.start(f.off), false); err != nil {
		return false, err
	}
	return n == len(t.buf), nil
}

// checkAll checks the identity and size of every file (see the package
// doc), finishes the released files that are done and the orphans whose
// copy did not show up.
func (t *Tailer) checkAll(ctx context.Context, now time.Time) error {
	for _, f := range t.sorted() {
		if err := t.check(ctx, f, now); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tailer) check(ctx context.Context, f *file, now time.Time) error {
	if !f.release {
		fi, err := os.Stat(f.path)
		if err != nil || devInoOf(f.path, fi) != f.key {
			// Renamed away or deleted: read what is left, then finish.
			t.bump(func(s *Stats) { s.Rotations++ })
			t.releaseFile(f, t.opts.RotateWait)
			t.rescan = true
			if f.fd == nil {
				// Closed while idle: nothing more can be read.
				return t.finish(ctx, f, now)
			}
		} else if f.fd == nil {
			if fi.Size() == f.size {
				return nil
			}
			fd, err := os.Open(f.path)
			if err != nil {
				t.fail(fmt.Errorf("reopen %s: %w", f.path, err))
				return nil
			}
			f.fd = fd
			f.grown = now
		}
	}
	if f.fd == nil {
		return nil
	}
	same, size, err := t.same(f)
	if err != nil {
		t.fail(err)
		return nil
	}
	if !same {
		return t.truncated(ctx, f, size, now)
	}
	f.size = size
	if size > f.off {
		return nil // more to read: the next turn reads it
	}
	if f.release && now.Sub(f.grown) >= f.wait {
		return t.finish(ctx, f, now)
	}
	if !f.release && now.Sub(f.grown) >= t.opts.CloseIdle {
		// Idle: give the descriptor back; check reopens it on growth.
		f.fd.Close()
		f.fd = nil
	}
	return nil
}

// copyOf turns f (a lineage that read nothing yet) into a shadow of the
// followed file it turns out to copy, or into the continuation of the
// truncated lineage it copies.
func (t *Tailer) copyOf(f *file) (bool, error) {
	fi, err := f.fd.Stat()
	if err != nil || fi.Size() <= int64(f.fp.n) {
		return false, nil
	}
	head, err := t.head(f.fd, fi.Size())
	if err != nil || len(head) <= f.fp.n {
		return false, nil
	}
	for i, o := range t.orphans {
		if o.file.fp.n > 0 && o.file.fp.matches(head) {
			t.orphans = append(t.orphans[:i], t.orphans[i+1:]...)
			t.forget(f)
			nf := &file{spec: f.spec, name: o.file.name, path: f.path, key: f.key, fd: f.fd, size: fi.Size(), grown: f.grown, seen: true}
			return true, t.adopt(nf, o, head)
		}
	}
	for _, g := range t.files {
		if g != f && g.fp.n > 0 && g.fp.matches(head) {
			t.forget(f)
			f.fd.Close()
			t.shadows[f.key] = g.id
			return true, nil
		}
	}
	return false, nil
}

// forget drops a lineage that never emitted anything.
func (t *Tailer) forget(f *file) {
	delete(t.files, f.id)
	if t.byKey[f.key] == f {
		delete(t.byKey, f.key)
	}
	t.opts.Store.Remove(f.id)
}

// checkYoung looks at the young files again: grown to a fingerprint's
// size, or idle for RotateWait, they are discovered for good.
func (t *Tailer) checkYoung(ctx context.Context, now time.Time) error {
	keys := make([]devIno, 0, len(t.young))
	for k := range t.young {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ino < keys[j].ino })
	for _, k := range keys {
		y := t.young[k]
		sp := t.specs[y.spec]
		fi, err := os.Stat(y.path)
		if sp == nil || err != nil || devInoOf(y.path, fi) != k {
			delete(t.young, k)
			continue
		}
		if fi.Size() != y.size {
			y.size, y.grown = fi.Size(), now
		}
		settled := now.Sub(y.grown) >= t.opts.RotateWait
		if fi.Size() < int64(t.opts.FingerprintBytes) && !settled {
			continue
		}
		delete(t.young, k)
		if err := t.discover(ctx, sp, y.path, fi, k, y.atEnd, now, settled); err != nil {
			return err
		}
	}
	return nil
}

// same checks that f's open file still holds f's lineage: not shorter than
// the read offset, and its first bytes still match the fingerprint (which
// grows with the file up to FingerprintBytes).
func (t *Tailer) same(f *file) (bool, int64, error) {
	fi, err := f.fd.Stat()
	if err != nil {
		return true, f.size, fmt.Errorf("stat %s: %w", f.path, err)
	}
	size := fi.Size()
	if size < f.off {
		return false, size, nil
	}
	if size == 0 && f.fp.n == 0 {
		return true, 0, nil
	}
	// A file shorter than its fingerprint was truncated (even when
	// nothing of it was read yet: off 0).
	head, err := t.head(f.fd, size)
	if err != nil {
		return true, size, fmt.Errorf("read %s: %w", f.path, err)
	}
	if !f.fp.matches(head) {
		return false, size, nil
	}
	if len(head) > f.fp.n {
		f.fp = fpOf(head)
		t.putStore(f, false)
	}
	return true, size, nil
}

// truncated handles a file truncated in place (copytruncate): its lineage
// becomes an orphan waiting for its copy, the file a new lineage from 0.
func (t *Tailer) truncated(ctx context.Context, f *file, size int64, now time.Time) error {
	t.bump(func(s *Stats) { s.Truncations++ })
	old := &file{id: f.id, spec: f.spec, name: f.name, path: f.path, fp: f.fp, off: f.off, proc: f.proc, sentEnd: f.sentEnd, size: f.size}
	o := &orphan{file: old, lastSize: f.size, at: now}
	t.log.Debug("file truncated", "path", f.path, "id", f.id, "offset", f.off, "size", size)
	delete(t.files, f.id)
	f.id = checkpoint.NewID()
	f.off, f.sentEnd, f.size = 0, 0, size
	f.proc = newLineProc(t.procCfg(t.formatOf(f.spec)), &t.cnt)
	head, err := t.head(f.fd, size)
	if err != nil {
		head = nil
	}
	f.fp = fpOf(head)
	f.grown = now
	t.files[f.id] = f
	if err := t.putStore(f, true); err != nil {
		return err
	}
	// A copy already seen (a shadow) continues the lineage at once.
	for key, id := range t.shadows {
		if id != old.id {
			continue
		}
		delete(t.shadows, key)
		if nf, chead := t.openShadow(key, old, now); nf != nil {
			return t.adopt(nf, o, chead)
		}
	}
	t.orphans = append(t.orphans, o)
	t.rescan = true
	return nil
}

// openShadow finds the path of a shadow by a scan of the orphan's spec and
// opens it; nil when it is gone.
func (t *Tailer) openShadow(key devIno, old *file, now time.Time) (*file, []byte) {
	sp := t.specs[old.spec]
	if sp == nil {
		return nil, nil
	}
	for _, pat := range sp.Patterns {
		matches, _ := filepath.Glob(t.opts.Root + pat)
		for _, path := range matches {
			fi, err := os.Stat(path)
			if err != nil || devInoOf(path, fi) != key {
				continue
			}
			fd, err := os.Open(path)
			if err != nil {
				return nil, nil
			}
			head, err := t.head(fd, fi.Size())
			if err != nil || !old.fp.matches(head) {
				fd.Close()
				return nil, nil
			}
			return &file{spec: sp.Key, name: old.name, path: path, key: key, fd: fd, size: fi.Size(), grown: now, seen: true}, head
		}
	}
	return nil, nil
}

// finish emits what f has pending and forgets it.
func (t *Tailer) finish(ctx context.Context, f *file, now time.Time) error {
	b := newBuilder(f, 256)
	f.proc.finish(now, b.add)
	if err := t.send(ctx, f, b, f.off, true); err != nil {
		return err
	}
	if f.fd != nil {
		f.fd.Close()
		f.fd = nil
	}
	delete(t.files, f.id)
	t.ended[f.id] = f.off
	if t.byKey[f.key] == f {
		delete(t.byKey, f.key)
	}
	for k, id := range t.shadows {
		if id == f.id {
			delete(t.shadows, k)
		}
	}
	t.opts.Store.Put(checkpoint.File{ID: f.id, Name: f.name, Spec: f.spec, Path: f.path,
		Dev: f.key.dev, Ino: f.key.ino, FPLen: f.fp.n, FPHash: f.fp.h, Finished: true})
	t.log.Debug("finished", "path", f.path, "id", f.id, "offset", f.off)
	return nil
}

// periodic runs the multiline timeouts, expires orphans and prunes the
// checkpoints.
func (t *Tailer) periodic(ctx context.Context, now time.Time) error {
	if t.cfg.mlStart != nil {
		for _, f := range t.sorted() {
			if !f.proc.ml.active {
				continue
			}
			b := newBuilder(f, 256)
			f.proc.tick(now, b.add)
			if err := t.send(ctx, f, b, f.proc.start(f.off), false); err != nil {
				return err
			}
		}
	}
	keep := t.orphans[:0]
	for _, o := range t.orphans {
		if now.Sub(o.at) < 2*t.opts.RotateWait {
			keep = append(keep, o)
			continue
		}
		of := o.file
		if lost := o.lastSize - of.off; lost > 0 {
			t.bump(func(s *Stats) { s.LostBytes += uint64(lost) })
			t.log.Warn("file truncated before it was read to its end and no copy matches the globs: lines lost",
				"path", of.path, "offset", of.off, "size", o.lastSize, "lost_bytes", lost)
		}
		b := newBuilder(of, 256)
		of.proc.finish(now, b.add)
		if err := t.send(ctx, of, b, of.off, true); err != nil {
			return err
		}
		t.opts.Store.Put(checkpoint.File{ID: of.id, Name: of.name, Spec: of.spec, Path: of.path,
			FPLen: of.fp.n, FPHash: of.fp.h, Finished: true})
		t.ended[of.id] = of.off
	}
	t.orphans = keep
	t.opts.Store.Prune(t.opts.Keep, t.opts.MaxFinished)
	if len(t.ended) > 2*t.opts.MaxFinished {
		for id := range t.ended {
			if _, ok := t.opts.Store.Get(id); !ok {
				delete(t.ended, id)
			}
		}
	}
	return nil
}
