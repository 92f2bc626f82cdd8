package server

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// secretFlushInterval bounds how long a new secret waits in memory.
const secretFlushInterval = 100 * time.Millisecond

// secretHashes is the part of the store the secretStore reads and writes.
type secretHashes interface {
	SecretHash(ctx context.Context, agentID string) ([]byte, error)
	SetSecretHashes(ctx context.Context, hashes map[string][]byte) error
}

// secretStore is the hub's SecretStore: it takes the write of a newly
// issued secret off the handshake path. SetSecretHash only records the hash
// in memory; run writes what was recorded in one transaction shortly after
// (interval) and once more when it stops. Until a hash is written,
// SecretHash answers from memory, so the agent's next handshake already
// sees it.
//
// Losing the recorded hashes in a crash is safe: an agent whose secret was
// never stored is, at its next handshake, an agent without a stored secret.
// The hub then lets it enrol again like a new agent (enrollment token,
// auth.v1) and issues it a new secret, which the agent keeps in place of
// the lost one.
//
// A write that fails is retried at the next flush; the pending hashes are
// bounded by the number of agents. Safe for concurrent use; one goroutine
// runs run.
type secretStore struct {
	st       secretHashes
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string][]byte // not yet written; a nil hash forgets the secret
	wake    chan struct{}
}

func newSecretStore(st secretHashes, log *slog.Logger, interval time.Duration) *secretStore {
	return &secretStore{st: st, log: log, interval: interval,
		pending: map[string][]byte{}, wake: make(chan struct{}, 1)}
}

// SecretHash implements hub.SecretStore.
func (s *secretStore) SecretHash(ctx context.Context, agentID string) ([]byte, error) {
	s.mu.Lock()
	h, ok := s.pending[agentID]
	s.mu.Unlock()
	if ok {
		return h, nil
	}
	return s.st.SecretHash(ctx, agentID)
}

// SetSecretHash implements hub.SecretStore; the hash is written by run.
func (s *secretStore) SetSecretHash(_ context.Context, agentID string, hash []byte) error {
	if hash != nil {
		hash = bytes.Clone(hash)
	}
	s.mu.Lock()
	s.pending[agentID] = hash
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// run writes recorded hashes interval after the first of them arrives,
// until ctx is done; then it writes what is left and returns.
func (s *secretStore) run(ctx context.Context) {
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.flush()
			return
		}
		t := time.NewTimer(s.interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		s.flush()
	}
}

// flush writes the pending hashes in one transaction and forgets those
// that did not change meanwhile. It reports whether the write succeeded.
func (s *secretStore) flush() bool {
	s.mu.Lock()
	batch := maps.Clone(s.pending)
	s.mu.Unlock()
	if len(batch) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.st.SetSecretHashes(ctx, batch); err != nil {
		s.log.Error("store agent secrets (retried at the next flush)", "agents", len(batch), "err", err)
		return false
	}
	s.mu.Lock()
	for id, h := range batch {
		if cur, ok := s.pending[id]; ok && (cur == nil) == (h == nil) && bytes.Equal(cur, h) {
			delete(s.pending, id)
		}
	}
	s.mu.Unlock()
	return true
}
