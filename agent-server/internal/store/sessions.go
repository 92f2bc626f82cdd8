package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// AgentSession records which member of a cluster holds an agent's session
// (agent_sessions; Member and Instance are "" while nobody does). Token
// grows by one at every take of the agent and never goes back (a released
// row keeps it): it is the fencing token of the session, so that a member
// the agent has left cannot clear (or, later, write for) the session
// another member took.
type AgentSession struct {
	AgentID     string
	Member      string // member id (cluster.member)
	Instance    string // the member's instance (ClusterMember.Instance)
	Token       int64
	ConnectedAt time.Time
	// Advertise is the holding member's advertised address, filled in by
	// AgentSessionOwners from cluster_members.
	Advertise string
}

// sessionsDDL is the schema step of session ownership (migrations, v8).
// A session is valid while its member's row in cluster_members is live
// with that instance: one lease per member, not one per agent.
var sessionsDDL = []string{
	`CREATE TABLE agent_sessions (
		agent_id     VARCHAR(128) NOT NULL,
		member_id    VARCHAR(64) NOT NULL,
		instance     VARCHAR(32) NOT NULL,
		token        BIGINT NOT NULL DEFAULT 0,
		connected_at DATETIME(6) NOT NULL,
		PRIMARY KEY (agent_id)
	) ` + markTableNoRowid,
	"CREATE INDEX agent_sessions_member ON agent_sessions (member_id, instance)",
}

// liveOwner is the condition "the member row of agent_sessions' holder is
// live with that instance" (args: cluster, now).
const liveOwner = "EXISTS (SELECT 1 FROM cluster_members m WHERE m.cluster_name = ? AND m.member_id = agent_sessions.member_id " +
	"AND m.instance = agent_sessions.instance AND m.lease_until >= ?)"

// ClaimAgentSession takes agent a.AgentID for member a.Member (instance
// a.Instance) of cluster and returns the row with its new Token. It takes
// the row when there is none, when it is the member's own instance's, when
// its holder's lease has ended (by now) or is gone, or, with force, in any
// case (an agent that proved its secret replaces a live session). Otherwise
// ErrConflict, naming the holder.
func (s *sqlStore) ClaimAgentSession(ctx context.Context, cluster string, a AgentSession, now time.Time, force bool) (AgentSession, error) {
	defer s.observe("claim_agent_session")()
	op := "claim the session of agent " + a.AgentID
	if a.AgentID == "" || a.Member == "" || a.Instance == "" || cluster == "" {
		return AgentSession{}, s.fail(op, fmt.Errorf("%w: session without agent, member, instance or cluster", ErrInvalid))
	}
	if err := checkLens("agent id", a.AgentID, maxIDLen, "member id", a.Member, MaxClusterMemberID, "instance", a.Instance, maxInstanceLen); err != nil {
		return AgentSession{}, s.fail(op, err)
	}
	t := s.d.timeArg
	if a.ConnectedAt.IsZero() {
		a.ConnectedAt = now
	}
	q := "UPDATE agent_sessions SET member_id = ?, instance = ?, token = token + 1, connected_at = ? WHERE agent_id = ?"
	args := []any{a.Member, a.Instance, t(utc(a.ConnectedAt)), a.AgentID}
	if !force {
		q += " AND ((member_id = ? AND instance = ?) OR NOT " + liveOwner + ")"
		args = append(args, a.Member, a.Instance, cluster, t(utc(now)))
	}
	res, err := s.w.ExecContext(ctx, q, args...)
	if err = found(res, err); errors.Is(err, ErrNotFound) {
		_, err = s.w.ExecContext(ctx, "INSERT INTO agent_sessions (agent_id, member_id, instance, token, connected_at) VALUES (?,?,?,?,?)",
			a.AgentID, a.Member, a.Instance, 1, t(utc(a.ConnectedAt)))
		if errors.Is(s.d.classify(err), ErrConflict) {
			err = nil // the row exists: held by another live member (read below), or taken meanwhile
		}
	}
	if err != nil {
		return AgentSession{}, s.fail(op, err)
	}
	got, err := s.agentSession(ctx, a.AgentID)
	if err != nil {
		return AgentSession{}, s.fail(op, err)
	}
	if got.Member != a.Member || got.Instance != a.Instance {
		return got, s.fail(op, fmt.Errorf("%w: agent %s is connected to member %s", ErrConflict, a.AgentID, got.Member))
	}
	return got, nil
}

