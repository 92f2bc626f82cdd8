// Package archive reads tar (plain, gzip or bzip2 compressed) and zip
// archives that come from outside — uploads, layouts, software packages —
// without trusting them.
//
// A [Reader] streams the entries: nothing is buffered beyond the
// decompressor's window and one read, so memory does not depend on the
// archive. Every entry is checked before the caller sees it, and the
// content is counted as it is read:
//
//   - Limits: the number of entries, each file's size, the total unpacked
//     size, the depth and length of names. Declared sizes over a limit are
//     refused at the entry's header; content is cut at the first byte over
//     a limit (a header may lie, a zip's declared size may too), so a small
//     archive that unpacks to gigabytes costs no more than the limit.
//   - Names are cleaned to slash-separated relative paths ("a/b"); absolute
//     names ("/etc/x", "C:\x", `\\host\x`), names that climb out ("../x",
//     "a/../../x"), NUL and control characters are refused.
//   - Symlinks must point inside the archive, judged from the link's own
//     directory (an absolute or climbing target is refused); hard links
//     must name another entry. Devices, fifos and unknown entry types are
//     refused.
//
// [Extract] writes a Reader's entries under a directory through an
// [os.Root], so nothing can be created outside it even through a symlink;
// it also refuses entries beneath a symlink of the archive, never
// overwrites a file, keeps modes as asked ([ExtractOptions]) and applies
// directory modes last.
//
// [Unpack] is the other way to write an archive out, for software
// installs: it takes an archive file, checks it whole before writing
// anything (stricter names; every symlink followed as the system will,
// through the archive's other links and those already in the directory;
// unpacked size against the archive's), then writes into a directory
// that may already hold an earlier version, replacing entries whole and
// removing what it created if writing fails.
//
// Errors wrap [ErrFormat] (unreadable or unsupported), [ErrLimit] or
// [ErrUnsafe] and are [*Error]s naming the entry; a Reader that returned
// one keeps returning it.
package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Sentinel errors, for errors.Is.
var (
	// ErrFormat: the data is not an archive this package reads, or it is
	// corrupt.
	ErrFormat = errors.New("bad archive")
	// ErrLimit: the archive is over one of the Limits.
	ErrLimit = errors.New("archive over a limit")
	// ErrUnsafe: an entry would land outside the archive's root, or is of
	// a kind that is never extracted (device, fifo, unknown type).
	ErrUnsafe = errors.New("unsafe archive entry")
)

// Error is an error about an archive, or one of its entries.
type Error struct {
	Kind  error  // ErrFormat, ErrLimit or ErrUnsafe
	Entry string // the entry's name as written in the archive; "" for the whole archive
	Msg   string
}

func (e *Error) Error() string {
	if e.Entry == "" {
		return e.Msg
	}
	return fmt.Sprintf("%q: %s", e.Entry, e.Msg)
}

func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, entry, format string, a ...any) *Error {
	return &Error{Kind: kind, Entry: entry, Msg: fmt.Sprintf(format, a...)}
}

// Format is the kind of an archive.
type Format string

// The formats Reader understands.
const (
	Tar      Format = "tar"
	TarGzip  Format = "tar.gz"
	TarBzip2 Format = "tar.bz2"
	Zip      Format = "zip"
)

// Detect tells the format from the first bytes of an archive (at least 4
// are needed; 512 let it tell plain tar from unknown data). It returns ""
// when the bytes are none of the formats.
func Detect(head []byte) Format {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return TarGzip
	case len(head) >= 4 && string(head[:3]) == "BZh" && head[3] >= '1' && head[3] <= '9':
		return TarBzip2
	case len(head) >= 4 && string(head[:2]) == "PK" &&
		(string(head[2:4]) == "\x03\x04" || string(head[2:4]) == "\x05\x06" || string(head[2:4]) == "\x07\x08"):
		return Zip
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return Tar
	case len(head) >= 512 && tarChecksumOK(head[:512]):
		return Tar // a pre-POSIX (v7) tar header
	}
	return ""
}

// tarChecksumOK reports whether b is a tar header block with a valid
// checksum (the only mark a v7 header has).
func tarChecksumOK(b []byte) bool {
	var stored int64
	field := b[148:156]
	seen := false
	for _, c := range field {
		switch {
		case c >= '0' && c <= '7':
			stored = stored*8 + int64(c-'0')
			seen = true
		case c == ' ' || c == 0:
			if seen {
				goto sum
			}
		default:
			return false
		}
	}
sum:
	if !seen {
		return false
	}
	var s int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		s += int64(c)
	}
	return s == stored
}

// Limits bound what a Reader accepts. Zero fields take the defaults.
type Limits struct {
	Entries    int   // entries of any kind; default 10,000
	FileBytes  int64 // one file's content; default 1 GiB
	TotalBytes int64 // all files' content; default 4 GiB
	Depth      int   // path elements of a name; default 32
	NameBytes  int   // a name or link target as written; default 1,024

	// strict is Unpack's reading: names must be written clean (no "..",
	// backslash or drive letter; see strictName), symlink targets are
	// left to Unpack's resolution, and sparse files are refused.
	strict bool
}

func (l *Limits) defaults() {
	if l.Entries <= 0 {
		l.Entries = 10000
	}
	if l.FileBytes <= 0 {
		l.FileBytes = 1 << 30
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = 4 << 30
	}
	if l.Depth <= 0 {
		l.Depth = 32
	}
	if l.NameBytes <= 0 {
		l.NameBytes = 1024
	}
}

// Type is the kind of an entry.
type Type uint8

// Entry types. Everything else is refused with ErrUnsafe.
const (
	TypeFile Type = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hard link"
	}
	return "unknown"
}

// Entry is one checked entry of an archive.
type Entry struct {
	// Name is the cleaned relative path, slash-separated ("a/b.conf").
	Name string
	Type Type
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky as the archive records them (no type bits).
	Mode fs.FileMode
	// Size is the content size the archive declares (files only); the
	// content read is counted, not trusted to match.
	Size int64
	// Link is a symlink's target as written (slash-separated, relative,
	// checked to stay inside) or a hard link's cleaned target entry name.
	Link    string
	ModTime time.Time
	// UID, GID, User and Group are the owner the archive records (tar
	// only; zip has none). Extract does not apply them.
	UID, GID    int
	User, Group string
}
