package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ClusterMember is one server of a cluster as its row records it: who holds
// the member id now (Instance, new at every start), since when, how far its
// lease reaches and how loaded it is.
type ClusterMember struct {
	Cluster  string // the cluster's name (cluster.name)
	ID       string // the member id (cluster.member)
	Instance string // random per process start: tells two holders of one id apart
	// Epoch grows by one each time an instance takes the member id: the
	// base of the fencing tokens of what the member will own.
	Epoch      int64
	Advertise  string // http(s)://host:port
	Version    string
	StartedAt  time.Time
	RenewedAt  time.Time
	LeaseUntil time.Time
	Sessions   int // agent sessions held at the last renewal
}

// ClusterStore keeps the membership of clusters of servers sharing one
// database (cluster_members). Both backends implement it (a test runs it on
// each); only MySQL/MariaDB can be shared, so only there does it serve a
// real cluster. Assert it on a Store.
//
// Lease times come from the members' clocks, which must agree to well
// under a lease (NTP).
type ClusterStore interface {
	// JoinCluster records m as the holder of its member id and returns the
	// row with its Epoch. It takes the id over (Epoch + 1) when the row is
	// free: absent, its lease ended before now, it is m's own instance, or
	// it advertises m's address (a restart of the same server, which holds
	// that address now). Otherwise the id is held by a live member:
	// ErrConflict, naming it.
	JoinCluster(ctx context.Context, m ClusterMember, now time.Time) (ClusterMember, error)
	// RenewClusterMember moves the lease of m's row (RenewedAt, LeaseUntil,
	// Sessions) while m.Instance still holds it; ErrNotFound when it does
	// not (removed, or taken over).
	RenewClusterMember(ctx context.Context, m ClusterMember) error
	// LeaveCluster deletes the row of a member id while instance holds it
	// (a clean shutdown); ErrNotFound when it does not.
	LeaveCluster(ctx context.Context, cluster, id, instance string) error
	// ClusterMembers lists the rows of a cluster by member id.
	ClusterMembers(ctx context.Context, cluster string) ([]ClusterMember, error)
	// ForgetClusterMembers deletes the rows of a cluster whose lease ended
	// before before, and returns how many.
	ForgetClusterMembers(ctx context.Context, cluster string, before time.Time) (int64, error)

	// Session ownership (sessions.go).
	ClaimAgentSession(ctx context.Context, cluster string, a AgentSession, now time.Time, force bool) (AgentSession, error)
	ReleaseAgentSession(ctx context.Context, id, member, instance string, token int64) error
	AgentSessionOwners(ctx context.Context, cluster string, ids []string, now time.Time) (map[string]AgentSession, error)
	ForgetAgentSessions(ctx context.Context, cluster string) (int64, error)

	// RenewTaskLeases moves the leases of the tasks a member owns along
	// with its own (taskowner.go).
	RenewTaskLeases(ctx context.Context, member, instance string, until time.Time) (int64, error)
	// LiveTaskOwner returns the live member owning a task and its address
	// (taskowner.go).
	LiveTaskOwner(ctx context.Context, cluster, id string, now time.Time) (member, advertise string, ok bool, err error)
}

// Length limits of the cluster_members columns.
const (
	MaxClusterName     = 64
	MaxClusterMemberID = 64
	maxInstanceLen     = 32
	maxClusterVersion  = 64
)

// clusterDDL is the schema step of cluster membership (migrations, v7).
var clusterDDL = []string{
	// cluster_members: one row per member id of each cluster; epoch counts
	// the instances that took the id.
	`CREATE TABLE cluster_members (
		cluster_name VARCHAR(64) NOT NULL,
		member_id    VARCHAR(64) NOT NULL,
		instance     VARCHAR(32) NOT NULL,
		epoch        BIGINT NOT NULL DEFAULT 0,
		advertise    VARCHAR(255) NOT NULL DEFAULT '',
		version      VARCHAR(64) NOT NULL DEFAULT '',
		started_at   DATETIME(6) NOT NULL,
		renewed_at   DATETIME(6) NOT NULL,
		lease_until  DATETIME(6) NOT NULL,
		sessions     INT NOT NULL DEFAULT 0,
		PRIMARY KEY (cluster_name, member_id)
	) ` + markTableNoRowid,
}

const clusterMemberCols = "cluster_name, member_id, instance, epoch, advertise, version, started_at, renewed_at, lease_until, sessions"

func checkClusterMember(m ClusterMember) error {
	if m.Cluster == "" || m.ID == "" || m.Instance == "" {
		return fmt.Errorf("%w: cluster member without cluster name, member id or instance", ErrInvalid)
	}
	if m.LeaseUntil.IsZero() || m.Sessions < 0 {
		return fmt.Errorf("%w: cluster member %s without a lease or with negative sessions", ErrInvalid, m.ID)
	}
	return checkLens("cluster name", m.Cluster, MaxClusterName, "member id", m.ID, MaxClusterMemberID,
		"instance", m.Instance, maxInstanceLen, "advertise", m.Advertise, maxTextLen, "version", m.Version, maxClusterVersion)
}

