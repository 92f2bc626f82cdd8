package archive

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
)

// Unpack's limits (UnpackLimits' zero values).
const (
	DefaultUnpackBytes   = 8 << 30 // 8 GiB unpacked
	DefaultUnpackEntries = 100_000
	DefaultUnpackRatio   = 200
	DefaultRatioFloor    = 64 << 20
	// maxUnpackName bounds a name or a symlink target.
	maxUnpackName = 4096
	// maxHops bounds the symlinks followed when checking where one leads.
	maxHops = 40
	// tmpPrefix starts the temporary names entries are written under
	// before being renamed into place.
	tmpPrefix = ".~install-"
	// unbounded lets the Reader count without limiting: Unpack bounds the
	// declared sizes itself before writing and holds each entry to its
	// declared size while writing. Far below MaxInt64, so that the
	// Reader's arithmetic cannot overflow.
	unbounded = 1 << 62
)

// UnpackLimits bound what Unpack unpacks.
type UnpackLimits struct {
	// MaxBytes bounds the total size of the files unpacked; ≤ 0:
	// DefaultUnpackBytes.
	MaxBytes int64
	// MaxEntries bounds the entries; ≤ 0: DefaultUnpackEntries.
	MaxEntries int
	// MaxRatio bounds the unpacked size over the archive's size, checked
	// once the unpacked size passes RatioFloor; ≤ 0: DefaultUnpackRatio,
	// RatioFloor ≤ 0: DefaultRatioFloor.
	MaxRatio   int64
	RatioFloor int64
}

func (l UnpackLimits) withDefaults() UnpackLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultUnpackBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultUnpackEntries
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultUnpackRatio
	}
	if l.RatioFloor <= 0 {
		l.RatioFloor = DefaultRatioFloor
	}
	return l
}

// Unpacked is what Unpack wrote.
type Unpacked struct {
	// Files are the regular files written (and hard links), slash-separated
	// and relative to the directory, in archive order.
	Files   []string
	Entries int
	Bytes   int64
}

// Unpack unpacks the archive file, of that format, into dir (created when
// missing, and possibly holding an earlier version).
//
// The archive is checked whole before anything is written: names must be
// relative, without "..", backslash or control characters; only
// directories, regular files, symlinks whose target stays inside dir
// (following the archive's other links and the links already in dir), and
// hard links to an earlier file of the archive are accepted; no entry may
// be written through a symlink (the archive's or one already in dir); no
// duplicates except directories; the limits hold. Then it is written
// through an os.Root on dir, so no path can leave it even if the check
// missed something; each file, link and symlink is written under a
// temporary name and renamed into place, so an existing file is replaced
// whole and a symlink in its place is replaced, never followed. If writing
// fails (disk full, permissions, content that fails its checksum), what
// was created is removed; files it had already replaced are not restored.
//
// Permission bits are kept (setuid, setgid and sticky bits dropped);
// owners and times are not (files belong to the process's user). Errors
// about the archive are *Errors, as the Reader's.
func Unpack(file string, format Format, dir string, lim UnpackLimits) (Unpacked, error) {
	lim = lim.withDefaults()
	info, err := os.Stat(file)
	if err != nil {
		return Unpacked{}, err
	}
	src := unpackSource{file: file, format: format}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Unpacked{}, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Unpacked{}, err
	}
	defer root.Close()

	c := &checker{lim: lim, root: root, nodes: make(map[string]*node), packed: info.Size()}
	if err := src.walk(func(e *Entry, _ io.Reader) error { return c.add(e) }); err != nil {
		return Unpacked{}, err
	}
	if err := c.checkLinks(); err != nil {
		return Unpacked{}, err
	}
	w := &writer{root: root, c: c, lim: lim}
	if err := w.write(src); err != nil {
		w.undo()
		return Unpacked{}, err
	}
	return w.out, nil
}

// unpackSource reads the archive anew for each of Unpack's passes.
type unpackSource struct {
	file   string
	format Format
}

func (s unpackSource) walk(fn func(e *Entry, content io.Reader) error) error {
	r, err := Open(s.file, Limits{Entries: math.MaxInt, FileBytes: unbounded, TotalBytes: unbounded,
		Depth: maxUnpackName, NameBytes: maxUnpackName, strict: true})
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return errorf(ErrFormat, "", "not a valid %s archive: %s", s.format, ae.Msg)
		}
		return err
	}
	defer r.Close()
	if r.Format() != s.format {
		return errorf(ErrFormat, "", "not a valid %s archive (it reads as %s)", s.format, r.Format())
	}
	for {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := platformName(e.Name); err != nil {
			return err
		}
		if err := fn(e, r); err != nil {
			return err
		}
	}
}

