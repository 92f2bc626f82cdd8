// Package pkgtest builds small .deb and .rpm packages for tests, with nfpm
// as a library (the version the release uses), so that the install tests
// drive the real dpkg and rpm with real packages. The install engine's
// tests use it directly; end-to-end tests of other modules run it as the
// mkpkg command.
package pkgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Spec is a package of one file.
type Spec struct {
	Name, Version string
	// Dst is the installed file's absolute path, Body its content (0644).
	Dst, Body string
	// PostInst is a postinstall script ("" for none).
	PostInst string
}

// Build makes the package in format "deb" or "rpm" and returns its bytes.
func Build(format string, s Spec) ([]byte, error) {
	if s.Name == "" || s.Version == "" || !filepath.IsAbs(s.Dst) {
		return nil, errors.New("pkgtest: name, version and an absolute dst are required")
	}
	tmp, err := os.MkdirTemp("", "pkgtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "content")
	if err := os.WriteFile(src, []byte(s.Body), 0o644); err != nil {
		return nil, err
	}
	info := &nfpm.Info{
		Name: s.Name, Arch: "all", Platform: "linux", Version: s.Version,
		Maintainer: "agentfleet tests <tests@example.com>", Description: "install test package",
		MTime: time.Unix(1700000000, 0),
		Overridables: nfpm.Overridables{
			Contents: files.Contents{{Source: src, Destination: s.Dst, FileInfo: &files.ContentFileInfo{Mode: 0o644}}},
		},
	}
	if s.PostInst != "" {
		script := filepath.Join(tmp, "postinst.sh")
		if err := os.WriteFile(script, []byte(s.PostInst), 0o755); err != nil {
			return nil, err
		}
		info.Scripts.PostInstall = script
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return nil, fmt.Errorf("nfpm %s: %w", format, err)
	}
	pk, err := nfpm.Get(format)
	if err != nil {
		return nil, fmt.Errorf("nfpm %s: %w", format, err)
	}
	var buf bytes.Buffer
	if err := pk.Package(info, &buf); err != nil {
		return nil, fmt.Errorf("nfpm %s: %w", format, err)
	}
	return buf.Bytes(), nil
}
