package install

import "github.com/agentfleet/jkframe/pkgkind"

// Kind is a package type (the seed's list). The types, their file name
// endings and magic bytes are jkframe/pkgkind's, shared with the server's
// package repository so that both sides judge a package alike.
type Kind = pkgkind.Kind

// Package kinds.
const (
	KindDeb    = pkgkind.Deb
	KindRPM    = pkgkind.RPM
	KindTar    = pkgkind.Tar
	KindTarGz  = pkgkind.TarGz
	KindTarBz2 = pkgkind.TarBz2
	KindZip    = pkgkind.Zip
	KindMSI    = pkgkind.MSI
	KindExe    = pkgkind.Exe
)

// ErrKind: the package's type is unknown, or its content is not what its
// name says.
var ErrKind = pkgkind.ErrKind

// KindOf returns the kind a file name (or a URL's path) says.
func KindOf(name string) (Kind, error) { return pkgkind.KindOf(name) }

// ParseKind checks a kind given by name ("tar.gz").
func ParseKind(s string) (Kind, error) { return pkgkind.Parse(s) }

// CheckMagic verifies that the file's first bytes are those of kind.
func CheckMagic(file string, kind Kind) error { return pkgkind.CheckFile(file, kind) }
