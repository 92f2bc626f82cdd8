package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAgentSessionsSQLite(t *testing.T) { runSessionSuite(t, sqliteTestConfig) }
func TestAgentSessionsMySQL(t *testing.T)  { runSessionSuite(t, mysqlTestConfig) }

// runSessionSuite walks an agent's session between two members: taken,
// refused to the other while the holder is live, taken by force (token + 1)
// or once the holder's lease ended, released only by its current holder
// and token, listed with the holder's address, and forgotten when the
// holder is gone.
func runSessionSuite(t *testing.T, nc newConfig) {
	ctx := context.Background()
	cs := openStore(t, nc(t)).(ClusterStore)
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	lease := 15 * time.Second
	join := func(id, inst, addr string, at time.Time) {
		t.Helper()
		if _, err := cs.JoinCluster(ctx, ClusterMember{Cluster: "prod", ID: id, Instance: inst, Advertise: addr, LeaseUntil: at.Add(lease)}, at); err != nil {
			t.Fatal(err)
		}
	}
	join("s1", "i1", "http://10.0.0.1:13081", now)
	join("s2", "i2", "http://10.0.0.2:13081", now)

	a := AgentSession{AgentID: "ag1", Member: "s1", Instance: "i1", ConnectedAt: now}
	got, err := cs.ClaimAgentSession(ctx, "prod", a, now, false)
	if err != nil || got.Token != 1 || got.Member != "s1" || !got.ConnectedAt.Equal(now) {
		t.Fatalf("first claim: %+v %v", got, err)
	}
	// The same instance again (a reconnect to the same member): token + 1.
	if got, err = cs.ClaimAgentSession(ctx, "prod", a, now, false); err != nil || got.Token != 2 {
		t.Fatalf("claim by the holder: %+v %v", got, err)
	}
	// Another member while s1 is live: refused, naming s1.
	b := AgentSession{AgentID: "ag1", Member: "s2", Instance: "i2", ConnectedAt: now.Add(time.Second)}
	_, err = cs.ClaimAgentSession(ctx, "prod", b, now.Add(time.Second), false)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "agent ag1 is connected to member s1") {
		t.Fatalf("claim of a live session: %v", err)
	}
	owners, err := cs.AgentSessionOwners(ctx, "prod", []string{"ag1", "nobody"}, now.Add(time.Second))
	if err != nil || len(owners) != 1 || owners["ag1"].Member != "s1" || owners["ag1"].Advertise != "http://10.0.0.1:13081" || owners["ag1"].Token != 2 {
		t.Fatalf("owners: %+v %v", owners, err)
	}
	// By force (the agent proved its secret): s2 holds it with token 3,
	// and s1's late release of token 2 does not clear it.
	if got, err = cs.ClaimAgentSession(ctx, "prod", b, now.Add(time.Second), true); err != nil || got.Token != 3 || got.Member != "s2" {
		t.Fatalf("forced claim: %+v %v", got, err)
	}
	if err := cs.ReleaseAgentSession(ctx, "ag1", "s1", "i1", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release by the old holder: %v", err)
	}
	if err := cs.ReleaseAgentSession(ctx, "ag1", "s2", "i2", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release with an old token: %v", err)
	}
	// Once s2's lease ended, s1 (renewed) takes it without force.
	later := now.Add(lease + time.Second)
	join("s1", "i1", "http://10.0.0.1:13081", later)
	if got, err = cs.ClaimAgentSession(ctx, "prod", a, later, false); err != nil || got.Token != 4 || got.Member != "s1" {
		t.Fatalf("claim after the holder's lease: %+v %v", got, err)
	}
	// Listing every live session; s2's own (expired) rows are left out.
	if _, err := cs.ClaimAgentSession(ctx, "prod", AgentSession{AgentID: "ag2", Member: "s2", Instance: "i2"}, now, false); err != nil {
		t.Fatal(err)
	}
	if owners, err = cs.AgentSessionOwners(ctx, "prod", nil, later); err != nil || len(owners) != 1 || owners["ag1"].Token != 4 {
		t.Fatalf("all owners: %+v %v", owners, err)
	}
	// Rows of an expired member stay (it may renew); those of a member
	// that left go.
	if n, err := cs.ForgetAgentSessions(ctx, "prod"); err != nil || n != 0 {
		t.Fatalf("forget with s2 expired: %d %v", n, err)
	}
	if err := cs.LeaveCluster(ctx, "prod", "s2", "i2"); err != nil {
		t.Fatal(err)
	}
	if n, err := cs.ForgetAgentSessions(ctx, "prod"); err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	if err := cs.ReleaseAgentSession(ctx, "ag1", "s1", "i1", 4); err != nil {
		t.Fatalf("release by the holder: %v", err)
	}
	if owners, err = cs.AgentSessionOwners(ctx, "prod", nil, later); err != nil || len(owners) != 0 {
		t.Fatalf("after release: %+v %v", owners, err)
	}
	// A released agent's tokens go on from where they were.
	if got, err = cs.ClaimAgentSession(ctx, "prod", b, later, false); err != nil || got.Token != 5 {
		t.Fatalf("claim after release: %+v %v", got, err)
	}
	for _, bad := range []AgentSession{{Member: "s1", Instance: "i1"}, {AgentID: "x", Instance: "i1"}, {AgentID: strings.Repeat("x", 200), Member: "s1", Instance: "i1"}} {
		if _, err := cs.ClaimAgentSession(ctx, "prod", bad, now, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("claim %+v: %v, want ErrInvalid", bad, err)
		}
	}
}
