package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ---- log collection (tables log_projects, log_nodes)

// LogProject is a log-collection project as /api/logging/config stored it.
type LogProject struct {
	Name    string
	Type    string
	Spec    json.RawMessage // the route's parameters, normalised
	Running bool
	// Version grows with every change (config, start, stop).
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// LogNode is the last status a node reported for a project.
type LogNode struct {
	Project   string
	AgentID   string
	Status    json.RawMessage
	UpdatedAt time.Time
}

// LoggingStore keeps the log-collection projects and their nodes' status.
// Both backends implement it; assert it on a Store.
type LoggingStore interface {
	// PutLogProject creates the project or replaces its type and spec
	// (keeping CreatedAt and Running) and returns it as stored, Version
	// increased.
	PutLogProject(ctx context.Context, p LogProject) (LogProject, error)
	// GetLogProject returns a project or ErrNotFound.
	GetLogProject(ctx context.Context, name string) (LogProject, error)
	// ListLogProjects returns every project, by name.
	ListLogProjects(ctx context.Context) ([]LogProject, error)
	// SetLogProjectRunning sets Running; ErrConflict when it already has
	// that value, ErrNotFound when absent.
	SetLogProjectRunning(ctx context.Context, name string, running bool) (LogProject, error)
	// DeleteLogProject removes a project with its nodes; ErrNotFound when
	// absent.
	DeleteLogProject(ctx context.Context, name string) error
	// PutLogNodes stores nodes' statuses (upsert by project and agent).
	PutLogNodes(ctx context.Context, ns []LogNode) error
	// ListLogNodes returns a project's nodes, by agent id.
	ListLogNodes(ctx context.Context, project string) ([]LogNode, error)
}

const maxLogProjectName = 64

const logProjectCols = "name, type, spec, running, version, created_at, updated_at"

func scanLogProject(sc scanner) (LogProject, error) {
	var p LogProject
	var running int
	var spec []byte
	err := sc.Scan(&p.Name, &p.Type, &spec, &running, &p.Version, dbTime{&p.CreatedAt}, dbTime{&p.UpdatedAt})
	p.Running, p.Spec = running != 0, spec
	return p, err
}

func (s *sqlStore) PutLogProject(ctx context.Context, p LogProject) (LogProject, error) {
	defer s.observe("put_log_project")()
	op := "put log project " + p.Name
	if p.Name == "" {
		return LogProject{}, s.fail(op, fmt.Errorf("%w: empty project name", ErrInvalid))
	}
	if err := checkLens("project name", p.Name, maxLogProjectName, "type", p.Type, 16); err != nil {
		return LogProject{}, s.fail(op, err)
	}
	if len(p.Spec) == 0 || !json.Valid(p.Spec) {
		return LogProject{}, s.fail(op, fmt.Errorf("%w: spec is not JSON", ErrInvalid))
	}
	now := utc(s.now())
	var out LogProject
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := scanLogProject(tx.QueryRowContext(ctx, "SELECT "+logProjectCols+" FROM log_projects WHERE name = ?", p.Name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out = LogProject{Name: p.Name, Type: p.Type, Spec: p.Spec, Running: true, Version: 1, CreatedAt: now, UpdatedAt: now}
			_, err = tx.ExecContext(ctx, "INSERT INTO log_projects ("+logProjectCols+") VALUES (?, ?, ?, 1, 1, ?, ?)",
				p.Name, p.Type, []byte(p.Spec), s.d.timeArg(now), s.d.timeArg(now))
			return err
		case err != nil:
			return err
		}
		out = cur
		out.Type, out.Spec, out.Version, out.UpdatedAt = p.Type, p.Spec, cur.Version+1, now
		_, err = tx.ExecContext(ctx, "UPDATE log_projects SET type = ?, spec = ?, version = ?, updated_at = ? WHERE name = ?",
			p.Type, []byte(p.Spec), out.Version, s.d.timeArg(now), p.Name)
		return err
	})
	if err != nil {
		return LogProject{}, s.fail(op, err)
	}
	return out, nil
}

