// Finding files: the specs' globs, new files and their identity, resuming
// from checkpoints and adopting orphaned lineages (package doc: tail.go).

package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentfleet/log-agent/internal/checkpoint"
)

func (t *Tailer) applySpecs(now time.Time) {
	t.specMu.Lock()
	next := t.next
	t.next = nil
	t.specMu.Unlock()
	if next == nil {
		return
	}
	keep := map[string]*Spec{}
	for i := range next {
		s := next[i]
		keep[s.Key] = &s
	}
	for key := range t.specs {
		if _, ok := keep[key]; !ok {
			delete(t.scanned, key)
			for _, f := range t.files {
				if f.spec == key {
					f.spec = ""
					t.releaseFile(f, 0)
				}
			}
		}
	}
	t.specs = keep
	t.rescan = true
}

func (t *Tailer) releaseFile(f *file, wait time.Duration) {
	if !f.release || wait < f.wait {
		f.wait = wait
	}
	f.release = true
}

// scan evaluates every spec's globs.
func (t *Tailer) scan(ctx context.Context, now time.Time) error {
	t.rescan = false
	t.last = now
	for _, f := range t.files {
		f.seen = false
	}
	seen := map[devIno]bool{}
	keys := make([]string, 0, len(t.specs))
	for k := range t.specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sp := t.specs[k]
		first := !t.scanned[k]
		t.scanned[k] = true
		for _, pat := range sp.Patterns {
			matches, err := filepath.Glob(t.opts.Root + pat)
			if err != nil {
				t.fail(fmt.Errorf("glob %s: %w", pat, err))
				continue
			}
			for _, path := range matches {
				fi, err := os.Stat(path)
				if err != nil || !fi.Mode().IsRegular() {
					continue
				}
				key := devInoOf(path, fi)
				if seen[key] {
					continue
				}
				seen[key] = true
				if err := t.found(ctx, sp, path, fi, key, first && sp.AtEnd, now); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range t.files {
		if !f.seen && !f.release {
			t.releaseFile(f, t.opts.RotateWait)
		}
	}
	for k := range t.shadows {
		if !seen[k] {
			delete(t.shadows, k)
		}
	}
	for k := range t.skipped {
		if !seen[k] {
			delete(t.skipped, k)
		}
	}
	for k := range t.young {
		if !seen[k] {
			delete(t.young, k)
		}
	}
	return nil
}

func devInoOf(path string, fi os.FileInfo) devIno {
	d, i := fileKey(path, fi)
	return devIno{d, i}
}

// found handles one file matched by a glob.
func (t *Tailer) found(ctx context.Context, sp *Spec, path string, fi os.FileInfo, key devIno, atEnd bool, now time.Time) error {
	if f := t.byKey[key]; f != nil {
		f.seen = true
		if f.path != path || f.spec != sp.Key {
			f.path = path
			f.spec = sp.Key
			t.putStore(f, false)
		}
		if f.release && f.spec != "" {
			f.release = false // back under a glob (a rename seen mid-scan)
		}
		return nil
	}
	if _, ok := t.shadows[key]; ok {
		return nil
	}
	if sz, ok := t.skipped[key]; ok && sz == fi.Size() {
		return nil
	}
	if y, ok := t.young[key]; ok {
		y.path = path
		return nil // checkYoung decides
	}
	return t.discover(ctx, sp, path, fi, key, atEnd, now, false)
}

// discover matches a file not followed yet (see the package doc); settled:
// a young file that stopped growing is taken as new even when short.
func (t *Tailer) discover(ctx context.Context, sp *Spec, path string, fi os.FileInfo, key devIno, atEnd bool, now time.Time, settled bool) error {
	fd, err := os.Open(path)
	if err != nil {
		t.fail(fmt.Errorf("open %s: %w", path, err))
		return nil
	}
	head, err := t.head(fd, fi.Size())
	if err != nil {
		fd.Close()
		t.fail(fmt.Errorf("read %s: %w", path, err))
		return nil
	}
	if compressed(head) {
		fd.Close()
		if _, ok := t.skipped[key]; !ok {
			t.log.Debug("skipping a compressed file", "path", path)
		}
		t.skipped[key] = fi.Size()
		return nil
	}
	name := t.sourceName(sp, path)
	nf := &file{spec: sp.Key, name: name, path: path, key: key, fd: fd, size: fi.Size(), grown: now, seen: true}
	all := t.opts.Store.All()
	// 1. a checkpoint of this inode with a matching fingerprint
	for _, c := range all {
		if _, live := t.files[c.ID]; live || t.isOrphan(c.ID) {
			continue
		}
		if c.Dev == key.dev && c.Ino == key.ino && (fingerprint{c.FPLen, c.FPHash}).matches(head) {
			return t.resume(nf, c, head, now)
		}
	}
	// 2. the copy of a truncated lineage
	for i, o := range t.orphans {
		if o.file.fp.n > 0 && o.file.fp.matches(head) {
			t.orphans = append(t.orphans[:i], t.orphans[i+1:]...)
			delete(t.young, key)
			return t.adopt(nf, o, head)
		}
	}
	// 3. a copy of a followed file
	if len(head) > 0 {
		for _, f := range t.files {
			if f.fp.n > 0 && f.fp.matches(head) {
				fd.Close()
				delete(t.young, key)
				t.shadows[key] = f.id
				return nil
			}
		}
	}
	// 4. a checkpoint by fingerprint alone
	if len(head) > 0 {
		for _, c := range all {
			if _, live := t.files[c.ID]; live || t.isOrphan(c.ID) {
				continue
			}
			if c.FPLen > 0 && (fingerprint{c.FPLen, c.FPHash}).matches(head) {
				return t.resume(nf, c, head, now)
			}
		}
	}
	// 5. new — unless it is shorter than a fingerprint and still young: a
	// copy being written looks like that.
	if len(head) < t.opts.FingerprintBytes && !settled {
		fd.Close()
		t.young[key] = &youngFile{spec: sp.Key, path: path, size: fi.Size(), grown: now, atEnd: atEnd}
		return nil
	}
	delete(t.young, key)
	nf.id = checkpoint.NewID()
	nf.fp = fpOf(head)
	nf.proc = newLineProc(t.procCfg(sp.Format), &t.cnt)
	if atEnd {
		off, err := lastLineEnd(fd, fi.Size())
		if err != nil {
			fd.Close()
			t.fail(fmt.Errorf("read %s: %w", path, err))
			return nil
		}
		nf.off = off
	}
	nf.sentEnd = nf.off
	t.track(nf)
	if err := t.putStore(nf, true); err != nil {
		return err
	}
	if nf.off > 0 {
		// Start after the existing lines: the checkpoint moves there now.
		t.opts.Store.Advance(nf.id, nf.off)
	}
	t.log.Debug("following", "path", path, "id", nf.id, "offset", nf.off, "fp", nf.fp.n, "size", nf.size, "ino", key.ino, "live", len(t.files))
	return nil
}

func (t *Tailer) sourceName(sp *Spec, path string) string {
	switch {
	case sp.Name == "":
		return path
	case sp.StripPrefix != "":
		return sp.Name + ":" + strings.TrimPrefix(path, t.opts.Root+sp.StripPrefix)
	}
	return sp.Name
}

func (t *Tailer) procCfg(f Format) *procConfig {
	c := t.cfg
	c.format = f
	return &c
}

func (t *Tailer) isOrphan(id string) bool {
	for _, o := range t.orphans {
		if o.file.id == id {
			return true
		}
	}
	return false
}

func (t *Tailer) track(f *file) {
	t.files[f.id] = f
	t.byKey[f.key] = f
}

// resume continues the lineage of checkpoint c in nf.
func (t *Tailer) resume(nf *file, c checkpoint.File, head []byte, now time.Time) error {
	nf.id = c.ID
	nf.fp = fpOf(head)
	if c.FPLen > nf.fp.n {
		nf.fp = fingerprint{c.FPLen, c.FPHash}
	}
	nf.off = max(c.Offset, t.ended[c.ID])
	delete(t.ended, c.ID)
	if nf.off > nf.size {
		// Shorter than where we were, with the same first bytes: it was
		// truncated and rewritten while we were away. A new lineage.
		t.log.Warn("file shorter than its checkpoint: reading it again from its start",
			"path", nf.path, "offset", c.Offset, "size", nf.size)
		t.opts.Store.Remove(c.ID)
		nf.id = checkpoint.NewID()
		nf.off = 0
		nf.fp = fpOf(head)
	}
	nf.sentEnd = nf.off
	nf.proc = newLineProc(t.procCfg(t.formatOf(nf.spec)), &t.cnt)
	t.track(nf)
	t.log.Debug("resuming", "path", nf.path, "id", nf.id, "offset", nf.off, "fp", nf.fp.n, "ckfp", c.FPLen, "size", nf.size, "ino", nf.key.ino)
	return t.putStore(nf, nf.id != c.ID)
}

func (t *Tailer) formatOf(spec string) Format {
	if sp := t.specs[spec]; sp != nil {
		return sp.Format
	}
	return Plain
}

// adopt continues orphan o (a truncated lineage) in its copy nf.
func (t *Tailer) adopt(nf *file, o *orphan, head []byte) error {
	of := o.file
	nf.id, nf.proc, nf.off, nf.sentEnd = of.id, of.proc, of.off, of.sentEnd
	nf.fp = of.fp
	if fp := fpOf(head); fp.n > nf.fp.n {
		nf.fp = fp
	}
	t.track(nf)
	t.bump(func(s *Stats) { s.Adopted++ })
	t.log.Debug("continuing a truncated file in its copy", "path", nf.path, "id", nf.id, "offset", nf.off)
	return t.putStore(nf, false)
}

// putStore records f's identity; sync saves the store at once (a new
// lineage must be on disk before any of its records is in the spool).
func (t *Tailer) putStore(f *file, sync bool) error {
	t.opts.Store.Put(checkpoint.File{ID: f.id, Name: f.name, Spec: f.spec, Path: f.path,
		Dev: f.key.dev, Ino: f.key.ino, FPLen: f.fp.n, FPHash: f.fp.h})
	if sync {
		if err := t.opts.Store.Save(); err != nil {
			t.fail(err)
		}
	}
	return nil
}

// head reads a file's first bytes (the fingerprint's).
func (t *Tailer) head(fd *os.File, size int64) ([]byte, error) {
	n := min(size, int64(t.opts.FingerprintBytes))
	b := make([]byte, n)
	k, err := fd.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

func compressed(b []byte) bool {
	return bytes.HasPrefix(b, []byte{0x1f, 0x8b}) || // gzip
		bytes.HasPrefix(b, []byte("BZh")) ||
		bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) ||
		bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) // zstd
}

// lastLineEnd returns the offset after the last "\n" of the file's last
// 64 KiB, or size when there is none.
func lastLineEnd(fd *os.File, size int64) (int64, error) {
	n := min(size, 64<<10)
	b := make([]byte, n)
	k, err := fd.ReadAt(b, size-n)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	b = b[:k]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return size - n + int64(i) + 1, nil
	}
	return size, nil
}
