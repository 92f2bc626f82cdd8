package store

import (
	"context"
	"encoding/json"
	"strings"
)

// insertAuditQ is prepared (hotWrites): every audited call writes one.
const insertAuditQ = "INSERT INTO audit (at, actor, action, target, agent, remote, status, request_id, detail, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

const auditCols = "id, at, actor, action, target, agent, remote, status, request_id, detail, result"

func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	defer s.observe("append_audit")()
	op := "append audit " + e.Action
	if err := checkLens("actor", e.Actor, maxTextLen, "action", e.Action, maxTextLen, "request_id", e.RequestID, maxTextLen,
		"agent", e.Agent, maxIDLen, "remote", e.Remote, maxTextLen); err != nil {
		return 0, s.fail(op, err)
	}
	if err := checkJSON("audit detail", e.Detail); err != nil {
		return 0, s.fail(op, err)
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	res, err := s.execW(ctx, insertAuditQ,
		s.d.timeArg(utc(e.Time)), e.Actor, e.Action, e.Target, e.Agent, e.Remote, e.Status, e.RequestID, nullBytes(e.Detail), e.Result)
	if err != nil {
		return 0, s.fail(op, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, s.fail(op, err)
	}
	return id, nil
}

func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error) {
	defer s.observe("list_audit")()
	const op = "list audit"
	where, args := s.auditWhere(f, nil)
	out, total, err := listPage(ctx, s, f.Paging, auditCols, "audit", where, "at DESC, id DESC", args, scanAudit)
	if err != nil {
		return nil, 0, s.fail(op, err)
	}
	return out, total, nil
}

func (s *sqlStore) ScanAudit(ctx context.Context, f AuditFilter, afterID int64, limit int) ([]AuditEntry, error) {
	defer s.observe("scan_audit")()
	const op = "scan audit"
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	where, args := s.auditWhere(f, []string{"id > ?"})
	out, err := queryAll(ctx, s, "SELECT "+auditCols+" FROM audit"+where+" ORDER BY id LIMIT ?", append([]any{afterID}, append(args, limit)...), scanAudit)
	if err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// auditWhere builds the WHERE clause of f after the conditions in conds
// (whose arguments the caller puts first).
func (s *sqlStore) auditWhere(f AuditFilter, conds []string) (string, []any) {
	var args []any
	for _, eq := range []struct{ col, v string }{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}, {"agent", f.Agent}} {
		if eq.v != "" {
			conds = append(conds, eq.col+" = ?")
			args = append(args, eq.v)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "at >= ?")
		args = append(args, s.d.timeArg(utc(f.Since)))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "at < ?")
		args = append(args, s.d.timeArg(utc(f.Until)))
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func scanAudit(sc scanner) (AuditEntry, error) {
	var e AuditEntry
	var detail []byte
	if err := sc.Scan(&e.ID, dbTime{&e.Time}, &e.Actor, &e.Action, &e.Target, &e.Agent, &e.Remote, &e.Status, &e.RequestID, &detail, &e.Result); err != nil {
		return e, err
	}
	if len(detail) > 0 {
		e.Detail = json.RawMessage(detail)
	}
	return e, nil
}
