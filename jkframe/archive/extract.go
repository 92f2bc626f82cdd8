package archive

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// LinkPolicy says what Extract does with symlinks and hard links.
type LinkPolicy uint8

const (
	// LinksRefuse fails the extraction at the first link (the default).
	LinksRefuse LinkPolicy = iota
	// LinksSkip leaves links out (reported to OnEntry with skipped true).
	LinksSkip
	// LinksKeep creates them: symlinks as checked by the Reader (inside
	// the archive), hard links to a regular file extracted before.
	LinksKeep
)

// ModePolicy says which modes Extract gives what it creates.
type ModePolicy uint8

const (
	// ModesPrivate: files 0600, directories 0700, whatever the archive
	// says (the default: for spooling).
	ModesPrivate ModePolicy = iota
	// ModesPerm: the archive's permission bits, without setuid, setgid and
	// sticky. Directories the archive does not list get 0755.
	ModesPerm
	// ModesAll: the archive's permission bits and setuid, setgid and
	// sticky (software installs). The process's umask does not apply.
	ModesAll
)

// ExtractOptions tune Extract. The zero value is the safest: links
// refused, private modes.
type ExtractOptions struct {
	Links LinkPolicy
	Modes ModePolicy
	// OnEntry, when set, is called after each entry is written (skipped:
	// left out by the link policy); an error stops the extraction.
	OnEntry func(e *Entry, skipped bool) error
}

// Extract writes the entries of r under dir, which should be empty (a
// fresh temporary directory): files are created, never overwritten, and a
// name that appears twice fails. Everything goes through an os.Root on
// dir, so no entry, symlink or not, can make it write outside dir; entries
// beneath a symlink of the archive are refused outright. Directory modes
// are applied once everything is written (a read-only directory would
// stop its own content). On error, dir holds what was written so far:
// remove it.
func Extract(r *Reader, dir string, o ExtractOptions) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := extractor{root: root, o: o, files: map[string]bool{}, links: map[string]bool{}}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		skipped, err := x.entry(r, e)
		if err != nil {
			return err
		}
		if o.OnEntry != nil {
			if err := o.OnEntry(e, skipped); err != nil {
				return err
			}
		}
	}
	// Deepest first, so that a read-only parent comes last.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := root.Chmod(d.name, d.mode); err != nil {
			return errorf(ErrFormat, d.name, "chmod: %v", err)
		}
	}
	return nil
}

type dirMode struct {
	name string
	mode fs.FileMode
}

type extractor struct {
	root  *os.Root
	o     ExtractOptions
	files map[string]bool // regular files written: hard link targets
	links map[string]bool // symlinks written: nothing goes beneath them
	dirs  []dirMode
}

func (x *extractor) entry(r *Reader, e *Entry) (skipped bool, err error) {
	if err := platformName(e.Name); err != nil {
		return false, err
	}
	for p := path.Dir(e.Name); p != "."; p = path.Dir(p) {
		if x.links[p] {
			return false, errorf(ErrUnsafe, e.Name, "beneath the symlink %q", p)
		}
	}
	if e.Type == TypeSymlink || e.Type == TypeHardlink {
		switch x.o.Links {
		case LinksSkip:
			return true, nil
		case LinksKeep:
		default:
			return false, errorf(ErrUnsafe, e.Name, "%s (links are refused)", e.Type)
		}
	}
	if err := x.parent(e.Name); err != nil {
		return false, err
	}
	switch e.Type {
	case TypeDir:
		err = x.root.Mkdir(e.Name, 0o700)
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := x.root.Lstat(e.Name); serr == nil && fi.IsDir() {
				err = nil // listed again, or after its content
			}
		}
		if err != nil {
			return false, errorf(ErrFormat, e.Name, "mkdir: %v", err)
		}
		x.dirs = append(x.dirs, dirMode{e.Name, x.mode(e.Mode, true)})
	case TypeFile:
		f, err := x.root.OpenFile(e.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return false, errorf(ErrUnsafe, e.Name, "appears twice in the archive (files are never overwritten)")
		}
		if err != nil {
			return false, errorf(ErrFormat, e.Name, "create: %v", err)
		}
		_, err = io.Copy(onlyWriter{f}, r)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = errorf(ErrFormat, e.Name, "write: %v", cerr)
		}
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				err = errorf(ErrFormat, e.Name, "write: %v", err)
			}
			return false, err
		}
		if m := x.mode(e.Mode, false); m != 0o600 {
			if err := x.root.Chmod(e.Name, m); err != nil {
				return false, errorf(ErrFormat, e.Name, "chmod: %v", err)
			}
		}
		x.files[e.Name] = true
	case TypeSymlink:
		if err := x.root.Symlink(e.Link, e.Name); err != nil {
			return false, errorf(ErrFormat, e.Name, "symlink: %v", err)
		}
		x.links[e.Name] = true
	case TypeHardlink:
		if !x.files[e.Link] {
			return false, errorf(ErrUnsafe, e.Name, "hard link to %q, which is not a file extracted before it", e.Link)
		}
		if err := x.root.Link(e.Link, e.Name); err != nil {
			return false, errorf(ErrFormat, e.Name, "link: %v", err)
		}
		x.files[e.Name] = true
	}
	return false, nil
}

// parent makes the directories above name that the archive did not list.
func (x *extractor) parent(name string) error {
	d := path.Dir(name)
	if d == "." {
		return nil
	}
	perm := fs.FileMode(0o755)
	if x.o.Modes == ModesPrivate {
		perm = 0o700
	}
	if err := x.root.MkdirAll(d, perm); err != nil {
		return errorf(ErrFormat, name, "mkdir: %v", err)
	}
	return nil
}

// mode is what an entry of mode m gets under the policy.
func (x *extractor) mode(m fs.FileMode, dir bool) fs.FileMode {
	switch x.o.Modes {
	case ModesPerm:
		return m.Perm()
	case ModesAll:
		return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	}
	if dir {
		return 0o700
	}
	return 0o600
}

// onlyWriter hides *os.File's ReadFrom, whose fallback would read the
// archive through a second, smaller buffer.
type onlyWriter struct{ io.Writer }

// reservedWindows are device names Windows resolves in any directory.
var reservedWindows = map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true}

// windowsName refuses names Windows would not store as written: a colon
// (an alternate data stream), a device name, or an element ending in a dot
// or a space.
func windowsName(name string) error {
	for el := range strings.SplitSeq(name, "/") {
		base, _, _ := strings.Cut(el, ".")
		switch {
		case strings.ContainsAny(el, `:*?"<>|`):
			return errorf(ErrUnsafe, name, "a character Windows does not allow in a name")
		case reservedWindows[strings.ToUpper(strings.TrimRight(base, " "))]:
			return errorf(ErrUnsafe, name, "a Windows device name")
		case strings.HasSuffix(el, ".") || strings.HasSuffix(el, " "):
			return errorf(ErrUnsafe, name, "a name ending in a dot or a space")
		}
	}
	return nil
}
