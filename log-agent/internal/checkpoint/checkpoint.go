// Package checkpoint keeps, per project, where log-agent is in every file
// it follows: the file's identity (device, inode and a fingerprint of its
// first bytes) and the offset up to which its lines are in the spool (or
// were dropped by the exclude rule). The state is one JSON file written
// atomically (temporary file, fsync, rename, fsync of the directory).
//
// # Identity
//
// A file is the same file when its device and inode are and the
// fingerprint — the length and the 64-bit FNV-1a hash of its first bytes
// (up to a configured size, 1 KiB by default) — still matches. The
// fingerprint catches an inode reused by a new file after the old one was
// deleted, and it recognises a copy (logrotate's copytruncate) as the
// continuation of the file it was copied from.
//
// Every lineage of bytes gets an id of its own (16 hex digits, random):
// the records' source id. A file truncated in place (copytruncate) starts
// a new id, so offsets under one id only ever grow.
//
// A *Store is safe for concurrent use.
package checkpoint

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/agentfleet/libagent/statefile"
)

// Version of the file format.
const Version = 1

// File is the checkpoint of one lineage.
type File struct {
	ID     string `json:"id"`
	Name   string `json:"name"`           // source name (path, container, pod/container)
	Spec   string `json:"spec,omitempty"` // the tailer spec that found it
	Path   string `json:"path"`           // where it was last seen
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	FPLen  int    `json:"fp_len"`
	FPHash uint64 `json:"fp_hash"`
	// Offset: every byte before it is in the spool or was excluded.
	Offset int64 `json:"offset"`
	// Finished: the file was read to its end and closed (deleted,
	// rotated away or its container stopped); kept to recognise it.
	Finished bool  `json:"finished,omitempty"`
	Updated  int64 `json:"updated"` // Unix seconds
}

type state struct {
	Version int              `json:"version"`
	Project string           `json:"project"`
	Started int64            `json:"started"` // Unix seconds of the project's first start
	Files   map[string]*File `json:"files"`
}

// Store is the checkpoint file of one project.
type Store struct {
	path string
	now  func() time.Time

	saveMu sync.Mutex // one Save at a time, in order
	mu     sync.Mutex
	st     state
	fresh  bool // no file yet: Save writes one even unchanged
	isNew  bool // there was no file when opened
	dirty  bool
	gen    uint64 // bumped on every change
}

// Open loads the checkpoint file at path (missing: a fresh project started
// now). A damaged file is an error: the operator decides (deleting it
// restarts collection per read_from).
func Open(path, project string, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{path: path, now: now}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.fresh, s.isNew = true, true
		s.st = state{Version: Version, Project: project, Started: now().Unix(), Files: map[string]*File{}}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &s.st); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if s.st.Version != Version {
		return nil, fmt.Errorf("checkpoint %s: version %d, want %d", path, s.st.Version, Version)
	}
	if s.st.Files == nil {
		s.st.Files = map[string]*File{}
	}
	for id, f := range s.st.Files {
		if f == nil || f.ID != id || f.Offset < 0 {
			return nil, fmt.Errorf("checkpoint %s: bad entry %q", path, id)
		}
	}
	return s, nil
}

// Fresh reports whether the project had no checkpoint file when opened.
func (s *Store) Fresh() bool { return s.isNew }

// NewID returns a new random lineage id.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Get returns a copy of the entry of id.
func (s *Store) Get(id string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.st.Files[id]
	if !ok {
		return File{}, false
	}
	return *f, true
}

// All returns copies of every entry, by id.
func (s *Store) All() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.st.Files))
	for _, f := range s.st.Files {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Put stores f's identity fields (not its offset, which only Advance and
// Reset move) and creates the entry when it is new.
func (s *Store) Put(f File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Updated = s.now().Unix()
	if old, ok := s.st.Files[f.ID]; ok {
		f.Offset = old.Offset
	}
	s.st.Files[f.ID] = &f
	s.dirty = true
	s.gen++
}

// Advance moves the offset of id forward to end (never back). Unknown ids
// are ignored: the entry was forgotten.
func (s *Store) Advance(id string, end int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.st.Files[id]; ok && end > f.Offset {
		f.Offset = end
		s.dirty = true
		s.gen++
	}
}

// Remove forgets id.
func (s *Store) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Files[id]; ok {
		delete(s.st.Files, id)
		s.dirty = true
		s.gen++
	}
}

// Prune forgets finished entries not updated for keep, and the oldest
// finished entries beyond max.
func (s *Store) Prune(keep time.Duration, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := s.now().Add(-keep).Unix()
	var fin []*File
	for id, f := range s.st.Files {
		if !f.Finished {
			continue
		}
		if f.Updated < cut {
			delete(s.st.Files, id)
			s.dirty = true
			continue
		}
		fin = append(fin, f)
	}
	if len(fin) > max {
		sort.Slice(fin, func(i, j int) bool { return fin[i].Updated < fin[j].Updated })
		for _, f := range fin[:len(fin)-max] {
			delete(s.st.Files, f.ID)
		}
		s.dirty = true
	}
}

// Started is when the project first ran on this node.
func (s *Store) Started() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Unix(s.st.Started, 0)
}

// Dirty reports whether there are changes not saved.
func (s *Store) Dirty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirty
}

// Save writes the state when it changed since the last Save.
func (s *Store) Save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if !s.dirty && !s.fresh {
		s.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(&s.st)
	gen := s.gen
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := statefile.WriteAtomic(s.path, b, 0o600); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	s.mu.Lock()
	s.fresh = false
	if s.gen == gen {
		s.dirty = false
	}
	s.mu.Unlock()
	return nil
}