func refuse(name, format string, args ...any) error {
	return errorf(ErrUnsafe, short(name), format, args...)
}

// node is what a path of dir will be once the archive is unpacked.
type node struct {
	typ      Type
	link     string // symlink target
	explicit bool   // an entry of the archive (not only a parent of one)
	existed  bool   // in dir before (as a directory: left alone)
	mode     fs.FileMode
}

type checker struct {
	lim    UnpackLimits
	root   *os.Root
	packed int64
	nodes  map[string]*node
	n      int
	total  int64
}

func (c *checker) add(e *Entry) error {
	c.n++
	if c.n > c.lim.MaxEntries {
		return errorf(ErrLimit, "", "more than %d entries", c.lim.MaxEntries)
	}
	name := e.Name
	if strings.HasPrefix(path.Base(name), tmpPrefix) {
		return refuse(name, "name starts with %q (reserved for the extractor's temporary files)", tmpPrefix)
	}
	if err := c.parents(name); err != nil {
		return err
	}
	if old := c.nodes[name]; old != nil {
		if old.typ == TypeDir && e.Type == TypeDir {
			old.explicit, old.mode = true, e.Mode.Perm()
			return nil
		}
		if old.explicit {
			return refuse(name, "duplicate entry")
		}
		return refuse(name, "is a parent directory of an earlier entry")
	}
	n := &node{typ: e.Type, explicit: true, mode: e.Mode.Perm()}
	if fi, err := c.root.Lstat(name); err == nil {
		n.existed = true
		isDir := fi.IsDir()
		switch {
		case e.Type == TypeDir && !isDir:
			return refuse(name, "exists in the directory and is not a directory")
		case e.Type != TypeDir && isDir:
			return refuse(name, "exists in the directory as a directory")
		}
	}
	switch e.Type {
	case TypeFile:
		if e.Size < 0 {
			return refuse(name, "negative size")
		}
		c.total += e.Size
		if c.total > c.lim.MaxBytes || c.total < 0 {
			return errorf(ErrLimit, short(name), "unpacks to more than %d bytes", c.lim.MaxBytes)
		}
		if c.total > c.lim.RatioFloor && c.total/c.lim.MaxRatio > c.packed {
			return errorf(ErrLimit, short(name), "unpacks to more than %d times its size of %d bytes", c.lim.MaxRatio, c.packed)
		}
	case TypeSymlink:
		n.link = e.Link
	case TypeHardlink:
		if t := c.nodes[e.Link]; t == nil || !t.explicit || t.typ != TypeFile {
			return refuse(name, "hard link to %q, which is not an earlier regular file of the archive", short(e.Link))
		}
		n.link = e.Link
	}
	c.nodes[name] = n
	return nil
}

// parents checks the directories above name: none may be a symlink (of
// the archive or already in dir) or a non-directory.
func (c *checker) parents(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		n := c.nodes[p]
		if n == nil {
			n = &node{typ: TypeDir}
			if fi, err := c.root.Lstat(p); err == nil {
				switch {
				case fi.Mode()&fs.ModeSymlink != 0:
					return refuse(name, "would be written through %q, a symlink already in the directory", p)
				case !fi.IsDir():
					return refuse(name, "%q exists in the directory and is not a directory", p)
				}
				n.existed = true
			} else if !errors.Is(err, fs.ErrNotExist) {
				return refuse(name, "%v", err)
			}
			c.nodes[p] = n
			continue
		}
		switch n.typ {
		case TypeDir:
		case TypeSymlink:
			return refuse(name, "would be written through the symlink %q of the archive", p)
		default:
			return refuse(name, "parent %q is not a directory", p)
		}
	}
	return nil
}

// checkLinks follows every symlink of the archive as the system would, once
// the archive is unpacked, and refuses one that leads out of dir.
func (c *checker) checkLinks() error {
	for name, n := range c.nodes {
		if n.typ != TypeSymlink {
			continue
		}
		if err := c.resolve(name, n.link); err != nil {
			return refuse(name, "symlink to %q: %v", short(n.link), err)
		}
	}
	return nil
}

func (c *checker) resolve(name, target string) error {
	var cur []string // resolved directories from dir, none a symlink
	if d := path.Dir(name); d != "." {
		cur = strings.Split(d, "/")
	}
	todo := strings.Split(target, "/")
	hops := 0
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return errors.New("leads out of the directory")
			}
			cur = cur[:len(cur)-1]
			continue
		}
		full := strings.Join(append(cur[:len(cur):len(cur)], p), "/")
		link, isLink, err := c.linkAt(full)
		if err != nil {
			return err
		}
		if !isLink {
			cur = append(cur, p)
			continue
		}
		if hops++; hops > maxHops {
			return errors.New("too many levels of symlinks")
		}
		if strings.HasPrefix(link, "/") || strings.ContainsRune(link, '\\') || len(link) >= 2 && link[1] == ':' {
			return fmt.Errorf("leads to the absolute path %q", short(link))
		}
		todo = append(strings.Split(link, "/"), todo...)
	}
	return nil
}

