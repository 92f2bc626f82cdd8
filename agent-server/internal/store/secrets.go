package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// SecretHash returns the stored hash of the agent's secret, nil when it has
// none.
func (s *sqlStore) SecretHash(ctx context.Context, agentID string) ([]byte, error) {
	defer s.observe("secret_hash")()
	var h []byte
	err := s.secretQ.QueryRowContext(ctx, agentID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read secret of agent "+agentID, err)
	}
	return h, nil
}

// SetSecretHash stores the hash of the agent's secret; nil forgets it (an
// operator resetting an agent that lost its state file).
func (s *sqlStore) SetSecretHash(ctx context.Context, agentID string, hash []byte) error {
	defer s.observe("set_secret_hash")()
	op := "store secret of agent " + agentID
	if err := checkLens("agent id", agentID, maxIDLen); err != nil {
		return s.fail(op, err)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if hash == nil {
			_, err := tx.ExecContext(ctx, "DELETE FROM agent_secrets WHERE agent_id = ?", agentID)
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO agent_secrets (agent_id, hash) VALUES (?, ?) "+
			s.d.upsert("agent_id")+" hash = "+s.d.excluded("hash"), agentID, hash)
		return err
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// JournalAck returns the highest sequence number stored for the agent's
// journal, 0 for a journal never seen.
func (s *sqlStore) JournalAck(ctx context.Context, agentID, journal string) (uint64, error) {
	defer s.observe("journal_ack")()
	var seq int64
	err := s.ackQ.QueryRowContext(ctx, agentID, journal).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("read journal ack of agent "+agentID, err)
	}
	return uint64(seq), nil
}

// SetJournalAck records seq as the high-water mark of the agent's journal.
// It never moves the mark back.
func (s *sqlStore) SetJournalAck(ctx context.Context, agentID, journal string, seq uint64) error {
	defer s.observe("set_journal_ack")()
	op := "store journal ack of agent " + agentID
	if err := checkLens("agent id", agentID, maxIDLen, "journal", journal, maxTextLen); err != nil {
		return s.fail(op, err)
	}
	if seq > math.MaxInt64 {
		return s.fail(op, fmt.Errorf("%w: sequence number %d out of range", ErrInvalid, seq))
	}
	ex := s.d.excluded("seq")
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO journal_acks (agent_id, journal, seq) VALUES (?, ?, ?) "+
			s.d.upsert("agent_id", "journal")+" seq = CASE WHEN "+ex+" > seq THEN "+ex+" ELSE seq END",
			agentID, journal, int64(seq))
		return err
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) SetSecretHashes(ctx context.Context, hashes map[string][]byte) error {
	defer s.observe("set_secret_hashes")()
	op := fmt.Sprintf("store secrets of %d agents", len(hashes))
	if len(hashes) == 0 {
		return nil
	}
	var set, forget []string
	for _, id := range slices.Sorted(maps.Keys(hashes)) {
		if err := checkLens("agent id", id, maxIDLen); err != nil {
			return s.fail(op, err)
		}
		if hashes[id] == nil {
			forget = append(forget, id)
		} else {
			set = append(set, id)
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := deleteAgents(ctx, tx, "agent_secrets", forget); err != nil {
			return err
		}
		return s.batchInsert(ctx, tx, "INSERT INTO agent_secrets (agent_id, hash) VALUES ",
			s.d.upsert("agent_id")+" hash = "+s.d.excluded("hash"), 2, len(set),
			func(i int) ([]any, int) { return []any{set[i], hashes[set[i]]}, len(set[i]) + len(hashes[set[i]]) })
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}
