package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

const agentCols = "id, type, version, ip, mac, host_name, os, platform, platform_version, kernel_version, arch, cpu, cpu_core, memory, labels, facts, first_seen, last_seen, connected_at"

func (s *sqlStore) UpsertAgent(ctx context.Context, a Agent) error {
	defer s.observe("upsert_agent")()
	const op = "upsert agent"
	if a.ID == "" {
		return s.fail(op, fmt.Errorf("%w: empty agent id", ErrInvalid))
	}
	if err := checkLens(
		"agent id", a.ID, maxIDLen, "type", a.Type, maxTextLen, "version", a.Version, maxTextLen, "ip", a.IP, maxTextLen,
		"mac", a.MAC, maxTextLen, "host_name", a.HostName, maxTextLen, "os", a.OS, maxTextLen, "platform", a.Platform, maxTextLen,
		"platform_version", a.PlatformVersion, maxTextLen, "kernel_version", a.KernelVersion, maxTextLen,
		"arch", a.Arch, maxTextLen, "cpu", a.CPU, maxTextLen); err != nil {
		return s.fail(op, err)
	}
	if err := ValidateLabels(a.Labels); err != nil {
		return s.fail(op+" "+a.ID, err)
	}
	if err := checkJSON("facts", a.Facts); err != nil {
		return s.fail(op+" "+a.ID, err)
	}
	now := s.now()
	last := firstNonZero(a.LastSeen, a.ConnectedAt, now)
	first := firstNonZero(a.FirstSeen, a.ConnectedAt, last)
	var labels any
	if a.Labels != nil {
		b, err := json.Marshal(a.Labels)
		if err != nil {
			return s.fail(op, err)
		}
		labels = b
	}
	ex := s.d.excluded
	var set []string
	for _, c := range []string{"type", "version", "ip", "mac", "host_name", "os", "platform", "platform_version", "kernel_version", "arch", "cpu", "cpu_core", "memory", "last_seen", "connected_at"} {
		set = append(set, c+" = "+ex(c))
	}
	set = append(set, "labels = COALESCE("+ex("labels")+", labels)", "facts = COALESCE("+ex("facts")+", facts)")
	q := "INSERT INTO agents (" + agentCols + ") VALUES (" + placeholders(19) + ") " + s.d.upsert("id") + " " + strings.Join(set, ", ")
	args := []any{a.ID, a.Type, a.Version, a.IP, a.MAC, a.HostName, a.OS, a.Platform, a.PlatformVersion, a.KernelVersion,
		a.Arch, a.CPU, a.CPUCore, int64(a.Memory), labels, nullBytes(a.Facts),
		s.d.timeArg(utc(first)), s.d.timeArg(utc(last)), s.d.timeArg(utc(a.ConnectedAt))}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		if a.Labels != nil {
			return replaceLabels(ctx, tx, a.ID, a.Labels)
		}
		return nil
	})
	if err != nil {
		return s.fail(op+" "+a.ID, err)
	}
	return nil
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func replaceLabels(ctx context.Context, tx *sql.Tx, id string, labels map[string]string) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM agent_labels WHERE agent_id = ?", id); err != nil {
		return err
	}
	if len(labels) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(labels))
	for k, v := range labels {
		args = append(args, id, k, v)
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO agent_labels (agent_id, k, v) VALUES "+rowsPlaceholders(len(labels), 3), args...)
	return err
}

func (s *sqlStore) TouchAgents(ctx context.Context, ids []string, t time.Time) error {
	defer s.observe("touch_agents")()
	if len(ids) == 0 {
		return nil
	}
	at := s.d.timeArg(utc(t))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(ids, maxBatchRows) {
			args := make([]any, 0, len(chunk)+2)
			args = append(args, at, at)
			for _, id := range chunk {
				args = append(args, id)
			}
			q := "UPDATE agents SET last_seen = ? WHERE last_seen < ? AND id IN (" + placeholders(len(chunk)) + ")"
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(fmt.Sprintf("touch %d agents", len(ids)), err)
	}
	return nil
}

func scanAgent(sc scanner) (Agent, error) {
	var a Agent
	var labels, facts []byte
	var mem int64
	err := sc.Scan(&a.ID, &a.Type, &a.Version, &a.IP, &a.MAC, &a.HostName, &a.OS, &a.Platform, &a.PlatformVersion,
		&a.KernelVersion, &a.Arch, &a.CPU, &a.CPUCore, &mem, &labels, &facts,
		dbTime{&a.FirstSeen}, dbTime{&a.LastSeen}, dbTime{&a.ConnectedAt})
	if err != nil {
		return Agent{}, err
	}
	a.Memory = uint64(mem)
	if len(labels) > 0 {
		if err := json.Unmarshal(labels, &a.Labels); err != nil {
			return Agent{}, fmt.Errorf("agent %s labels: %w", a.ID, err)
		}
	}
	if len(facts) > 0 {
		a.Facts = json.RawMessage(facts)
	}
	return a, nil
}