func (s *sqlStore) agentSession(ctx context.Context, id string) (AgentSession, error) {
	var a AgentSession
	err := s.w.QueryRowContext(ctx, "SELECT agent_id, member_id, instance, token, connected_at FROM agent_sessions WHERE agent_id = ?", id).
		Scan(&a.AgentID, &a.Member, &a.Instance, &a.Token, dbTime{&a.ConnectedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return AgentSession{}, ErrNotFound
	}
	return a, err
}

// ReleaseAgentSession marks the session row of agent id held by nobody
// while the member instance holds it with token (a session that ended);
// ErrNotFound when it does not (another member, or a later session, took
// it since). The row stays, with its token: the next take continues from
// it, so an agent's fencing tokens only grow.
func (s *sqlStore) ReleaseAgentSession(ctx context.Context, id, member, instance string, token int64) error {
	defer s.observe("release_agent_session")()
	res, err := s.w.ExecContext(ctx, "UPDATE agent_sessions SET member_id = '', instance = '' "+
		"WHERE agent_id = ? AND member_id = ? AND instance = ? AND token = ?", id, member, instance, token)
	if err := found(res, err); err != nil {
		return s.fail("release the session of agent "+id, err)
	}
	return nil
}

// AgentSessionOwners returns the sessions of ids (every live session when
// ids is nil) held by live members of cluster by the clock now, with the
// holder's advertised address, by agent id.
func (s *sqlStore) AgentSessionOwners(ctx context.Context, cluster string, ids []string, now time.Time) (map[string]AgentSession, error) {
	defer s.observe("agent_session_owners")()
	const q = "SELECT s.agent_id, s.member_id, s.instance, s.token, s.connected_at, m.advertise FROM agent_sessions s " +
		"JOIN cluster_members m ON m.cluster_name = ? AND m.member_id = s.member_id AND m.instance = s.instance AND m.lease_until >= ?"
	scan := func(sc scanner) (AgentSession, error) {
		var a AgentSession
		err := sc.Scan(&a.AgentID, &a.Member, &a.Instance, &a.Token, dbTime{&a.ConnectedAt}, &a.Advertise)
		return a, err
	}
	out := map[string]AgentSession{}
	add := func(where string, args []any) error {
		list, err := queryAll(ctx, s, q+where, append([]any{cluster, s.d.timeArg(utc(now))}, args...), scan)
		for _, a := range list {
			out[a.AgentID] = a
		}
		return err
	}
	if ids == nil {
		if err := add("", nil); err != nil {
			return nil, s.fail("list the sessions of cluster "+cluster, err)
		}
		return out, nil
	}
	for chunk := range slices.Chunk(ids, maxBatchRows) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		if err := add(" WHERE s.agent_id IN ("+placeholders(len(chunk))+")", args); err != nil {
			return nil, s.fail("read the owners of agent sessions", err)
		}
	}
	return out, nil
}

// ForgetAgentSessions releases the session rows whose holder no longer
// has a row in cluster_members with that instance (removed after
// cluster.member_grace, left cleanly, or restarted as a new instance), and
// returns how many. Readers ignore such rows anyway; this keeps the rows
// truthful. Rows of a member whose lease merely ran out stay held: it may
// renew and still hold its agents (until another member takes them).
func (s *sqlStore) ForgetAgentSessions(ctx context.Context, cluster string) (int64, error) {
	defer s.observe("forget_agent_sessions")()
	res, err := s.w.ExecContext(ctx, "UPDATE agent_sessions SET member_id = '', instance = '' WHERE member_id <> '' "+
		"AND NOT EXISTS (SELECT 1 FROM cluster_members m "+
		"WHERE m.cluster_name = ? AND m.member_id = agent_sessions.member_id AND m.instance = agent_sessions.instance)", cluster)
	if err != nil {
		return 0, s.fail("release the sessions of gone members of cluster "+cluster, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("release the sessions of gone members of cluster "+cluster, err)
	}
	return n, nil
}
