package cluster_test

import (
	"context"
	"testing"

	"github.com/agentfleet/jkframe/eventually"

	"github.com/agentfleet/agent-server/internal/cluster"
	"github.com/agentfleet/agent-server/internal/store"
)

// A draining member is listed so by itself and, from its announcement on
// NATS, by the others, whose balancer sends it no agents; its tasks are
// handed over at once (their lease ended, takeable by b) and its renewals
// do not give them a lease again.
func TestDrainMember(t *testing.T) {
	ctx := context.Background()
	st, natsURL, clk := setup(t)
	a := newMember(t, st, natsURL, clk, "a", "http://10.0.0.1:13081", 0)
	b := newMember(t, st, natsURL, clk, "b", "http://10.0.0.2:13081", 9)
	for _, m := range []member{a, b} {
		if err := m.Join(ctx); err != nil {
			t.Fatal(err)
		}
		eventually.NoError(t, m.ID()+" ready", m.Ready)
	}
	full := st.(store.Store)
	_, err := full.CreateTask(ctx, store.Task{Kind: store.KindFleet, State: store.TaskRunning, StartedAt: clk.Now(), Owner: a.TaskOwner()})
	if err != nil {
		t.Fatal(err)
	}
	takeable := func() int {
		list, err := full.(store.TaskOwnerStore).TasksToTakeOver(ctx, []store.TaskKind{store.KindFleet}, b.TaskOwner(), clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	if n := takeable(); n != 0 {
		t.Fatalf("%d takeable before the drain", n)
	}
	if _, err := b.Members(ctx); err != nil {
		t.Fatal(err)
	}
	// Before: b, over its share (9 against a's 0), sends a handshake to a.
	if to, ok := cluster.Balance("b", 9, false, b.Loads(clk.Now()), cluster.Band, 0); !ok || to.ID != "a" {
		t.Fatalf("before the drain b redirects to %+v %v, want a", to, ok)
	}

	a.SetDraining()
	if !a.Draining() {
		t.Fatal("a not draining")
	}
	if n, err := a.HandOverTasks(ctx); err != nil || n != 1 {
		t.Fatalf("HandOverTasks = %d, %v; want 1", n, err)
	}
	if n := takeable(); n != 1 {
		t.Fatalf("%d takeable after the hand-over, want 1", n)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if n := takeable(); n != 1 {
		t.Fatal("a's renewal gave its handed-over task a lease again")
	}
	list, err := a.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Draining != (s.ID == "a") {
			t.Errorf("a lists %s draining %v", s.ID, s.Draining)
		}
	}
	eventually.True(t, "b learns that a drains", func() bool {
		for _, l := range b.Loads(clk.Now()) {
			if l.ID == "a" {
				return l.Draining
			}
		}
		return false
	})
	if to, ok := cluster.Balance("b", 9, false, b.Loads(clk.Now()), cluster.Band, 0); ok {
		t.Fatalf("b redirects to %+v while a drains", to)
	}
	list, err = b.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Draining != (s.ID == "a") {
			t.Errorf("b lists %s draining %v", s.ID, s.Draining)
		}
	}

}
