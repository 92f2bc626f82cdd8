// Package segfile holds what the append-only logs of the agents share on
// disk (libagent's journal, log-agent's spool): a directory of segment
// files, each named after the sequence number of its first record
// (%020d.seg), and a small "acked" file holding the highest acknowledged
// sequence number. The record format is the owner's; this package finds
// the segments, cuts a torn tail off one, deletes the wholly acknowledged
// ones, and reads and writes the acked position.
package segfile

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Suffix ends every segment file's name.
const Suffix = ".seg"

// AckedName is the file holding the acknowledged position.
const AckedName = "acked"

// AckedSize is the acked file's size: the position (uint64 little endian)
// and its CRC-32C (uint32 little endian).
const AckedSize = 12

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Path is the file of the segment of dir whose first record is first.
func Path(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", first, Suffix))
}

// File is a segment file found by List.
type File struct {
	First uint64 // the sequence number its name says
	Path  string
}

// List returns the segment files of dir in sequence order. Other entries
// (the acked file, temporary files, a name that is not a number) are left
// out.
func List(dir string) ([]File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, Suffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, Suffix), 10, 64)
		if err != nil {
			continue
		}
		files = append(files, File{First: first, Path: filepath.Join(dir, name)})
	}
	slices.SortFunc(files, func(a, b File) int { return cmp.Compare(a.First, b.First) })
	return files, nil
}

// Recover opens the segment file at path, lets scan read it from the
// start and say how many bytes of whole, valid records lead it, and cuts
// the file there, durably, when anything follows (a record torn by a
// crash, or damaged): only whole records stay.
func Recover(path string, scan func(r *bufio.Reader) (valid int64)) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	valid := scan(bufio.NewReaderSize(f, 64<<10))
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == valid {
		return nil
	}
	if err := f.Truncate(valid); err != nil {
		return fmt.Errorf("cut torn record of %s: %w", path, err)
	}
	return f.Sync()
}

// Trim deletes the files of the first n segments of segs (path gives a
// segment's file) and returns segs without them, calling removed for each
// one deleted. A file that cannot be deleted (on Windows, one still open
// by a reader) stays in the list, its error joined into the one returned:
// the next Trim deletes it. A file already gone counts as deleted.
func Trim[S any](segs []S, n int, path func(S) string, removed func(S)) ([]S, error) {
	var errs []error
	keep := segs[:0]
	for i, seg := range segs {
		if i >= n {
			keep = append(keep, seg)
			continue
		}
		if err := os.Remove(path(seg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			keep = append(keep, seg)
			continue
		}
		removed(seg)
	}
	clear(segs[len(keep):])
	return keep, errors.Join(errs...)
}

// Acked is the content of the acked file for position seq.
func Acked(seq uint64) [AckedSize]byte {
	var b [AckedSize]byte
	binary.LittleEndian.PutUint64(b[:8], seq)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	return b
}

// ReadAcked returns the position stored in the acked file at path. A
// missing or damaged file reads as 0: more is delivered again, which the
// receiving end drops as duplicates.
func ReadAcked(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != AckedSize {
		return 0
	}
	if crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return 0
	}
	return binary.LittleEndian.Uint64(b[:8])
}
