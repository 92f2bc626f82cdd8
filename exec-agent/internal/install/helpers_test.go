package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/testuser"
)

// ent is an archive member for the builders below.
type ent struct {
	name string
	typ  byte // tar type flag; zip: '0' file, '5' dir, '2' symlink, others as mode bits
	body string
	mode int64
	link string
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dirEnt(name string) ent     { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

// makeTar builds a tar (gzipped when gz) from ents, written as the entries
// say, however hostile.
func makeTar(t testing.TB, ents []ent, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var gw *gzip.Writer
	tw := tar.NewWriter(&buf)
	if gz {
		gw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(gw)
	}
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if gw != nil {
		if err := gw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// makeZip builds a zip from ents (Unix modes in the external attributes).
func makeZip(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := fs.FileMode(e.mode) & fs.ModePerm
		body := e.body
		switch e.typ {
		case tar.TypeDir:
			mode |= fs.ModeDir
		case tar.TypeSymlink:
			mode |= fs.ModeSymlink
			body = e.link
		case tar.TypeChar:
			mode |= fs.ModeDevice | fs.ModeCharDevice
		case tar.TypeFifo:
			mode |= fs.ModeNamedPipe
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatalf("zip header %q: %v", e.name, err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// snapshot lists every path under root with its type and, for files and
// links, content or target: what "nothing else changed" is compared on.
func snapshot(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		s := rel + " " + info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			s += " -> " + l
		case info.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			s += " " + string(b)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// checkInside fails when a path under parent outside dir differs from the
// snapshot before, or a symlink in dir leads outside it.
func checkInside(t testing.TB, parent, dir string, before []string) {
	t.Helper()
	var outside []string
	for _, s := range snapshot(t, parent) {
		rel := strings.SplitN(s, " ", 2)[0]
		if rel == filepath.Base(dir) || strings.HasPrefix(rel, filepath.Base(dir)+string(filepath.Separator)) {
			continue
		}
		outside = append(outside, s)
	}
	var want []string
	for _, s := range before {
		rel := strings.SplitN(s, " ", 2)[0]
		if rel == filepath.Base(dir) || strings.HasPrefix(rel, filepath.Base(dir)+string(filepath.Separator)) {
			continue
		}
		want = append(want, s)
	}
	if !slices.Equal(outside, want) {
		t.Fatalf("outside the directory changed:\nbefore %q\nafter  %q", want, outside)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or a loop: leads nowhere
		}
		if real != realDir && !strings.HasPrefix(real, realDir+string(filepath.Separator)) {
			t.Fatalf("symlink %s leads out of the directory, to %s", p, real)
		}
		return nil
	})
}

// need skips when a program the test drives is missing, outside CI; in CI
// it fails (.ci/host-tools installs them).
func need(t testing.TB, prog string) { t.Helper(); testuser.Need(t, prog) }

func runCmd(t testing.TB, dir, prog string, args ...string) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", prog, args, err, out)
	}
}