// linkAt says whether p will be a symlink (the archive's, or one already in
// dir that the archive does not replace) and its target.
func (c *checker) linkAt(p string) (string, bool, error) {
	if n := c.nodes[p]; n != nil {
		if n.explicit || !n.existed {
			return n.link, n.typ == TypeSymlink, nil
		}
	}
	fi, err := c.root.Lstat(p)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false, nil
	}
	t, err := c.root.Readlink(p)
	if err != nil {
		return "", false, err
	}
	return t, true, nil
}

// writer is the second pass: it writes what the checker accepted.
type writer struct {
	root    *os.Root
	c       *checker
	lim     UnpackLimits
	created []string // in creation order, for undo
	tmp     string   // a temporary name not yet renamed
	dirs    []string // explicit directories, whose modes are set last
	out     Unpacked
}

func (w *writer) write(src unpackSource) error {
	err := src.walk(func(e *Entry, content io.Reader) error {
		name := e.Name
		n := w.c.nodes[name]
		if n == nil || n.typ != e.Type {
			return errorf(ErrFormat, short(name), "changed between reads")
		}
		w.out.Entries++
		if err := w.mkdirs(path.Dir(name)); err != nil {
			return err
		}
		switch e.Type {
		case TypeDir:
			if err := w.mkdir(name); err != nil {
				return err
			}
			if n.explicit {
				w.dirs = append(w.dirs, name)
			}
			return nil
		case TypeFile:
			return w.file(e, n, content)
		case TypeSymlink:
			return w.place(name, n, func(tmp string) error { return w.root.Symlink(n.link, tmp) })
		case TypeHardlink:
			if err := w.place(name, n, func(tmp string) error { return w.root.Link(n.link, tmp) }); err != nil {
				return err
			}
			w.out.Files = append(w.out.Files, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Last, so that a read-only directory does not stop its own entries.
	for i := len(w.dirs) - 1; i >= 0; i-- {
		name := w.dirs[i]
		d, err := w.root.Open(name)
		if err != nil {
			return err
		}
		err = d.Chmod(w.c.nodes[name].mode)
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) mkdirs(dir string) error {
	if dir == "." {
		return nil
	}
	if err := w.mkdirs(path.Dir(dir)); err != nil {
		return err
	}
	return w.mkdir(dir)
}

func (w *writer) mkdir(name string) error {
	err := w.root.Mkdir(name, 0o755)
	switch {
	case err == nil:
		w.created = append(w.created, name)
		return nil
	case errors.Is(err, fs.ErrExist):
		fi, lerr := w.root.Lstat(name)
		if lerr == nil && fi.IsDir() {
			return nil
		}
	}
	return err
}

func (w *writer) file(e *Entry, n *node, content io.Reader) error {
	return w.place(e.Name, n, func(tmp string) error {
		f, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if w.out.Bytes+e.Size > w.lim.MaxBytes {
			return errorf(ErrLimit, short(e.Name), "unpacks to more than %d bytes", w.lim.MaxBytes)
		}
		got, err := io.Copy(f, io.LimitReader(content, e.Size+1))
		w.out.Bytes += got
		switch {
		case err != nil:
			var ae *Error
			if errors.As(err, &ae) {
				return err
			}
			return fmt.Errorf("entry %q: %w", short(e.Name), err)
		case got != e.Size:
			return errorf(ErrFormat, short(e.Name), "%d bytes, %d declared", got, e.Size)
		}
		if err := f.Chmod(e.Mode.Perm()); err != nil {
			return err
		}
		w.out.Files = append(w.out.Files, e.Name)
		return f.Close()
	})
}

// place writes an entry under a temporary name beside it, then renames it
// over name.
func (w *writer) place(name string, n *node, make func(tmp string) error) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(name), tmpPrefix+hex.EncodeToString(rnd[:]))
	w.tmp = tmp
	if err := make(tmp); err != nil {
		return err
	}
	if err := w.root.Rename(tmp, name); err != nil {
		return err
	}
	w.tmp = ""
	if !n.existed {
		w.created = append(w.created, name)
	}
	return nil
}

// undo removes what this extraction created, newest first.
func (w *writer) undo() {
	if w.tmp != "" {
		_ = w.root.Remove(w.tmp)
	}
	for i := len(w.created) - 1; i >= 0; i-- {
		_ = w.root.Remove(w.created[i])
	}
}