func (s *sqlStore) GetLogProject(ctx context.Context, name string) (LogProject, error) {
	defer s.observe("get_log_project")()
	p, err := scanLogProject(s.r.QueryRowContext(ctx, "SELECT "+logProjectCols+" FROM log_projects WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return LogProject{}, s.fail("get log project "+name, ErrNotFound)
	}
	if err != nil {
		return LogProject{}, s.fail("get log project "+name, err)
	}
	return p, nil
}

func (s *sqlStore) ListLogProjects(ctx context.Context) ([]LogProject, error) {
	defer s.observe("list_log_projects")()
	out, err := queryAll(ctx, s, "SELECT "+logProjectCols+" FROM log_projects ORDER BY name", nil, scanLogProject)
	if err != nil {
		return nil, s.fail("list log projects", err)
	}
	return out, nil
}

func (s *sqlStore) SetLogProjectRunning(ctx context.Context, name string, running bool) (LogProject, error) {
	defer s.observe("set_log_project_running")()
	op := "set log project running " + name
	now := utc(s.now())
	var out LogProject
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := scanLogProject(tx.QueryRowContext(ctx, "SELECT "+logProjectCols+" FROM log_projects WHERE name = ?", name))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if cur.Running == running {
			return ErrConflict
		}
		out = cur
		out.Running, out.Version, out.UpdatedAt = running, cur.Version+1, now
		r := 0
		if running {
			r = 1
		}
		_, err = tx.ExecContext(ctx, "UPDATE log_projects SET running = ?, version = ?, updated_at = ? WHERE name = ?",
			r, out.Version, s.d.timeArg(now), name)
		return err
	})
	if err != nil {
		return LogProject{}, s.fail(op, err)
	}
	return out, nil
}

func (s *sqlStore) DeleteLogProject(ctx context.Context, name string) error {
	defer s.observe("delete_log_project")()
	op := "delete log project " + name
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM log_projects WHERE name = ?", name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM log_nodes WHERE project = ?", name)
		return err
	})
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) PutLogNodes(ctx context.Context, ns []LogNode) error {
	defer s.observe("put_log_nodes")()
	if len(ns) == 0 {
		return nil
	}
	for _, n := range ns {
		if err := checkLens("project", n.Project, maxLogProjectName, "agent id", n.AgentID, maxIDLen); err != nil {
			return s.fail("put log nodes", err)
		}
		if err := checkJSON("status", n.Status); err != nil || len(n.Status) == 0 {
			return s.fail("put log nodes", fmt.Errorf("%w: status of %s/%s is not JSON", ErrInvalid, n.Project, n.AgentID))
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, n := range ns {
			at := n.UpdatedAt
			if at.IsZero() {
				at = s.now()
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO log_nodes (project, agent_id, status, updated_at) VALUES (?, ?, ?, ?) "+
				s.d.upsert("project", "agent_id")+" status = "+s.d.excluded("status")+", updated_at = "+s.d.excluded("updated_at"),
				n.Project, n.AgentID, []byte(n.Status), s.d.timeArg(utc(at)))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("put log nodes", err)
	}
	return nil
}

func (s *sqlStore) ListLogNodes(ctx context.Context, project string) ([]LogNode, error) {
	defer s.observe("list_log_nodes")()
	out, err := queryAll(ctx, s, "SELECT project, agent_id, status, updated_at FROM log_nodes WHERE project = ? ORDER BY agent_id", []any{project}, func(sc scanner) (LogNode, error) {
		var n LogNode
		var st []byte
		err := sc.Scan(&n.Project, &n.AgentID, &st, dbTime{&n.UpdatedAt})
		n.Status = st
		return n, err
	})
	if err != nil {
		return nil, s.fail("list log nodes", err)
	}
	return out, nil
}

// loggingDDL is the schema step of these tables (migrations, v5).
var loggingDDL = []string{
	// log_projects: the projects of /api/logging/config: the route's
	// parameters as JSON in spec, whether the project runs, and a version
	// bumped by every change.
	`CREATE TABLE log_projects (
		name       VARCHAR(64) NOT NULL,
		type       VARCHAR(16) NOT NULL,
		spec       MEDIUMBLOB NOT NULL,
		running    INT NOT NULL DEFAULT 1,
		version    BIGINT NOT NULL DEFAULT 1,
		created_at DATETIME(6) NOT NULL,
		updated_at DATETIME(6) NOT NULL,
		PRIMARY KEY (name)
	) ` + markTableNoRowid,
	// log_nodes: the last status a log-agent reported for a project.
	`CREATE TABLE log_nodes (
		project    VARCHAR(64) NOT NULL,
		agent_id   VARCHAR(128) NOT NULL,
		status     MEDIUMBLOB NOT NULL,
		updated_at DATETIME(6) NOT NULL,
		PRIMARY KEY (project, agent_id)
	) ` + markTableNoRowid,
}
