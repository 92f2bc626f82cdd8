// Package statefile keeps an agent's own state — the id the server assigned,
// the per-agent secret, and any extra keys an agent adds (for example the
// metrics-agent's enabled jobs) — in a small JSON file next to its config.
// The operator's config file is never rewritten.
//
// The file is written atomically: a temporary file in the same directory is
// written, fsynced and renamed over the old one, and on Unix the directory is
// fsynced too, so a crash leaves either the old or the new state, never a
// mix. The file mode is 0600 because it holds a secret.
//
// One process owns a state file. Within that process a *State is safe for
// concurrent use; two processes saving the same file do not corrupt it (each
// rename is atomic) but the last one wins.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/agentfleet/jkframe/durable"
)

// Reserved top-level keys of the file, holding the typed fields.
const (
	keyID     = "id"
	keySecret = "secret"
)

// ErrReservedKey is returned by Get and Set for the keys of the typed fields.
var ErrReservedKey = errors.New("reserved key")

// State is the content of one state file.
type State struct {
	path string

	mu sync.Mutex
	// id is the agent id assigned by the server, secret the per-agent
	// secret it issued ("" when none); read and set them through Identity
	// and SetIdentity, which hold mu, so a Save in another goroutine never
	// sees them half-written.
	id, secret string
	extra      map[string]json.RawMessage
}

// Path returns the file the state is saved to.
func (s *State) Path() string { return s.path }

// Identity returns the assigned agent id and the per-agent secret.
func (s *State) Identity() (id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.secret
}

// SetIdentity sets the assigned agent id and secret; an empty argument keeps
// the stored value. It reports whether anything changed (then Save).
func (s *State) SetIdentity(id, secret string) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" && id != s.id {
		s.id, changed = id, true
	}
	if secret != "" && secret != s.secret {
		s.secret, changed = secret, true
	}
	return changed
}

// Load reads the state file at path. A missing file is an empty state that
// Save will create.
func Load(path string) (*State, error) {
	s := &State{path: path, extra: map[string]json.RawMessage{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("statefile: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("statefile %s: corrupted (%v); delete it to start with a fresh state", path, err)
	}
	for k, v := range m {
		switch k {
		case keyID, keySecret:
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return nil, fmt.Errorf("statefile %s: key %q: want a string: %v", path, k, err)
			}
			if k == keyID {
				s.id = str
			} else {
				s.secret = str
			}
		default:
			s.extra[k] = v
		}
	}
	return s, nil
}

// Get decodes the extra key into v. It reports whether the key was present.
func (s *State) Get(key string, v any) (bool, error) {
	if key == keyID || key == keySecret {
		return false, fmt.Errorf("statefile get %q: %w (use Identity/SetIdentity)", key, ErrReservedKey)
	}
	s.mu.Lock()
	raw, ok := s.extra[key]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("statefile %s: key %q: %w", s.path, key, err)
	}
	return true, nil
}

// Set stores v (encoded as JSON) under the extra key; a nil v deletes the
// key. The change is written by the next Save.
func (s *State) Set(key string, v any) error {
	if key == keyID || key == keySecret {
		return fmt.Errorf("statefile set %q: %w (use Identity/SetIdentity)", key, ErrReservedKey)
	}
	if v == nil {
		s.mu.Lock()
		delete(s.extra, key)
		s.mu.Unlock()
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("statefile set %q: %w", key, err)
	}
	s.mu.Lock()
	s.extra[key] = raw
	s.mu.Unlock()
	return nil
}

// Save writes the state atomically to its path with mode 0600.
func (s *State) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]any, len(s.extra)+2)
	for k, v := range s.extra {
		m[k] = v
	}
	if s.id != "" {
		m[keyID] = s.id
	}
	if s.secret != "" {
		m[keySecret] = s.secret
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("statefile %s: %w", s.path, err)
	}
	data = append(data, '\n')
	if err := WriteAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("statefile: %w", err)
	}
	return nil
}

// WriteAtomic replaces path with data: temp file in the same directory,
// fsync, rename, then fsync of the directory where the OS supports it.
func WriteAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil && !chmodUnsupported() {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = durable.SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync dir: %w", path, err)
	}
	return nil
}
