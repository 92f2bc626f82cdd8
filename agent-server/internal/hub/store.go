package hub

import (
	"context"
	"crypto/sha256"
	"sync"
)

// SecretStore keeps the hash of each agent's secret (auth.v1). The hub
// stores SHA-256 of the secret (32 random bytes, so a slow hash adds
// nothing) and compares in constant time.
type SecretStore interface {
	// SecretHash returns the stored hash for the agent, or nil (and no
	// error) when it has none.
	SecretHash(ctx context.Context, agentID string) ([]byte, error)
	// SetSecretHash stores hash for the agent, replacing any earlier one.
	SetSecretHash(ctx context.Context, agentID string, hash []byte) error
}

// AckStore keeps, per (agent, journal), the highest sequence number the
// server has stored (ack.v1). The hub writes it before sending the ack.
type AckStore interface {
	// JournalAck returns the high-water mark, 0 for an unknown journal.
	JournalAck(ctx context.Context, agentID, journal string) (uint64, error)
	// SetJournalAck records seq as the high-water mark.
	SetJournalAck(ctx context.Context, agentID, journal string, seq uint64) error
}

// hashSecret is the stored form of an agent secret.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// MemStore is an in-memory SecretStore and AckStore, for tests and the load
// tool. Safe for concurrent use.
type MemStore struct {
	mu      sync.Mutex
	secrets map[string][]byte
	acks    map[[2]string]uint64
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{secrets: map[string][]byte{}, acks: map[[2]string]uint64{}}
}

// SecretHash implements SecretStore.
func (m *MemStore) SecretHash(_ context.Context, agentID string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.secrets[agentID], nil
}

// SetSecretHash implements SecretStore.
func (m *MemStore) SetSecretHash(_ context.Context, agentID string, hash []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[agentID] = append([]byte(nil), hash...)
	return nil
}

// ResetSecret forgets the agent's secret (what an operator does after the
// agent lost its state file).
func (m *MemStore) ResetSecret(agentID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.secrets, agentID)
}

// JournalAck implements AckStore.
func (m *MemStore) JournalAck(_ context.Context, agentID, journal string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acks[[2]string{agentID, journal}], nil
}

// SetJournalAck implements AckStore.
func (m *MemStore) SetJournalAck(_ context.Context, agentID, journal string, seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks[[2]string{agentID, journal}] = seq
	return nil
}
