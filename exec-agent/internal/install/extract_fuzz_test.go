package install

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// fuzzExtract unpacks data and checks the invariant: nothing outside dir
// changes, no symlink in dir leads out of it, and a refused archive leaves
// dir empty.
func fuzzExtract(t *testing.T, kind Kind, data []byte) {
	// A stuck input is a failure too; the stacks say where it hangs.
	stuck := time.AfterFunc(fuzzStuck, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("still running after %v:\n%s", fuzzStuck, buf[:runtime.Stack(buf, true)]))
	})
	t.Cleanup(func() { stuck.Stop() })
	file := writeFile(t, t.TempDir(), "archive", data)
	parent := t.TempDir()
	dir := filepath.Join(parent, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, parent, "outside", []byte("precious"))
	before := snapshot(t, parent)
	_, err := Extract(file, kind, dir, Limits{MaxBytes: 1 << 20, MaxEntries: 1000})
	// Directories may be read-only (their modes are kept): let the checks
	// and the cleanup in.
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	checkInside(t, parent, dir, before)
	if err != nil {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Fatalf("refused (%v) but left %d entries in dir", err, len(ents))
		}
	}
}

// fuzzStuck is far beyond what an archive of the fuzzer's sizes takes, even
// on a loaded machine.
const fuzzStuck = time.Minute

func FuzzExtractTar(f *testing.F) {
	f.Add(makeTar(f, []ent{dirEnt("a/"), file("a/b", "hello"), symlink("l", "a/b"), hardlink("h", "a/b")}, false))
	for _, h := range hostileCases() {
		if !h.zip && !h.gz && h.prepare == nil {
			_, data := h.archive(f)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, KindTar, data) })
}

func FuzzExtractZip(f *testing.F) {
	f.Add(makeZip(f, []ent{dirEnt("a/"), file("a/b", "hello"), symlink("l", "a/b")}))
	for _, h := range hostileCases() {
		if h.zip && h.prepare == nil {
			_, data := h.archive(f)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, KindZip, data) })
}
