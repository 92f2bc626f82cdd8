package store

import (
	"context"
	"testing"
	"time"
)

// BenchmarkPutResults10k stores the results of a 10,000-agent fleet task
// (upserts after the first round) on each backend.
func BenchmarkPutResults10k(b *testing.B) {
	for _, bk := range []struct {
		name string
		nc   newConfig
	}{{"sqlite", sqliteTestConfig}, {"mysql", mysqlTestConfig}} {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b, bk.nc(b))
			task, err := s.CreateTask(ctx, Task{Kind: KindFleet})
			if err != nil {
				b.Fatal(err)
			}
			rs := tenK(task.ID)
			for b.Loop() {
				if err := s.PutResults(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/10000, "µs/result")
		})
	}
}

// BenchmarkExecWrites is the store's share of one exec through the API
// (SQLite): the task, its running result row, the final row, the task's
// final state — each timed on its own.
func BenchmarkExecWrites(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, sqliteTestConfig(b))
	now := time.Now()
	var create, running, final, state time.Duration
	for b.Loop() {
		t0 := time.Now()
		task, err := s.CreateTask(ctx, Task{Kind: KindExec, State: TaskRunning, CreatedAt: now, StartedAt: now, Spec: []byte(`{"cmd":"true"}`)})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		r := Result{TaskID: task.ID, AgentID: "a1", State: ResultRunning, StartedAt: now}
		if err := s.PutResults(ctx, []Result{r}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		r.State, r.EndedAt = ResultOK, now
		if err := s.PutResults(ctx, []Result{r}); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := s.UpdateTaskState(ctx, task.ID, TaskDone, now, ""); err != nil {
			b.Fatal(err)
		}
		create, running, final, state = create+t1.Sub(t0), running+t2.Sub(t1), final+t3.Sub(t2), state+time.Since(t3)
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(us(create), "µs-create")
	b.ReportMetric(us(running), "µs-running-row")
	b.ReportMetric(us(final), "µs-final-row")
	b.ReportMetric(us(state), "µs-task-state")
}

// BenchmarkExecCommits is the store's share of one synchronous exec through
// the API (SQLite), audit entry included: "separate" as the exec path wrote
// it before issue 21 (five transactions), "combined" as it writes it now
// (three). Compare allocs/op and the syscalls per op (strace -c), which
// hold under load, rather than the time.
func BenchmarkExecCommits(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	spec := []byte(`{"cmd":"true"}`)
	audit := AuditEntry{Actor: "op", Action: "POST /api/exec/{id}/run", Target: "a1", Agent: "a1", Remote: "127.0.0.1:5000", Status: 200, RequestID: "r1", Result: "ok"}
	b.Run("separate", func(b *testing.B) {
		s := openStore(b, sqliteTestConfig(b))
		for b.Loop() {
			task, err := s.CreateTask(ctx, Task{Kind: KindExec, State: TaskRunning, CreatedAt: now, StartedAt: now, Spec: spec})
			must(b, err)
			r := Result{TaskID: task.ID, AgentID: "a1", State: ResultRunning, StartedAt: now}
			must(b, s.PutResults(ctx, []Result{r}))
			r.State, r.EndedAt = ResultOK, now
			must(b, s.PutResults(ctx, []Result{r}))
			must(b, s.UpdateTaskState(ctx, task.ID, TaskDone, now, ""))
			_, err = s.AppendAudit(ctx, audit)
			must(b, err)
		}
	})
	b.Run("combined", func(b *testing.B) {
		s := openStore(b, sqliteTestConfig(b))
		for b.Loop() {
			r := Result{AgentID: "a1", State: ResultRunning, StartedAt: now}
			task, err := s.CreateTaskResults(ctx, Task{Kind: KindExec, State: TaskRunning, CreatedAt: now, StartedAt: now, Spec: spec}, []Result{r})
			must(b, err)
			r.TaskID, r.State, r.EndedAt = task.ID, ResultOK, now
			must(b, s.PutResultsStates(ctx, []Result{r}, []TaskStateChange{{ID: task.ID, State: TaskDone, At: now}}))
			_, err = s.AppendAudit(ctx, audit)
			must(b, err)
		}
	})
}
