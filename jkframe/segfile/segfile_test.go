package segfile

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, first := range []uint64{10, 2, 300} {
		if err := os.WriteFile(Path(dir, first), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Numeric order, not the names' order; other entries left out.
	for _, name := range []string{"7.seg", AckedName, "x.seg", "1.seg.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "00000000000000000001.seg"), 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, f := range files {
		got = append(got, f.First)
		if filepath.Dir(f.Path) != dir {
			t.Errorf("path %s not in %s", f.Path, dir)
		}
	}
	if want := []uint64{2, 7, 10, 300}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if filepath.Base(files[0].Path) != "00000000000000000002.seg" {
		t.Fatalf("Path names the segment %s", filepath.Base(files[0].Path))
	}
	if _, err := List(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("List(missing) = %v", err)
	}
}

// TestRecover: the file is cut after what scan says is valid, and left
// alone when all of it is.
func TestRecover(t *testing.T) {
	path := Path(t.TempDir(), 1)
	if err := os.WriteFile(path, []byte("good|good|tor"), 0o600); err != nil {
		t.Fatal(err)
	}
	var read string
	scan := func(r *bufio.Reader) int64 {
		b, _ := io.ReadAll(r)
		read = string(b)
		return 10
	}
	if err := Recover(path, scan); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "good|good|" || read != "good|good|tor" {
		t.Fatalf("file %q after Recover, scan read %q", b, read)
	}
	if err := Recover(path, scan); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "good|good|" {
		t.Fatalf("a whole file changed: %q", b)
	}
	if err := Recover(filepath.Join(t.TempDir(), "missing"), scan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Recover(missing) = %v", err)
	}
}

func TestTrim(t *testing.T) {
	dir := t.TempDir()
	var segs []string
	for i := range uint64(4) {
		p := Path(dir, i+1)
		segs = append(segs, p)
		if i != 1 { // the second is already gone: counts as deleted
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var removed []string
	keep, err := Trim(segs, 2, func(p string) string { return p }, func(p string) { removed = append(removed, p) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keep, []string{Path(dir, 3), Path(dir, 4)}) || !slices.Equal(removed, []string{Path(dir, 1), Path(dir, 2)}) {
		t.Fatalf("kept %v, removed %v", keep, removed)
	}
	if _, err := os.Stat(Path(dir, 1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("first segment still there: %v", err)
	}
	// One that cannot be removed (a non-empty directory in its place)
	// stays, with its error.
	stuck := filepath.Join(dir, "stuck")
	if err := os.MkdirAll(filepath.Join(stuck, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	keep, err = Trim([]string{stuck, Path(dir, 3)}, 2, func(p string) string { return p }, func(string) {})
	if err == nil || !slices.Equal(keep, []string{stuck}) {
		t.Fatalf("Trim over a stuck file: kept %v, %v", keep, err)
	}
}

func TestAcked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AckedName)
	if got := ReadAcked(path); got != 0 {
		t.Fatalf("missing file reads %d", got)
	}
	b := Acked(1<<40 + 7)
	if err := os.WriteFile(path, b[:], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ReadAcked(path); got != 1<<40+7 {
		t.Fatalf("ReadAcked = %d", got)
	}
	b[3] ^= 1
	os.WriteFile(path, b[:], 0o600)
	if got := ReadAcked(path); got != 0 {
		t.Fatalf("damaged file reads %d", got)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if got := ReadAcked(path); got != 0 {
		t.Fatalf("short file reads %d", got)
	}
}
