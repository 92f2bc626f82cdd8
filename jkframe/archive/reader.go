package archive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
)

// Reader reads the entries of an archive in order, checked (package doc).
// Next returns each entry; Read reads the current file's content. A
// Reader is not safe for concurrent use.
type Reader struct {
	lim    Limits
	format Format
	closer []io.Closer // closed by Close, last first

	tr *tar.Reader

	zr  *zip.Reader
	zi  int           // next zip entry
	zrc io.ReadCloser // open zip entry

	cur      io.Reader // content of the current file entry; nil when none
	curName  string    // its name as written
	left     int64     // content it may still give
	leftFile bool      // left is bounded by FileBytes (else by TotalBytes)
	entries  int
	total    int64
	err      error // sticky: io.EOF or an *Error
}

// NewReader reads a tar, tar.gz or tar.bz2 stream (told apart by its first
// bytes). A zip needs random access: use NewReaderAt or Open.
func NewReader(r io.Reader, lim Limits) (*Reader, error) {
	lim.defaults()
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(512)
	ar := &Reader{lim: lim, format: Detect(head)}
	switch ar.format {
	case TarGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, errorf(ErrFormat, "", "not a gzip stream: %v", err)
		}
		ar.closer = append(ar.closer, zr)
		ar.tr = tar.NewReader(zr)
	case TarBzip2:
		ar.tr = tar.NewReader(bzip2.NewReader(br))
	case Tar:
		ar.tr = tar.NewReader(br)
	case Zip:
		return nil, errorf(ErrFormat, "", "a zip archive needs random access (archive.NewReaderAt or archive.Open)")
	default:
		if len(head) == 0 {
			return nil, errorf(ErrFormat, "", "empty archive")
		}
		return nil, errorf(ErrFormat, "", "not a tar, tar.gz, tar.bz2 or zip archive")
	}
	return ar, nil
}

// NewReaderAt reads an archive of size bytes from ra: a zip, or a tar of
// any compression (streamed as NewReader does).
func NewReaderAt(ra io.ReaderAt, size int64, lim Limits) (*Reader, error) {
	lim.defaults()
	head := make([]byte, min(size, 512))
	if n, err := ra.ReadAt(head, 0); n < len(head) {
		return nil, errorf(ErrFormat, "", "read: %v", err)
	}
	if Detect(head) != Zip {
		// 64 KiB reads of a file (a multi-GB software package is read
		// twice by Unpack); NewReader keeps a buffer that large.
		return NewReader(bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 64<<10), lim)
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		// ErrInsecurePath (GODEBUG zipinsecurepath=0) is no reason to stop:
		// every name is checked here anyway.
		return nil, errorf(ErrFormat, "", "not a zip archive: %v", err)
	}
	if len(zr.File) > lim.Entries {
		return nil, errorf(ErrLimit, "", "more than %d entries", lim.Entries)
	}
	return &Reader{lim: lim, format: Zip, zr: zr}, nil
}

// Open opens the archive file at path (any format); Close closes it.
func Open(path string, lim Limits) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReaderAt(f, fi.Size(), lim)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = append([]io.Closer{f}, r.closer...)
	return r, nil
}

// Format is the archive's format.
func (r *Reader) Format() Format { return r.format }

// Next advances to the next entry and returns it; io.EOF after the last.
// The root entry ("./") is skipped; pax global headers too. Both count as
// entries.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
		r.endEntry()
		return nil, err
	}
	return e, nil
}

func (r *Reader) next() (*Entry, error) {
	r.endEntry()
	for {
		var e *Entry
		var err error
		if r.zr != nil {
			if r.zi >= len(r.zr.File) {
				return nil, io.EOF
			}
			f := r.zr.File[r.zi]
			r.zi++
			if err := r.count(); err != nil {
				return nil, err
			}
			e, err = r.zipEntry(f)
		} else {
			h, herr := r.tr.Next()
			if herr == io.EOF {
				if r.entries == 0 {
					return nil, errorf(ErrFormat, "", "empty archive")
				}
				return nil, io.EOF
			}
			if herr != nil && !(errors.Is(herr, tar.ErrInsecurePath) && h != nil) {
				if r.entries == 0 {
					return nil, errorf(ErrFormat, "", "not a %s archive: %v", r.format, herr)
				}
				return nil, errorf(ErrFormat, "", "corrupt %s archive after %d entries: %v", r.format, r.entries, herr)
			}
			if err := r.count(); err != nil {
				return nil, err
			}
			if h.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
			e, err = r.tarEntry(h)
		}
		if err != nil {
			return nil, err
		}
		if e.Name == "." {
			if e.Type == TypeDir {
				continue
			}
			return nil, errorf(ErrUnsafe, ".", "a %s that names the target directory itself", e.Type)
		}
		return e, nil
	}
}

func (r *Reader) count() error {
	r.entries++
	if r.entries > r.lim.Entries {
		return errorf(ErrLimit, "", "more than %d entries", r.lim.Entries)
	}
	return nil
}

// mode keeps the permission and setuid/setgid/sticky bits of unix mode m.
func mode(m int64) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

