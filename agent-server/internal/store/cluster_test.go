package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClusterMembersSQLite(t *testing.T) { runClusterSuite(t, sqliteTestConfig) }
func TestClusterMembersMySQL(t *testing.T)  { runClusterSuite(t, mysqlTestConfig) }

// runClusterSuite walks a member id through its life: joined, held against
// another server, renewed, taken over after its lease, forgotten.
func runClusterSuite(t *testing.T, nc newConfig) {
	ctx := context.Background()
	st := openStore(t, nc(t))
	cs, ok := st.(ClusterStore)
	if !ok {
		t.Fatalf("%T does not implement ClusterStore", st)
	}
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	lease := 15 * time.Second
	a := ClusterMember{Cluster: "prod", ID: "s1", Instance: "i-a", Advertise: "http://10.0.0.1:13081", Version: "1.2.3",
		LeaseUntil: now.Add(lease), Sessions: 3}
	got, err := cs.JoinCluster(ctx, a, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 1 || got.Instance != "i-a" || !got.StartedAt.Equal(now) || !got.LeaseUntil.Equal(now.Add(lease)) || got.Sessions != 3 {
		t.Fatalf("joined: %+v", got)
	}
	// Another cluster's member of the same id is another row.
	other := a
	other.Cluster, other.Instance = "staging", "i-x"
	if _, err := cs.JoinCluster(ctx, other, now); err != nil {
		t.Fatalf("same id in another cluster: %v", err)
	}

	// A second server with the same id, elsewhere, while the lease runs.
	b := a
	b.Instance, b.Advertise = "i-b", "http://10.0.0.2:13081"
	_, err = cs.JoinCluster(ctx, b, now.Add(time.Second))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "member id s1 is held by the server at http://10.0.0.1:13081") {
		t.Fatalf("join of a held id: %v", err)
	}

	// Renewals move the lease while the instance holds the row.
	a.RenewedAt, a.LeaseUntil, a.Sessions = now.Add(5*time.Second), now.Add(5*time.Second+lease), 7
	if err := cs.RenewClusterMember(ctx, a); err != nil {
		t.Fatal(err)
	}
	list, err := cs.ClusterMembers(ctx, "prod")
	if err != nil || len(list) != 1 || list[0].Sessions != 7 || !list[0].LeaseUntil.Equal(a.LeaseUntil) || !list[0].RenewedAt.Equal(a.RenewedAt) {
		t.Fatalf("after renewal: %+v %v", list, err)
	}

	// Once the lease has ended, b takes the id: a new epoch, and a's
	// renewals and leave fail from then on.
	later := a.LeaseUntil.Add(time.Millisecond)
	b.LeaseUntil = later.Add(lease)
	got, err = cs.JoinCluster(ctx, b, later)
	if err != nil || got.Epoch != 2 || got.Instance != "i-b" || got.Advertise != b.Advertise {
		t.Fatalf("take-over after the lease: %+v %v", got, err)
	}
	if err := cs.RenewClusterMember(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renewal by the old instance: %v", err)
	}
	if err := cs.LeaveCluster(ctx, "prod", "s1", "i-a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("leave by the old instance: %v", err)
	}

	// b restarted (a new instance at the same address) takes its id at
	// once, lease or not.
	b2 := b
	b2.Instance = "i-b2"
	if got, err = cs.JoinCluster(ctx, b2, later); err != nil || got.Epoch != 3 {
		t.Fatalf("restart at the same address: %+v %v", got, err)
	}

	// Expired rows are forgotten, live ones kept.
	c := ClusterMember{Cluster: "prod", ID: "s2", Instance: "i-c", LeaseUntil: now.Add(lease)}
	if _, err := cs.JoinCluster(ctx, c, now); err != nil {
		t.Fatal(err)
	}
	n, err := cs.ForgetClusterMembers(ctx, "prod", now.Add(lease+time.Second))
	if err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	list, err = cs.ClusterMembers(ctx, "prod")
	if err != nil || len(list) != 1 || list[0].ID != "s1" || list[0].Epoch != 3 {
		t.Fatalf("after forget: %+v %v", list, err)
	}
	if err := cs.LeaveCluster(ctx, "prod", "s1", "i-b2"); err != nil {
		t.Fatal(err)
	}
	if list, err = cs.ClusterMembers(ctx, "prod"); err != nil || len(list) != 0 {
		t.Fatalf("after leave: %+v %v", list, err)
	}
	if list, err = cs.ClusterMembers(ctx, "staging"); err != nil || len(list) != 1 {
		t.Fatalf("other cluster: %+v %v", list, err)
	}

	for _, bad := range []ClusterMember{
		{ID: "s1", Instance: "i", LeaseUntil: now},
		{Cluster: "prod", ID: strings.Repeat("x", MaxClusterMemberID+1), Instance: "i", LeaseUntil: now},
		{Cluster: "prod", ID: "s1", Instance: "i"},
		{Cluster: "prod", ID: "s1", Instance: "i", LeaseUntil: now, Sessions: -1},
	} {
		if _, err := cs.JoinCluster(ctx, bad, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("JoinCluster(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}