func (s *sqlStore) GetAgent(ctx context.Context, id string) (Agent, error) {
	defer s.observe("get_agent")()
	a, err := scanAgent(s.r.QueryRowContext(ctx, "SELECT "+agentCols+" FROM agents WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, s.fail("get agent "+id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, s.fail("get agent "+id, err)
	}
	return a, nil
}

// likeEscape makes s a LIKE pattern matching itself (escape character '!').
func likeEscape(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}

func agentWhere(f AgentFilter) (string, []any, error) {
	var conds []string
	var args []any
	for _, eq := range []struct{ col, v string }{{"type", f.Type}, {"os", f.OS}, {"platform", f.Platform}} {
		if eq.v != "" {
			conds = append(conds, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	if f.Keyword != "" {
		p := "%" + likeEscape(strings.ToLower(f.Keyword)) + "%"
		conds = append(conds, "(LOWER(id) LIKE ? ESCAPE '!' OR LOWER(ip) LIKE ? ESCAPE '!' OR LOWER(mac) LIKE ? ESCAPE '!' OR LOWER(host_name) LIKE ? ESCAPE '!')")
		args = append(args, p, p, p, p)
	}
	if len(f.IDs) > MaxFilterIDs {
		return "", nil, fmt.Errorf("%w: more than %d ids", ErrInvalid, MaxFilterIDs)
	}
	if len(f.IDs) > 0 {
		conds = append(conds, "id IN ("+placeholders(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(f.Labels) > MaxLabels {
		return "", nil, fmt.Errorf("%w: more than %d label terms", ErrInvalid, MaxLabels)
	}
	for _, m := range f.Labels {
		const sub = "EXISTS (SELECT 1 FROM agent_labels l WHERE l.agent_id = agents.id AND l.k = ?"
		switch m.Op {
		case LabelEq:
			conds = append(conds, sub+" AND l.v = ?)")
			args = append(args, m.Key, m.Value)
		case LabelNotEq:
			conds = append(conds, "NOT "+sub+" AND l.v = ?)")
			args = append(args, m.Key, m.Value)
		case LabelExists:
			conds = append(conds, sub+")")
			args = append(args, m.Key)
		case LabelNotExists:
			conds = append(conds, "NOT "+sub+")")
			args = append(args, m.Key)
		default:
			return "", nil, fmt.Errorf("%w: label operator %d", ErrInvalid, m.Op)
		}
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

func (s *sqlStore) ListAgents(ctx context.Context, f AgentFilter) ([]Agent, int, error) {
	defer s.observe("list_agents")()
	const op = "list agents"
	where, args, err := agentWhere(f)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	order, err := AgentOrder(f.Sort)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	out, total, err := listPage(ctx, s, f.Paging, agentCols, "agents", where, order, args, scanAgent)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	return out, total, nil
}

func (s *sqlStore) SetAgentLabels(ctx context.Context, id string, labels map[string]string) error {
	defer s.observe("set_agent_labels")()
	op := "set labels of agent " + id
	if err := ValidateLabels(labels); err != nil {
		return s.fail(op, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return s.fail(op, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := found(tx.ExecContext(ctx, "UPDATE agents SET labels = ? WHERE id = ?", b, id)); err != nil {
			return err
		}
		return replaceLabels(ctx, tx, id, labels)
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) DeleteAgent(ctx context.Context, id string) error {
	defer s.observe("delete_agent")()
	return s.deleteCascade(ctx, "delete agent "+id, "DELETE FROM agents WHERE id = ?", id, []string{
		"DELETE FROM agent_labels WHERE agent_id = ?",
		"DELETE FROM metrics WHERE agent_id = ?",
		"DELETE FROM usage_history WHERE agent_id = ?",
		"DELETE FROM agent_secrets WHERE agent_id = ?",
		"DELETE FROM journal_acks WHERE agent_id = ?",
	})
}

// deleteCascade runs the child deletes, then the parent's, in one
// transaction; ErrNotFound when the parent row did not exist.
func (s *sqlStore) deleteCascade(ctx context.Context, op, parent, id string, children []string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range children {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return found(tx.ExecContext(ctx, parent, id))
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// ---- batches

// agentArgs checks a and returns its row for an INSERT INTO agents
// (agentCols), with its approximate size in bytes. It applies the rules of
// UpsertAgent.
func (s *sqlStore) agentArgs(a Agent, now time.Time) ([]any, int, error) {
	if a.ID == "" {
		return nil, 0, fmt.Errorf("%w: empty agent id", ErrInvalid)
	}
	if err := checkLens(
		"agent id", a.ID, maxIDLen, "type", a.Type, maxTextLen, "version", a.Version, maxTextLen, "ip", a.IP, maxTextLen,
		"mac", a.MAC, maxTextLen, "host_name", a.HostName, maxTextLen, "os", a.OS, maxTextLen, "platform", a.Platform, maxTextLen,
		"platform_version", a.PlatformVersion, maxTextLen, "kernel_version", a.KernelVersion, maxTextLen,
		"arch", a.Arch, maxTextLen, "cpu", a.CPU, maxTextLen); err != nil {
		return nil, 0, err
	}
	if err := ValidateLabels(a.Labels); err != nil {
		return nil, 0, err
	}
	if err := checkJSON("facts", a.Facts); err != nil {
		return nil, 0, err
	}
	last := firstNonZero(a.LastSeen, a.ConnectedAt, now)
	first := firstNonZero(a.FirstSeen, a.ConnectedAt, last)
	var labels any
	size := 128 + len(a.ID) + len(a.Type) + len(a.Version) + len(a.IP) + len(a.MAC) + len(a.HostName) + len(a.OS) +
		len(a.Platform) + len(a.PlatformVersion) + len(a.KernelVersion) + len(a.Arch) + len(a.CPU) + len(a.Facts)
	if a.Labels != nil {
		b, err := json.Marshal(a.Labels)
		if err != nil {
			return nil, 0, err
		}
		labels = b
		size += len(b)
	}
	return []any{a.ID, a.Type, a.Version, a.IP, a.MAC, a.HostName, a.OS, a.Platform, a.PlatformVersion, a.KernelVersion,
		a.Arch, a.CPU, a.CPUCore, int64(a.Memory), labels, nullBytes(a.Facts),
		s.d.timeArg(utc(first)), s.d.timeArg(utc(last)), s.d.timeArg(utc(a.ConnectedAt))}, size, nil
}

// agentUpsertTail is the update part of the agents upsert: FirstSeen kept,
// nil labels and facts keep the stored ones, the rest replaced.
func (s *sqlStore) agentUpsertTail() string {
	ex := s.d.excluded
	var set []string
	for _, c := range []string{"type", "version", "ip", "mac", "host_name", "os", "platform", "platform_version", "kernel_version", "arch", "cpu", "cpu_core", "memory", "last_seen", "connected_at"} {
		set = append(set, c+" = "+ex(c))
	}
	set = append(set, "labels = COALESCE("+ex("labels")+", labels)", "facts = COALESCE("+ex("facts")+", facts)")
	return s.d.upsert("id") + " " + strings.Join(set, ", ")
}

func (s *sqlStore) UpsertAgents(ctx context.Context, as []Agent) error {
	defer s.observe("upsert_agents")()
	op := fmt.Sprintf("upsert %d agents", len(as))
	if len(as) == 0 {
		return nil
	}
	now := s.now()
	rows := make([][]any, len(as))
	sizes := make([]int, len(as))
	// The labels each agent ends with, for those whose labels are replaced:
	// the last non-nil set listed.
	labels := map[string]map[string]string{}
	for i, a := range as {
		row, size, err := s.agentArgs(a, now)
		if err != nil {
			return s.fail(op+": agent "+a.ID, err)
		}
		rows[i], sizes[i] = row, size
		if a.Labels != nil {
			labels[a.ID] = a.Labels
		}
	}
	ids := slices.Sorted(maps.Keys(labels))
	var labelRows [][3]string
	for _, id := range ids {
		for _, k := range slices.Sorted(maps.Keys(labels[id])) {
			labelRows = append(labelRows, [3]string{id, k, labels[id][k]})
		}
	}
	tail := s.agentUpsertTail()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := s.batchInsert(ctx, tx, "INSERT INTO agents ("+agentCols+") VALUES ", tail, 19, len(rows),
			func(i int) ([]any, int) { return rows[i], sizes[i] })
		if err != nil {
			return err
		}
		if err := deleteAgents(ctx, tx, "agent_labels", ids); err != nil {
			return err
		}
		return s.batchInsert(ctx, tx, "INSERT INTO agent_labels (agent_id, k, v) VALUES ", "", 3, len(labelRows),
			func(i int) ([]any, int) {
				r := labelRows[i]
				return []any{r[0], r[1], r[2]}, len(r[0]) + len(r[1]) + len(r[2])
			})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}
