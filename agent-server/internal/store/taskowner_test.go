package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTaskOwnersSQLite(t *testing.T) { runTaskOwnerSuite(t, sqliteTestConfig) }
func TestTaskOwnersMySQL(t *testing.T)  { runTaskOwnerSuite(t, mysqlTestConfig) }

// runTaskOwnerSuite walks tasks through their ownership: owned at creation
// (token 1) or claimed once, renewed in one UPDATE per member, taken over
// after the lease by exactly one of two racing members (token + 1), and
// state changes fenced by the token: the previous owner's are refused.
func runTaskOwnerSuite(t *testing.T, nc newConfig) {
	ctx := context.Background()
	st := openStore(t, nc(t))
	ts, ok := st.(TaskOwnerStore)
	if !ok {
		t.Fatalf("%T does not implement TaskOwnerStore", st)
	}
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	lease := 15 * time.Second
	s1 := TaskOwner{Member: "s1", Instance: "i1", Until: now.Add(lease)}
	s2 := TaskOwner{Member: "s2", Instance: "i2", Until: now.Add(lease)}
	s3 := TaskOwner{Member: "s3", Instance: "i3", Until: now.Add(lease)}

	// Owned at creation.
	a, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskRunning, StartedAt: now, Owner: s1})
	if err != nil || a.Owner.Token != 1 {
		t.Fatalf("create owned: %+v %v", a.Owner, err)
	}
	if o, err := ts.TaskOwnerOf(ctx, a.ID); err != nil || o.Member != "s1" || o.Instance != "i1" || o.Token != 1 || !o.Until.Equal(s1.Until) {
		t.Fatalf("owner of a: %+v %v", o, err)
	}
	// Unowned (a single server): stays so, and is never listed to take over.
	u, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskRunning, StartedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := ts.TaskOwnerOf(ctx, u.ID); err != nil || o != (TaskOwner{}) {
		t.Fatalf("owner of an unowned task: %+v %v", o, err)
	}
	// Claimed once by s1 (token 1); a second claim names the owner.
	p, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskPending})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := ts.ClaimTask(ctx, p.ID, s1); err != nil || o.Member != "s1" || o.Token != 1 {
		t.Fatalf("claim: %+v %v", o, err)
	}
	if _, err := ts.ClaimTask(ctx, p.ID, s2); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "owned by member s1") {
		t.Fatalf("second claim: %v", err)
	}
	if _, err := ts.ClaimTask(ctx, "nosuchtask", s2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("claim of no task: %v", err)
	}
	if _, err := ts.ClaimTask(ctx, u.ID, TaskOwner{Member: "s2"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("claim without instance: %v", err)
	}
	// A final task is not claimed.
	f, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskDone})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.ClaimTask(ctx, f.ID, s2); !errors.Is(err, ErrConflict) {
		t.Fatalf("claim of a done task: %v", err)
	}

	// Nothing to take over while s1's lease runs.
	if l, err := ts.TasksToTakeOver(ctx, []TaskKind{KindFleet, KindLayout}, s2, now.Add(time.Second)); err != nil || len(l) != 0 {
		t.Fatalf("to take over during the lease: %+v %v", l, err)
	}
	// Renewal moves every running task of s1 in one statement.
	renewed := now.Add(10 * time.Second).Add(lease)
	if n, err := ts.RenewTaskLeases(ctx, "s1", "i1", renewed); err != nil || n != 2 {
		t.Fatalf("renew: %d %v", n, err)
	}
	if n, err := ts.RenewTaskLeases(ctx, "s1", "i-old", renewed); err != nil || n != 0 {
		t.Fatalf("renew by another instance: %d %v", n, err)
	}
	if l, err := ts.TasksToTakeOver(ctx, []TaskKind{KindFleet}, s2, now.Add(lease+time.Second)); err != nil || len(l) != 0 {
		t.Fatalf("to take over after a renewal: %+v %v", l, err)
	}

	// Once the lease has ended: both tasks listed; s2 and s3 race for each,
	// exactly one wins, with token 2.
	after := renewed.Add(time.Millisecond)
	s2.Until, s3.Until = after.Add(lease), after.Add(lease)
	l, err := ts.TasksToTakeOver(ctx, []TaskKind{KindFleet}, s2, after)
	if err != nil || len(l) != 2 {
		t.Fatalf("to take over after the lease: %+v %v", l, err)
	}
	if l[0].ID != a.ID { // the store's clock is fixed: same created_at
		l[0], l[1] = l[1], l[0]
	}
	if l[0].ID != a.ID || l[1].ID != p.ID || l[0].Owner.Member != "s1" || l[0].Owner.Token != 1 || l[1].State != TaskPending {
		t.Fatalf("to take over after the lease: %+v", l)
	}
	if l, err := ts.TasksToTakeOver(ctx, []TaskKind{KindLayout}, s2, after); err != nil || len(l) != 0 {
		t.Fatalf("other kinds: %+v %v", l, err)
	}
	for round := range 5 {
		id := a.ID
		ot := l[0]
		if round > 0 { // a fresh task of s1's each round, its lease ended
			x, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskRunning, Owner: TaskOwner{Member: "s1", Instance: "i1", Until: now}})
			if err != nil {
				t.Fatal(err)
			}
			id, ot = x.ID, OwnedTask{ID: x.ID, Kind: KindFleet, Owner: TaskOwner{Member: "s1", Instance: "i1", Token: 1}}
		}
		var wg sync.WaitGroup
		won := make([]bool, 2)
		got := make([]TaskOwner, 2)
		errs := make([]error, 2)
		for i, o := range []TaskOwner{s2, s3} {
			wg.Go(func() { got[i], won[i], errs[i] = ts.TakeOverTask(ctx, ot, o, after) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || won[0] == won[1] {
			t.Fatalf("round %d: race: won %v, errors %v", round, won, errs)
		}
		w := 0
		if won[1] {
			w = 1
		}
		cur, err := ts.TaskOwnerOf(ctx, id)
		if err != nil || cur.Token != 2 || cur.Member != got[w].Member || got[w].Token != 2 {
			t.Fatalf("round %d: owner %+v (winner said %+v) %v", round, cur, got[w], err)
		}
	}
	// s2 takes p over too (nobody races), then s1 wakes up: its fenced
	// changes are refused, naming the new owner; s2's go through.
	op, won, err := ts.TakeOverTask(ctx, l[1], s2, after)
	if err != nil || !won || op.Token != 2 {
		t.Fatalf("take over p: %+v %v %v", op, won, err)
	}
	// A stale listing (token 1) cannot take it again.
	if _, won, err := ts.TakeOverTask(ctx, l[1], s3, after.Add(time.Hour)); err != nil || won {
		t.Fatalf("take over with a stale token: %v %v", won, err)
	}
	err = ts.UpdateTaskStateOwned(ctx, p.ID, 1, TaskRunning, after, "")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "owned by member s2 now") {
		t.Fatalf("s1 starts p after the takeover: %v", err)
	}
	if err := ts.UpdateTaskStateOwned(ctx, p.ID, 1, TaskDone, after, ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("s1 finishes p after the takeover: %v", err)
	}
	if got, err := st.GetTask(ctx, p.ID); err != nil || got.State != TaskPending {
		t.Fatalf("p after s1's refused changes: %+v %v", got, err)
	}
	if err := st.PutResultsStates(ctx, nil, []TaskStateChange{{ID: p.ID, State: TaskDone, OwnerToken: 1}}); err != nil {
		t.Fatalf("a fenced change in a batch is skipped as a conflict: %v", err)
	}
	if got, _ := st.GetTask(ctx, p.ID); got.State != TaskPending {
		t.Fatalf("p after s1's refused batch change: %s", got.State)
	}
	if err := ts.UpdateTaskStateOwned(ctx, p.ID, 2, TaskRunning, after, ""); err != nil {
		t.Fatalf("s2 starts p: %v", err)
	}
	if err := ts.UpdateTaskStateOwned(ctx, p.ID, 2, TaskDone, after, "fine"); err != nil {
		t.Fatalf("s2 finishes p: %v", err)
	}
	if got, err := st.GetTask(ctx, p.ID); err != nil || got.State != TaskDone || got.Msg != "fine" {
		t.Fatalf("p: %+v %v", got, err)
	}
	// A final task: the fenced change says so, is not listed, not taken over.
	if err := ts.UpdateTaskStateOwned(ctx, p.ID, 2, TaskFailed, after, ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "task is done") {
		t.Fatalf("fenced change of a done task: %v", err)
	}
	if _, won, err := ts.TakeOverTask(ctx, OwnedTask{ID: p.ID, Owner: op}, s3, after.Add(time.Hour)); err != nil || won {
		t.Fatalf("take over of a done task: %v %v", won, err)
	}
	if err := ts.UpdateTaskStateOwned(ctx, "nosuchtask", 1, TaskDone, after, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fenced change of no task: %v", err)
	}
	// Unfenced changes (a single server) are as before.
	if err := st.UpdateTaskState(ctx, u.ID, TaskDone, after, ""); err != nil {
		t.Fatal(err)
	}

	// A new instance of s1 (restarted) takes its previous instance's tasks
	// at once, lease running or not; s2 may not.
	b, err := st.CreateTask(ctx, Task{Kind: KindLayout, State: TaskRunning, Owner: TaskOwner{Member: "s1", Instance: "i1", Until: after.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := ts.TasksToTakeOver(ctx, []TaskKind{KindLayout}, s2, after); err != nil || len(l) != 0 {
		t.Fatalf("s2 lists a live task of s1: %+v %v", l, err)
	}
	s1b := TaskOwner{Member: "s1", Instance: "i1b", Until: after.Add(lease)}
	l, err = ts.TasksToTakeOver(ctx, []TaskKind{KindLayout}, s1b, after)
	if err != nil || len(l) != 1 || l[0].ID != b.ID {
		t.Fatalf("the new instance lists: %+v %v", l, err)
	}
	if o, won, err := ts.TakeOverTask(ctx, l[0], s1b, after); err != nil || !won || o.Instance != "i1b" || o.Token != 2 {
		t.Fatalf("the new instance takes over: %+v %v %v", o, won, err)
	}
	if n, err := ts.RenewTaskLeases(ctx, "s1", "i1", after.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("the old instance renews nothing: %d %v", n, err)
	}
}

func TestLiveTaskOwnerSQLite(t *testing.T) { runLiveTaskOwner(t, sqliteTestConfig) }
func TestLiveTaskOwnerMySQL(t *testing.T)  { runLiveTaskOwner(t, mysqlTestConfig) }

// runLiveTaskOwner: the member a task's routes are forwarded to is its
// owner while that member's row is live, whatever its instance; nobody
// for a task unowned, unknown, or whose owner's lease has ended.
func runLiveTaskOwner(t *testing.T, nc newConfig) {
	ctx := context.Background()
	st := openStore(t, nc(t))
	cs := st.(ClusterStore)
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	lease := 15 * time.Second
	m := ClusterMember{Cluster: "c1", ID: "s1", Instance: "i1", Advertise: "http://10.0.0.1:13081", Version: "v",
		StartedAt: now, RenewedAt: now, LeaseUntil: now.Add(lease)}
	if _, err := cs.JoinCluster(ctx, m, now); err != nil {
		t.Fatal(err)
	}
	owned, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskRunning, StartedAt: now,
		Owner: TaskOwner{Member: "s1", Instance: "i-previous", Until: now.Add(lease)}})
	if err != nil {
		t.Fatal(err)
	}
	unowned, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskRunning, StartedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	check := func(id string, at time.Time, cluster, member, addr string, ok bool) {
		t.Helper()
		gm, ga, gok, err := cs.LiveTaskOwner(ctx, cluster, id, at)
		if err != nil || gm != member || ga != addr || gok != ok {
			t.Errorf("LiveTaskOwner(%s, %s, %s) = %q %q %v %v, want %q %q %v", cluster, id, at, gm, ga, gok, err, member, addr, ok)
		}
	}
	check(owned.ID, now.Add(time.Second), "c1", "s1", m.Advertise, true)
	check(owned.ID, now.Add(time.Second), "c2", "", "", false)       // another cluster's member
	check(owned.ID, now.Add(lease+time.Second), "c1", "", "", false) // the owner's lease ended
	check(unowned.ID, now.Add(time.Second), "c1", "", "", false)
	check("nosuchtask", now.Add(time.Second), "c1", "", "", false)
}
