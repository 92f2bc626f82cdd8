package cluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/agent-server/internal/cluster"
)

// TestSessionOwnership: s1 holds an agent; s2 is refused it unproven and
// takes it proven after asking s1 (over NATS) to close its session; s1's
// release of its old token changes nothing; Owner follows the move;
// once s2's lease has ended, s1 takes the agent back without asking.
func TestSessionOwnership(t *testing.T) {
	st, natsURL, clk := setup(t)
	ctx := context.Background()
	s1 := newMember(t, st, natsURL, clk, "s1", "http://10.0.0.1:13081", 0)
	s2 := newMember(t, st, natsURL, clk, "s2", "http://10.0.0.2:13081", 0)
	for _, m := range []member{s1, s2} {
		if err := m.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var released []string
	stop, err := s1.ServeReleases(func(agent string, token int64) {
		mu.Lock()
		defer mu.Unlock()
		released = append(released, agent)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	tok1, err := s1.Claim(ctx, "a1", false)
	if err != nil || tok1 != 1 {
		t.Fatalf("s1 claims a1: %d %v", tok1, err)
	}
	if _, err := s2.Claim(ctx, "a1", false); !errors.Is(err, cluster.ErrHeld) {
		t.Fatalf("s2 claims a1 unproven: %v", err)
	}
	o, ok, err := s2.Owner(ctx, "a1")
	if err != nil || !ok || o.Member != "s1" || o.Advertise != "http://10.0.0.1:13081" {
		t.Fatalf("owner of a1 at s2: %+v %v %v", o, ok, err)
	}
	tok2, err := s2.Claim(ctx, "a1", true)
	if err != nil || tok2 != 2 {
		t.Fatalf("s2 claims a1 proven: %d %v", tok2, err)
	}
	mu.Lock()
	if len(released) != 1 || released[0] != "a1" {
		t.Errorf("release requests at s1: %v", released)
	}
	mu.Unlock()
	if err := s1.Release(ctx, "a1", tok1); err != nil {
		t.Fatalf("s1's late release: %v", err)
	}
	// s2's cached owner was dropped by its claim; s1 reads the store.
	if o, ok, _ := s2.Owner(ctx, "a1"); !ok || o.Member != "s2" {
		t.Errorf("owner at s2 after its claim: %+v %v", o, ok)
	}
	s1.ForgetOwner("a1")
	if o, ok, _ := s1.Owner(ctx, "a1"); !ok || o.Member != "s2" || o.Token != 2 {
		t.Errorf("owner at s1 after the move: %+v %v", o, ok)
	}

	// s2 stops renewing: once its lease has ended, s1 (renewed) takes a1
	// without force, and nobody is listed as holding it meanwhile.
	clk.Add(lease + time.Second)
	if err := s1.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if all, err := s1.Owners(ctx, nil); err != nil || len(all) != 0 {
		t.Errorf("owners with s2 expired: %+v %v", all, err)
	}
	tok3, err := s1.Claim(ctx, "a1", false)
	if err != nil || tok3 != 3 {
		t.Fatalf("s1 takes a1 back: %d %v", tok3, err)
	}
	mu.Lock()
	if len(released) != 1 {
		t.Errorf("a release was asked of s1 for its own agent: %v", released)
	}
	mu.Unlock()
	if err := s1.Release(ctx, "a1", tok3); err != nil {
		t.Fatal(err)
	}
	s1.ForgetOwner("a1")
	if _, ok, err := s1.Owner(ctx, "a1"); ok || err != nil {
		t.Errorf("owner after release: %v %v", ok, err)
	}
}

// TestSessionsAfterRejoin: a member whose row was removed (its lease
// lapsed past the grace) has its sessions released by the others; when it
// joins again, Rejoined lets it take back those it still holds.
func TestSessionsAfterRejoin(t *testing.T) {
	st, natsURL, clk := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	met, err := cluster.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var rejoined int
	var s1 *cluster.Member
	s1, err = cluster.New(cluster.Options{Name: "test", MemberID: "s1", Advertise: "http://10.0.0.1:13081", Store: st,
		NATS: cluster.NATS{URLs: natsURL}, Lease: lease, Grace: grace, Load: func() int { return 1 }, Now: clk.Now, Metrics: met,
		Rejoined: func(ctx context.Context) error {
			rejoined++
			_, err := s1.Claim(ctx, "a1", false)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s1.Close(context.Background()) })
	s2 := newMember(t, st, natsURL, clk, "s2", "http://10.0.0.2:13081", 0)
	for _, j := range []func(context.Context) error{s1.Join, s2.Join} {
		if err := j(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s1.Claim(ctx, "a1", false); err != nil {
		t.Fatal(err)
	}
	// s1 is silent past its lease and the grace; s2 removes its row and
	// releases its sessions.
	clk.Add(lease + grace + time.Second)
	s2.Tick(ctx)
	if all, err := s2.Owners(ctx, nil); err != nil || len(all) != 0 {
		t.Fatalf("owners after s1 was removed: %+v %v", all, err)
	}
	if err := s1.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := s2.Owners(ctx, nil)
	if rejoined != 1 || err != nil || all["a1"].Member != "s1" || all["a1"].Token != 2 {
		t.Fatalf("after s1 joined again (%d): %+v %v", rejoined, all, err)
	}
}
