package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// streamSize returns the stored size of an output stream.
func streamSize(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, taskID, agentID string) (int64, error) {
	var pos, n int64
	err := q.QueryRowContext(ctx, "SELECT pos, LENGTH(data) FROM outputs WHERE task_id = ? AND agent_id = ? ORDER BY pos DESC LIMIT 1", taskID, agentID).Scan(&pos, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos + n, err
}

func (s *sqlStore) AppendOutput(ctx context.Context, taskID, agentID string, p []byte) (int, error) {
	return s.appendOutput(ctx, taskID, agentID, -1, p)
}

func (s *sqlStore) AppendOutputAt(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error) {
	if off < 0 {
		return 0, s.fail(fmt.Sprintf("append output of agent %s in task %s", agentID, taskID), fmt.Errorf("%w: negative offset %d", ErrInvalid, off))
	}
	return s.appendOutput(ctx, taskID, agentID, off, p)
}

// appendOutput appends p at the stream's end (off < 0) or as the bytes
// from off, skipping those the stream holds already.
func (s *sqlStore) appendOutput(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error) {
	defer s.observe("append_output")()
	op := fmt.Sprintf("append output of agent %s in task %s", agentID, taskID)
	if len(p) == 0 {
		return 0, nil
	}
	kept := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		size, err := streamSize(ctx, tx, taskID, agentID)
		if err != nil {
			return err
		}
		if size == 0 {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM tasks WHERE id = ?", taskID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("task %s: %w", taskID, ErrNotFound)
			} else if err != nil {
				return err
			}
		}
		have := int64(0) // bytes of p the stream holds already
		if off >= 0 {
			if off > size {
				return fmt.Errorf("%w: offset %d is beyond the stored %d bytes", ErrInvalid, off, size)
			}
			have = min(size-off, int64(len(p)))
		}
		rest := p[have:]
		keep := int64(len(rest))
		if s.cfg.OutputCap >= 0 {
			keep = min(keep, max(s.cfg.OutputCap-size, 0))
		}
		for o := int64(0); o < keep; o += maxChunk {
			chunk := rest[o:min(o+maxChunk, keep)]
			if _, err := tx.ExecContext(ctx, "INSERT INTO outputs (task_id, agent_id, pos, data) VALUES (?, ?, ?, ?)",
				taskID, agentID, size+o, chunk); err != nil {
				return err
			}
		}
		kept = int(have + keep)
		return nil
	})
	if err != nil {
		return 0, s.fail(op, err)
	}
	return kept, nil
}

func (s *sqlStore) taskExists(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, "SELECT 1 FROM tasks WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s *sqlStore) OutputSize(ctx context.Context, taskID, agentID string) (int64, error) {
	defer s.observe("output_size")()
	n, err := streamSize(ctx, s.r, taskID, agentID)
	if err != nil {
		return 0, s.fail(fmt.Sprintf("output size of agent %s in task %s", agentID, taskID), err)
	}
	return n, nil
}

func (s *sqlStore) ReadOutput(ctx context.Context, taskID, agentID string, offset, length int64) ([]byte, int64, error) {
	defer s.observe("read_output")()
	op := fmt.Sprintf("read output of agent %s in task %s", agentID, taskID)
	if offset < 0 {
		return nil, 0, s.fail(op, fmt.Errorf("%w: negative offset %d", ErrInvalid, offset))
	}
	total, err := streamSize(ctx, s.r, taskID, agentID)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	if total == 0 {
		if ok, err := s.taskExists(ctx, taskID); err != nil {
			return nil, 0, s.fail(op, err)
		} else if !ok {
			return nil, 0, s.fail(op, ErrNotFound)
		}
	}
	end := total
	if length >= 0 && length < total-offset {
		end = offset + length
	}
	if offset >= end {
		return []byte{}, total, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT pos, data FROM outputs WHERE task_id = ? AND agent_id = ? AND pos < ?
		AND pos >= (SELECT COALESCE(MAX(pos), 0) FROM outputs WHERE task_id = ? AND agent_id = ? AND pos <= ?) ORDER BY pos`,
		taskID, agentID, end, taskID, agentID, offset)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	defer rows.Close()
	out := make([]byte, 0, end-offset)
	for rows.Next() {
		var pos int64
		var data []byte
		if err := rows.Scan(&pos, &data); err != nil {
			return nil, 0, s.fail(op, err)
		}
		lo := max(offset-pos, 0)
		hi := min(end-pos, int64(len(data)))
		if lo < hi {
			out = append(out, data[lo:hi]...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.fail(op, err)
	}
	if int64(len(out)) != end-offset {
		return nil, 0, s.fail(op, fmt.Errorf("stream has a gap: read %d bytes of %d", len(out), end-offset))
	}
	return out, total, nil
}
