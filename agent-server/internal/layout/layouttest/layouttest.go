// Package layouttest builds layout archives (tar, optionally gzipped) for
// the tests of internal/layout and the e2e suite, hostile ones included.
package layouttest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"testing"
)

// Entry is one tar entry. Body is a file's content, or the target of a
// symlink or hard link. Type is a tar type flag; 0 (or any type not below)
// is a regular file. Devices and fifos are written as such.
type Entry struct {
	Name, Body string
	Type       byte
}

// Tar returns the archive of es, gzipped when gz.
func Tar(t testing.TB, gz bool, es ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.Name, Mode: 0o644, Typeflag: e.Type}
		switch e.Type {
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.Body
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !gz {
		return buf.Bytes()
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}
