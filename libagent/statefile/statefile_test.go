package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadMissingThenRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.state")
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if id, sec := s.Identity(); id != "" || sec != "" {
		t.Fatalf("missing file: got %+v, want empty", s)
	}
	if ok, err := s.Get("jobs", new([]string)); ok || err != nil {
		t.Fatalf("Get on empty: %v %v", ok, err)
	}
	s.SetIdentity("host-1", "s3cr3t")
	if err := s.Set("jobs", []string{"usage", "conns"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("gone", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("gone", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	s2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if id, sec := s2.Identity(); id != "host-1" || sec != "s3cr3t" {
		t.Fatalf("reloaded %q %q", id, sec)
	}
	var jobs []string
	if ok, err := s2.Get("jobs", &jobs); !ok || err != nil || strings.Join(jobs, ",") != "usage,conns" {
		t.Fatalf("jobs: %v %v %v", ok, err, jobs)
	}
	if ok, _ := s2.Get("gone", new(int)); ok {
		t.Fatal("deleted key came back")
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("dir holds %d entries, want only the state file", len(ents))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"truncated", `{"id":"a"`, "corrupted (unexpected end of JSON input); delete it to start with a fresh state"},
		{"not an object", `[1,2]`, "corrupted (json: cannot unmarshal array"},
		{"id not string", `{"id":5}`, `key "id": want a string`},
		{"secret not string", `{"secret":true}`, `key "secret": want a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".state")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s and containing %q", err, path, tc.want)
			}
		})
	}
	empty := filepath.Join(dir, "empty.state")
	os.WriteFile(empty, []byte("  \n"), 0o600)
	if s, err := Load(empty); err != nil || func() string { id, _ := s.Identity(); return id }() != "" {
		t.Fatalf("empty file: %v %v", s, err)
	}
}

func TestReservedAndBadValues(t *testing.T) {
	s, _ := Load(filepath.Join(t.TempDir(), "x.state"))
	if err := s.Set("id", "x"); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("Set id: %v", err)
	}
	if _, err := s.Get("secret", new(string)); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("Get secret: %v", err)
	}
	if err := s.Set("ch", make(chan int)); err == nil {
		t.Fatal("Set of an unencodable value succeeded")
	}
	s.Set("n", "text")
	if ok, err := s.Get("n", new(int)); !ok || err == nil {
		t.Fatalf("Get into wrong type: %v %v", ok, err)
	}
}

func TestSaveFailsInMissingDir(t *testing.T) {
	s, _ := Load(filepath.Join(t.TempDir(), "no", "such", "dir", "x.state"))
	if err := s.Save(); err == nil || !strings.Contains(err.Error(), "x.state") {
		t.Fatalf("got %v", err)
	}
}

func TestConcurrentSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.state")
	s, _ := Load(path)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if err := s.Set(fmt.Sprintf("k%d", i), j); err != nil {
					t.Error(err)
				}
				if err := s.Save(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]int
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("file after concurrent saves is not valid JSON: %v", err)
	}
	for i := range 8 {
		if m[fmt.Sprintf("k%d", i)] != 9 {
			t.Fatalf("k%d = %d, want 9", i, m[fmt.Sprintf("k%d", i)])
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("%d entries left in dir", len(ents))
	}
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{`{"id":"a","secret":"b","jobs":["x"]}`, `{"id":"a"`, `[1,2]`, `{"id":5}`, ``} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.state")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Load(path)
		if err != nil {
			return
		}
		if err := s.Save(); err != nil {
			t.Fatal(err)
		}
		s2, err := Load(path)
		if err != nil {
			t.Fatalf("reload of saved state: %v", err)
		}
		if id2, sec2 := s2.Identity(); func() bool { id, sec := s.Identity(); return id2 != id || sec2 != sec }() {
			t.Fatalf("round trip changed id/secret")
		}
	})
}