func (r *Reader) tarEntry(h *tar.Header) (*Entry, error) {
	name, err := cleanName(h.Name, &r.lim)
	if err != nil {
		return nil, err
	}
	e := &Entry{Name: name, Mode: mode(h.Mode), ModTime: h.ModTime, UID: h.Uid, GID: h.Gid, User: h.Uname, Group: h.Gname}
	if h.Typeflag == tar.TypeGNUSparse && r.lim.strict {
		return nil, errorf(ErrUnsafe, h.Name, "sparse file")
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // the reader turns TypeRegA into TypeReg
		e.Type, e.Size = TypeFile, h.Size
		return e, r.startFile(h.Name, h.Size, r.tr)
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type = TypeSymlink
		if e.Link, err = checkLink(name, h.Linkname, &r.lim); err != nil {
			return nil, err
		}
	case tar.TypeLink:
		e.Type = TypeHardlink
		target, err := cleanName(h.Linkname, &r.lim)
		if err != nil {
			var ae *Error
			errors.As(err, &ae)
			return nil, errorf(ErrUnsafe, h.Name, "hard link to %q: %s", short(h.Linkname), ae.Msg)
		}
		if target == "." || target == name {
			return nil, errorf(ErrUnsafe, h.Name, "hard link to %q", h.Linkname)
		}
		e.Link = target
	case tar.TypeChar, tar.TypeBlock:
		return nil, errorf(ErrUnsafe, h.Name, "device file")
	case tar.TypeFifo:
		return nil, errorf(ErrUnsafe, h.Name, "named pipe")
	default:
		return nil, errorf(ErrUnsafe, h.Name, "unsupported entry type %q", h.Typeflag)
	}
	return e, nil
}

func (r *Reader) zipEntry(f *zip.File) (*Entry, error) {
	name, err := cleanName(f.Name, &r.lim)
	if err != nil {
		return nil, err
	}
	if f.Flags&0x1 != 0 {
		return nil, errorf(ErrFormat, f.Name, "encrypted entry")
	}
	m := f.Mode()
	e := &Entry{Name: name, Mode: m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), ModTime: f.Modified}
	switch {
	case m&fs.ModeSymlink != 0:
		e.Type = TypeSymlink
		rc, err := f.Open()
		if err != nil {
			return nil, errorf(ErrFormat, f.Name, "%v", err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, int64(r.lim.NameBytes)+1))
		rc.Close()
		if err != nil {
			return nil, errorf(ErrFormat, f.Name, "%v", err)
		}
		if e.Link, err = checkLink(name, string(b), &r.lim); err != nil {
			return nil, err
		}
	case m.IsDir():
		e.Type = TypeDir
	case m&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		return nil, errorf(ErrUnsafe, f.Name, "device file")
	case m&fs.ModeNamedPipe != 0:
		return nil, errorf(ErrUnsafe, f.Name, "named pipe")
	case m.Type() != 0:
		return nil, errorf(ErrUnsafe, f.Name, "entry mode %v", m)
	default:
		e.Type = TypeFile
		if f.UncompressedSize64 > math.MaxInt64 {
			return nil, errorf(ErrLimit, f.Name, "declares %d bytes, over the %d-byte file limit", f.UncompressedSize64, r.lim.FileBytes)
		}
		e.Size = int64(f.UncompressedSize64)
		if err := r.startFile(f.Name, e.Size, nil); err != nil {
			return nil, err
		}
		rc, err := f.Open()
		if err != nil {
			return nil, errorf(ErrFormat, f.Name, "%v", err)
		}
		r.zrc, r.cur = rc, rc
	}
	return e, nil
}

// startFile checks a file's declared size and makes src its content,
// bounded by what the limits still allow.
func (r *Reader) startFile(raw string, declared int64, src io.Reader) error {
	if declared > r.lim.FileBytes {
		return errorf(ErrLimit, raw, "declares %d bytes, over the %d-byte file limit", declared, r.lim.FileBytes)
	}
	if declared > r.lim.TotalBytes-r.total {
		return errorf(ErrLimit, raw, "the archive unpacks to over %d bytes", r.lim.TotalBytes)
	}
	r.cur, r.curName = src, raw
	r.left, r.leftFile = r.lim.FileBytes, true
	if rest := r.lim.TotalBytes - r.total; rest < r.left {
		r.left, r.leftFile = rest, false
	}
	return nil
}

// endEntry drops the current entry's content.
func (r *Reader) endEntry() {
	if r.zrc != nil {
		r.zrc.Close()
		r.zrc = nil
	}
	r.cur = nil
}

// Read reads the current file's content; io.EOF at its end, at once for
// other entry types. The first byte over a limit ends the content with an
// ErrLimit error, which the Reader keeps returning.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil && r.err != io.EOF {
		return 0, r.err
	}
	if r.cur == nil {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left+1 {
		p = p[:r.left+1] // one byte more tells an entry over the limit
	}
	n, err := r.cur.Read(p)
	if int64(n) > r.left {
		n = int(r.left)
		r.total += r.left
		r.left = 0
		if r.leftFile {
			r.err = errorf(ErrLimit, r.curName, "over the %d-byte file limit", r.lim.FileBytes)
		} else {
			r.err = errorf(ErrLimit, r.curName, "the archive unpacks to over %d bytes", r.lim.TotalBytes)
		}
		r.endEntry()
		return n, r.err
	}
	r.left -= int64(n)
	r.total += int64(n)
	switch {
	case err == nil || err == io.EOF:
		return n, err
	default:
		r.err = errorf(ErrFormat, r.curName, "corrupt content: %v", err)
		r.endEntry()
		return n, r.err
	}
}

// Unpacked is the content read so far, all entries together.
func (r *Reader) Unpacked() int64 { return r.total }

// Close releases the decompressor and the file Open opened.
func (r *Reader) Close() error {
	r.endEntry()
	var errs []error
	for i := len(r.closer) - 1; i >= 0; i-- {
		if err := r.closer[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	r.closer = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive close: %w", err)
	}
	return nil
}
