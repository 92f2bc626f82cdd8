package install

import (
	"errors"
	"fmt"

	"github.com/agentfleet/jkframe/archive"
)

// ErrRefused: the archive was refused (the message says which entry and
// why); nothing of it was written.
var ErrRefused = errors.New("archive refused")

// Limits bound what an archive may unpack to (jkframe/archive's; the zero
// value takes its defaults: 8 GiB, 100,000 entries, 200 times the
// archive's size past 64 MiB).
type Limits = archive.UnpackLimits

// Unpacked is what Extract wrote.
type Unpacked = archive.Unpacked

// Extract unpacks an archive of that kind into dir (created when missing)
// with jkframe/archive's Unpack, the one extractor for archives from
// outside: checked whole before anything is written, then written through
// an os.Root, entries replaced whole, undone on failure (docs/install.md).
// An error about the archive itself wraps ErrRefused.
func Extract(file string, kind Kind, dir string, lim Limits) (Unpacked, error) {
	var format archive.Format
	switch kind {
	case KindTar:
		format = archive.Tar
	case KindTarGz:
		format = archive.TarGzip
	case KindTarBz2:
		format = archive.TarBzip2
	case KindZip:
		format = archive.Zip
	default:
		return Unpacked{}, fmt.Errorf("%w: %s is not an archive", ErrKind, kind)
	}
	out, err := archive.Unpack(file, format, dir, lim)
	var ae *archive.Error
	switch {
	case errors.As(err, &ae) && ae.Entry != "":
		return Unpacked{}, fmt.Errorf("%w: entry %q: %s", ErrRefused, ae.Entry, ae.Msg)
	case errors.As(err, &ae):
		return Unpacked{}, fmt.Errorf("%w: %s", ErrRefused, ae.Msg)
	}
	return out, err
}
