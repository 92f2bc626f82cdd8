package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

func checkMetric(m Metric, usage bool) error {
	if m.AgentID == "" {
		return fmt.Errorf("%w: metric without agent id", ErrInvalid)
	}
	if err := checkLens("agent id", m.AgentID, maxIDLen); err != nil {
		return err
	}
	if !usage && !validCategory(m.Category) {
		return fmt.Errorf("%w: metric category %q", ErrInvalid, m.Category)
	}
	if m.Time.IsZero() {
		return fmt.Errorf("%w: metric without time", ErrInvalid)
	}
	return checkJSON("metric data", m.Data)
}

func (s *sqlStore) PutMetrics(ctx context.Context, ms []Metric) error {
	defer s.observe("put_metrics")()
	op := fmt.Sprintf("put %d metrics", len(ms))
	for _, m := range ms {
		if err := checkMetric(m, false); err != nil {
			return s.fail(op, err)
		}
	}
	update := s.metricUpdate()
	if len(ms) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.batchInsert(ctx, tx, "INSERT INTO metrics (agent_id, category, at, data) VALUES ", update, 4, len(ms), func(i int) ([]any, int) {
			m := ms[i]
			return []any{m.AgentID, m.Category, s.d.timeArg(utc(m.Time)), nullBytes(m.Data)}, len(m.Data)
		})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// metricUpdate is the update part of the metrics upsert: the newer report
// wins.
func (s *sqlStore) metricUpdate() string { return s.metricUpd }

func (s *sqlStore) buildMetricUpdate() string {
	ex := s.d.excluded
	newer := ex("at") + " >= at"
	// data before at: MySQL evaluates assignments left to right.
	return s.d.upsert("agent_id", "category") + " data = CASE WHEN " + newer + " THEN " + ex("data") + " ELSE data END, at = CASE WHEN " + newer + " THEN " + ex("at") + " ELSE at END"
}

// batchInsert runs multi-row inserts of n rows; row(i) gives the i-th row's
// arguments and approximate size in bytes. A one-row statement of the hot
// paths (one result, one metric) runs prepared (hotWrites).
func (s *sqlStore) batchInsert(ctx context.Context, tx *sql.Tx, head, tail string, cols, n int, row func(int) ([]any, int)) error {
	args := make([]any, 0, cols*min(n, maxBatchRows))
	rows, size := 0, 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		_, err := s.execTx(ctx, tx, head+rowsPlaceholders(rows, cols)+" "+tail, args...)
		args, rows, size = args[:0], 0, 0
		return err
	}
	for i := range n {
		a, sz := row(i)
		args = append(args, a...)
		rows++
		size += sz
		if rows == maxBatchRows || size >= maxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (s *sqlStore) GetMetric(ctx context.Context, agentID, category string) (Metric, error) {
	defer s.observe("get_metric")()
	op := fmt.Sprintf("get %s metric of agent %s", category, agentID)
	m := Metric{AgentID: agentID, Category: category}
	var data []byte
	err := s.r.QueryRowContext(ctx, "SELECT at, data FROM metrics WHERE agent_id = ? AND category = ?", agentID, category).Scan(dbTime{&m.Time}, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return Metric{}, s.fail(op, ErrNotFound)
	}
	if err != nil {
		return Metric{}, s.fail(op, err)
	}
	if len(data) > 0 {
		m.Data = json.RawMessage(data)
	}
	return m, nil
}

func (s *sqlStore) GetMetrics(ctx context.Context, agentID string) ([]Metric, error) {
	defer s.observe("get_metrics")()
	op := "get metrics of agent " + agentID
	out, err := queryAll(ctx, s, "SELECT category, at, data FROM metrics WHERE agent_id = ? ORDER BY category", []any{agentID}, func(sc scanner) (Metric, error) {
		m := Metric{AgentID: agentID}
		err := scanMetric(sc, &m, &m.Category)
		return m, err
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// scanMetric scans a row of (category, when given,) at and data into m.
func scanMetric(sc scanner, m *Metric, category *string) error {
	var data []byte
	dest := []any{dbTime{&m.Time}, &data}
	if category != nil {
		dest = append([]any{category}, dest...)
	}
	if err := sc.Scan(dest...); err != nil {
		return err
	}
	if len(data) > 0 {
		m.Data = json.RawMessage(data)
	}
	return nil
}

func (s *sqlStore) AddUsage(ctx context.Context, ms []Metric) error {
	defer s.observe("add_usage")()
	op := fmt.Sprintf("add %d usage samples", len(ms))
	for _, m := range ms {
		if err := checkMetric(m, true); err != nil {
			return s.fail(op, err)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.batchInsert(ctx, tx, "INSERT INTO usage_history (agent_id, at, data) VALUES ", "", 3, len(ms), func(i int) ([]any, int) {
			m := ms[i]
			return []any{m.AgentID, s.d.timeArg(utc(m.Time)), nullBytes(m.Data)}, len(m.Data)
		})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) UsageHistory(ctx context.Context, agentID string, since time.Time) ([]Metric, error) {
	defer s.observe("usage_history")()
	op := "usage history of agent " + agentID
	q, args := "SELECT at, data FROM usage_history WHERE agent_id = ?", []any{agentID}
	if !since.IsZero() {
		q += " AND at >= ?"
		args = append(args, s.d.timeArg(utc(since)))
	}
	out, err := queryAll(ctx, s, q+" ORDER BY at DESC, id DESC LIMIT ?", append(args, MaxUsageHistory), func(sc scanner) (Metric, error) {
		m := Metric{AgentID: agentID, Category: CategoryUsage}
		err := scanMetric(sc, &m, nil)
		return m, err
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	slices.Reverse(out)
	return out, nil
}

func (s *sqlStore) PruneUsage(ctx context.Context, olderThan time.Time) (int64, error) {
	defer s.observe("prune_usage")()
	res, err := s.w.ExecContext(ctx, "DELETE FROM usage_history WHERE at < ?", s.d.timeArg(utc(olderThan)))
	if err != nil {
		return 0, s.fail("prune usage", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("prune usage", err)
	}
	return n, nil
}