func (s *sqlStore) JoinCluster(ctx context.Context, m ClusterMember, now time.Time) (ClusterMember, error) {
	defer s.observe("join_cluster")()
	op := "join cluster " + m.Cluster + " as " + m.ID
	if err := checkClusterMember(m); err != nil {
		return ClusterMember{}, s.fail(op, err)
	}
	m.StartedAt, m.RenewedAt, m.LeaseUntil = utc(m.StartedAt), utc(m.RenewedAt), utc(m.LeaseUntil)
	if m.StartedAt.IsZero() {
		m.StartedAt = utc(now)
	}
	if m.RenewedAt.IsZero() {
		m.RenewedAt = utc(now)
	}
	t := s.d.timeArg
	// Each statement is atomic on its own: of two servers joining as one
	// id at once, one UPDATE or INSERT wins and the other's then finds the
	// row held (its WHERE sees the winner's lease).
	res, err := s.w.ExecContext(ctx, "UPDATE cluster_members SET instance = ?, epoch = epoch + 1, advertise = ?, version = ?, "+
		"started_at = ?, renewed_at = ?, lease_until = ?, sessions = ? "+
		"WHERE cluster_name = ? AND member_id = ? AND (instance = ? OR lease_until < ? OR (advertise = ? AND advertise <> ''))",
		m.Instance, m.Advertise, m.Version, t(m.StartedAt), t(m.RenewedAt), t(m.LeaseUntil), m.Sessions,
		m.Cluster, m.ID, m.Instance, t(utc(now)), m.Advertise)
	if err = found(res, err); errors.Is(err, ErrNotFound) {
		_, err = s.w.ExecContext(ctx, "INSERT INTO cluster_members ("+clusterMemberCols+") VALUES ("+placeholders(10)+")",
			m.Cluster, m.ID, m.Instance, 1, m.Advertise, m.Version, t(m.StartedAt), t(m.RenewedAt), t(m.LeaseUntil), m.Sessions)
		if errors.Is(s.d.classify(err), ErrConflict) {
			return ClusterMember{}, s.fail(op, s.heldBy(ctx, m.Cluster, m.ID))
		}
	}
	if err != nil {
		return ClusterMember{}, s.fail(op, err)
	}
	got, err := s.clusterMember(ctx, m.Cluster, m.ID)
	if err != nil {
		return ClusterMember{}, s.fail(op, err)
	}
	if got.Instance != m.Instance {
		return ClusterMember{}, s.fail(op, s.heldBy(ctx, m.Cluster, m.ID))
	}
	return got, nil
}

// heldBy is the ErrConflict of a member id another instance holds.
func (s *sqlStore) heldBy(ctx context.Context, cluster, id string) error {
	h, err := s.clusterMember(ctx, cluster, id)
	if err != nil {
		return fmt.Errorf("%w: member id %s is held by another server", ErrConflict, id)
	}
	return fmt.Errorf("%w: member id %s is held by the server at %s (version %s, started %s, lease until %s): give each server its own cluster.member",
		ErrConflict, id, h.Advertise, h.Version, h.StartedAt.Format(time.RFC3339), h.LeaseUntil.Format(time.RFC3339Nano))
}

func (s *sqlStore) clusterMember(ctx context.Context, cluster, id string) (ClusterMember, error) {
	// On the writer: a read right after a write must see it (SQLite's
	// reader pool is another connection).
	m, err := scanClusterMember(s.w.QueryRowContext(ctx, "SELECT "+clusterMemberCols+" FROM cluster_members WHERE cluster_name = ? AND member_id = ?", cluster, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ClusterMember{}, ErrNotFound
	}
	return m, err
}

func (s *sqlStore) RenewClusterMember(ctx context.Context, m ClusterMember) error {
	defer s.observe("renew_cluster_member")()
	op := "renew cluster member " + m.ID
	if err := checkClusterMember(m); err != nil {
		return s.fail(op, err)
	}
	t := s.d.timeArg
	res, err := s.w.ExecContext(ctx, "UPDATE cluster_members SET renewed_at = ?, lease_until = ?, sessions = ? "+
		"WHERE cluster_name = ? AND member_id = ? AND instance = ?",
		t(utc(m.RenewedAt)), t(utc(m.LeaseUntil)), m.Sessions, m.Cluster, m.ID, m.Instance)
	if err := found(res, err); err != nil {
		return s.fail(op, err)
	}
	return nil
}

func (s *sqlStore) LeaveCluster(ctx context.Context, cluster, id, instance string) error {
	defer s.observe("leave_cluster")()
	res, err := s.w.ExecContext(ctx, "DELETE FROM cluster_members WHERE cluster_name = ? AND member_id = ? AND instance = ?", cluster, id, instance)
	if err := found(res, err); err != nil {
		return s.fail("leave cluster "+cluster+" as "+id, err)
	}
	return nil
}

func (s *sqlStore) ClusterMembers(ctx context.Context, cluster string) ([]ClusterMember, error) {
	defer s.observe("cluster_members")()
	out, err := queryAll(ctx, s, "SELECT "+clusterMemberCols+" FROM cluster_members WHERE cluster_name = ? ORDER BY member_id",
		[]any{cluster}, scanClusterMember)
	if err != nil {
		return nil, s.fail("list members of cluster "+cluster, err)
	}
	return out, nil
}

func (s *sqlStore) ForgetClusterMembers(ctx context.Context, cluster string, before time.Time) (int64, error) {
	defer s.observe("forget_cluster_members")()
	res, err := s.w.ExecContext(ctx, "DELETE FROM cluster_members WHERE cluster_name = ? AND lease_until < ?", cluster, s.d.timeArg(utc(before)))
	if err != nil {
		return 0, s.fail("forget expired members of cluster "+cluster, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("forget expired members of cluster "+cluster, err)
	}
	return n, nil
}

func scanClusterMember(sc scanner) (ClusterMember, error) {
	var m ClusterMember
	err := sc.Scan(&m.Cluster, &m.ID, &m.Instance, &m.Epoch, &m.Advertise, &m.Version,
		dbTime{&m.StartedAt}, dbTime{&m.RenewedAt}, dbTime{&m.LeaseUntil}, &m.Sessions)
	return m, err
}
