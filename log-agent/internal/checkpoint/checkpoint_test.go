package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSaveLoadAdvancePrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, err := Open(path, "p", clock)
	if err != nil || !s.Fresh() {
		t.Fatalf("%v fresh=%v", err, s.Fresh())
	}
	s.Put(File{ID: "a", Path: "/x", Dev: 1, Ino: 2, FPLen: 10, FPHash: 99})
	s.Advance("a", 100)
	s.Advance("a", 50) // never back
	s.Put(File{ID: "a", Path: "/x.1", Dev: 1, Ino: 2, FPLen: 20, FPHash: 98})
	s.Advance("gone", 10)
	s.Put(File{ID: "old", Finished: true})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, "p", clock)
	if err != nil || s2.Fresh() {
		t.Fatalf("%v fresh=%v", err, s2.Fresh())
	}
	a, ok := s2.Get("a")
	if !ok || a.Offset != 100 || a.Path != "/x.1" || a.FPLen != 20 {
		t.Fatalf("%+v", a)
	}
	now = now.Add(48 * time.Hour)
	s2.Prune(24*time.Hour, 10)
	if _, ok := s2.Get("old"); ok {
		t.Fatal("finished entry not pruned")
	}
	if _, ok := s2.Get("a"); !ok {
		t.Fatal("live entry pruned")
	}
}

func TestDamaged(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"json":    "{",
		"version": `{"version":7,"files":{}}`,
		"entry":   `{"version":1,"files":{"a":{"id":"b","offset":1}}}`,
		"offset":  `{"version":1,"files":{"a":{"id":"a","offset":-1}}}`,
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := Open(path, "p", nil); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
