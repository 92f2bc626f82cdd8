// Package pkgkind names the software package types the install feature
// handles (deb, rpm, tar, tar.gz, tar.bz2, zip, msi, exe, and raw
// executables) and recognises them: by the file name's ending, and by the
// magic bytes their content starts with. The server's package repository
// checks an upload with it and the exec-agent's installer checks what it is
// about to install with it, so the two cannot disagree.
package pkgkind

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"unicode/utf8"
)

// Kind is a package type (the seed's list, plus Bin).
type Kind string

// Package kinds.
const (
	Deb    Kind = "deb"
	RPM    Kind = "rpm"
	Tar    Kind = "tar"
	TarGz  Kind = "tar.gz"
	TarBz2 Kind = "tar.bz2"
	Zip    Kind = "zip"
	MSI    Kind = "msi"
	Exe    Kind = "exe"
	// Bin is a raw executable (ELF, PE or Mach-O) whose name ends in none
	// of the package types: an agent binary for self-update.
	Bin Kind = "bin"
)

// ErrKind: the package's type is unknown, or its content is not what its
// name says.
var ErrKind = errors.New("package type")

// HeadSize is how many leading bytes Match needs to judge any kind.
const HeadSize = 512

// IsArchive reports whether the kind is unpacked into a directory.
func (k Kind) IsArchive() bool {
	return k == Tar || k == TarGz || k == TarBz2 || k == Zip
}

// suffixes maps file name endings to kinds, longest first.
var suffixes = []struct {
	ext  string
	kind Kind
}{
	{".tar.bz2", TarBz2}, {".tar.gz", TarGz},
	{".tbz2", TarBz2}, {".tbz", TarBz2}, {".tgz", TarGz},
	{".tar", Tar}, {".zip", Zip}, {".deb", Deb}, {".rpm", RPM},
	{".msi", MSI}, {".exe", Exe},
}

// Of returns the package kind a file name (or a URL's path) ends in; ok is
// false when it ends in none of them.
func Of(name string) (k Kind, ok bool) {
	base := strings.ToLower(path.Base(strings.ReplaceAll(name, `\`, "/")))
	for _, s := range suffixes {
		if strings.HasSuffix(base, s.ext) {
			return s.kind, true
		}
	}
	return "", false
}

// KindOf returns the package kind a file name says, or an ErrKind error
// that lists the endings understood. It never returns Bin.
func KindOf(name string) (Kind, error) {
	if k, ok := Of(name); ok {
		return k, nil
	}
	base := path.Base(strings.ReplaceAll(name, `\`, "/"))
	return "", fmt.Errorf("%w: %q: want a name ending in .deb, .rpm, .tar, .tar.gz, .tgz, .tar.bz2, .zip, .msi or .exe", ErrKind, Clip(strings.ToLower(base), 128))
}

// Parse checks a package kind given by name ("tar.gz"). It never returns
// Bin.
func Parse(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(s)); k {
	case Deb, RPM, Tar, TarGz, TarBz2, Zip, MSI, Exe:
		return k, nil
	}
	return "", fmt.Errorf("%w: %q: want deb, rpm, tar, tar.gz, tar.bz2, zip, msi or exe", ErrKind, Clip(s, 64))
}

// Magic numbers.
var (
	magicDeb   = []byte("!<arch>\ndebian-binary")
	magicRPM   = []byte{0xed, 0xab, 0xee, 0xdb}
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicZip   = []byte("PK\x03\x04")
	magicZip0  = []byte("PK\x05\x06") // an empty zip: only the end record
	magicOLE   = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}
	magicMZ    = []byte("MZ")
	magicUstar = []byte("ustar")
	magicELF   = []byte("\x7fELF")
	// Mach-O, 64 and 32 bits in both byte orders, and universal binaries.
	magicMachO = [][]byte{
		{0xcf, 0xfa, 0xed, 0xfe}, {0xfe, 0xed, 0xfa, 0xcf},
		{0xce, 0xfa, 0xed, 0xfe}, {0xfe, 0xed, 0xfa, 0xce},
		{0xca, 0xfe, 0xba, 0xbe},
	}
)

// Match reports whether head, the first HeadSize bytes of a file (all of
// it when shorter), starts like a file of kind.
func Match(head []byte, kind Kind) bool {
	switch kind {
	case Deb:
		return bytes.HasPrefix(head, magicDeb)
	case RPM:
		return bytes.HasPrefix(head, magicRPM)
	case TarGz:
		return bytes.HasPrefix(head, magicGzip)
	case TarBz2:
		return bytes.HasPrefix(head, magicBzip2)
	case Zip:
		return bytes.HasPrefix(head, magicZip) || bytes.HasPrefix(head, magicZip0)
	case MSI:
		return bytes.HasPrefix(head, magicOLE)
	case Exe:
		return bytes.HasPrefix(head, magicMZ)
	case Tar:
		// ustar, pax and GNU tar; an empty archive is all zeros.
		return len(head) >= 262 && bytes.Equal(head[257:262], magicUstar) ||
			len(head) == HeadSize && bytes.Count(head, []byte{0}) == HeadSize
	case Bin:
		if bytes.HasPrefix(head, magicELF) || bytes.HasPrefix(head, magicMZ) {
			return true
		}
		for _, m := range magicMachO {
			if bytes.HasPrefix(head, m) {
				return true
			}
		}
	}
	return false
}

// Head reads the first HeadSize bytes of r (all of it when shorter).
func Head(r io.Reader) ([]byte, error) {
	head := make([]byte, HeadSize)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return head[:n], nil
}

// CheckFile verifies that the file's first bytes are those of kind.
func CheckFile(file string, kind Kind) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	head, err := Head(f)
	if err != nil {
		return err
	}
	if !Match(head, kind) {
		return fmt.Errorf("%w: the content is not a %s file", ErrKind, kind)
	}
	return nil
}

// Clip cuts s to at most n bytes (at a rune boundary) for an error
// message, marking the cut with "…".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
