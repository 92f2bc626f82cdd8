package store

import (
	"context"
	"database/sql"
	"fmt"
)

// InstallAction is one action of a host's install log (seed §4.1.1: the
// /install/status body), stored per task and agent at its position N.
type InstallAction struct {
	TaskID  string
	AgentID string
	N       int
	Action  string // download, install, file, done
	Name    string
	Time    int64 // unix seconds, as the agent reported
	OK      bool
	Msg     string
}

// InstallStore keeps the action logs of installs. Both backends implement
// it; assert it on a Store.
type InstallStore interface {
	// PutInstallActions stores actions; an action at a position already
	// stored replaces it (a replay carries the same action).
	PutInstallActions(ctx context.Context, as []InstallAction) error
	// ListInstallActions returns a host's log in order.
	ListInstallActions(ctx context.Context, taskID, agentID string) ([]InstallAction, error)
}

// MaxInstallActions bounds the actions stored per task and agent (the
// agent's journal holds at most 256).
const MaxInstallActions = 1024

const installActionCols = "task_id, agent_id, n, action, name, at, ok, msg"

// installDDL is the schema step of the install action log (migrations, v6).
var installDDL = []string{
	// install_actions: each host's action log of an install task; at is
	// the agent's unix seconds, ok 0 or 1.
	`CREATE TABLE install_actions (
		task_id  VARCHAR(64) NOT NULL,
		agent_id VARCHAR(128) NOT NULL,
		n        INT NOT NULL,
		action   VARCHAR(16) NOT NULL,
		name     TEXT NOT NULL,
		at       BIGINT NOT NULL,
		ok       INT NOT NULL DEFAULT 0,
		msg      TEXT NOT NULL,
		PRIMARY KEY (task_id, agent_id, n)
	) ` + markTableNoRowid,
}

func (s *sqlStore) PutInstallActions(ctx context.Context, as []InstallAction) error {
	defer s.observe("put_install_actions")()
	op := fmt.Sprintf("put %d install actions", len(as))
	for _, a := range as {
		if a.TaskID == "" || a.AgentID == "" {
			return s.fail(op, fmt.Errorf("%w: install action without task or agent id", ErrInvalid))
		}
		if err := checkLens("task id", a.TaskID, maxTaskIDLen, "agent id", a.AgentID, maxIDLen); err != nil {
			return s.fail(op, err)
		}
		if a.N < 0 || a.N >= MaxInstallActions {
			return s.fail(op, fmt.Errorf("%w: install action position %d: want 0…%d", ErrInvalid, a.N, MaxInstallActions-1))
		}
		if a.Action == "" || len(a.Action) > 16 {
			return s.fail(op, fmt.Errorf("%w: install action %q", ErrInvalid, a.Action))
		}
	}
	if len(as) == 0 {
		return nil
	}
	ex := s.d.excluded
	tail := s.d.upsert("task_id", "agent_id", "n") + " action = " + ex("action") + ", name = " + ex("name") +
		", at = " + ex("at") + ", ok = " + ex("ok") + ", msg = " + ex("msg")
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.batchInsert(ctx, tx, "INSERT INTO install_actions ("+installActionCols+") VALUES ", tail, 8, len(as), func(i int) ([]any, int) {
			a := as[i]
			ok := 0
			if a.OK {
				ok = 1
			}
			return []any{a.TaskID, a.AgentID, a.N, a.Action, a.Name, a.Time, ok, a.Msg}, len(a.Name) + len(a.Msg) + 64
		})
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) ListInstallActions(ctx context.Context, taskID, agentID string) ([]InstallAction, error) {
	defer s.observe("list_install_actions")()
	op := "list install actions of " + taskID + "/" + agentID
	rows, err := s.r.QueryContext(ctx, "SELECT "+installActionCols+" FROM install_actions WHERE task_id = ? AND agent_id = ? ORDER BY n", taskID, agentID)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []InstallAction{}
	for rows.Next() {
		var a InstallAction
		var ok int
		if err := rows.Scan(&a.TaskID, &a.AgentID, &a.N, &a.Action, &a.Name, &a.Time, &ok, &a.Msg); err != nil {
			return nil, s.fail(op, err)
		}
		a.OK = ok != 0
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}
