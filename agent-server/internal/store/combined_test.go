package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testCombinedWrites: CreateTaskResults and PutResultsStates store all or
// nothing, the way the exec path relies on (one commit where it took two).
func testCombinedWrites(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	now := time.Now()

	// The task and its running row land together, the row under the new id.
	task, err := s.CreateTaskResults(ctx, Task{Kind: KindExec, State: TaskRunning, StartedAt: now},
		[]Result{{TaskID: "ignored", AgentID: "a1", State: ResultRunning, StartedAt: now}})
	must(t, err)
	if r, err := s.GetResult(ctx, task.ID, "a1"); err != nil || r.State != ResultRunning {
		t.Fatalf("running row: %+v, %v", r, err)
	}
	// A bad row stores no task either.
	_, err = s.CreateTaskResults(ctx, Task{ID: "t-bad", Kind: KindExec}, []Result{{AgentID: "a1", State: "bogus"}})
	wantErr(t, err, ErrInvalid, "bogus")
	if _, err := s.GetTask(ctx, "t-bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("task of a refused create: %v, want not found", err)
	}
	// An id in use: neither is stored.
	_, err = s.CreateTaskResults(ctx, Task{ID: task.ID, Kind: KindExec}, []Result{{AgentID: "a2", State: ResultRunning}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("create with a used id: %v, want conflict", err)
	}
	if _, err := s.GetResult(ctx, task.ID, "a2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("row of a refused create: %v, want not found", err)
	}

	// The final row and the task state in one call.
	final := Result{TaskID: task.ID, AgentID: "a1", State: ResultOK, StartedAt: now, EndedAt: now, PID: 9}
	must(t, s.PutResultsStates(ctx, []Result{final}, []TaskStateChange{{ID: task.ID, State: TaskDone, At: now}}))
	if r, err := s.GetResult(ctx, task.ID, "a1"); err != nil || r.State != ResultOK || r.PID != 9 {
		t.Fatalf("final row: %+v, %v", r, err)
	}
	if got, err := s.GetTask(ctx, task.ID); err != nil || got.State != TaskDone || got.FinishedAt.IsZero() {
		t.Fatalf("task: %+v, %v", got, err)
	}
	// A task final already is skipped, the rows still stored.
	final.ExitCode = 3
	must(t, s.PutResultsStates(ctx, []Result{final}, []TaskStateChange{{ID: task.ID, State: TaskFailed, Msg: "late"}}))
	if got, _ := s.GetTask(ctx, task.ID); got.State != TaskDone {
		t.Fatalf("task left %s, want done kept", got.State)
	}
	if r, _ := s.GetResult(ctx, task.ID, "a1"); r.ExitCode != 3 {
		t.Fatalf("row beside a skipped state: exit %d, want 3", r.ExitCode)
	}
	// An unknown task in the changes: nothing is stored.
	other, err := s.CreateTask(ctx, Task{Kind: KindExec, State: TaskRunning})
	must(t, err)
	err = s.PutResultsStates(ctx, []Result{{TaskID: other.ID, AgentID: "a1", State: ResultOK}},
		[]TaskStateChange{{ID: other.ID, State: TaskDone}, {ID: "nope", State: TaskDone}})
	wantErr(t, err, ErrNotFound, "nope")
	if _, err := s.GetResult(ctx, other.ID, "a1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("row of a rolled back write: %v, want not found", err)
	}
	if got, _ := s.GetTask(ctx, other.ID); got.State != TaskRunning {
		t.Fatalf("task of a rolled back write: %s, want running", got.State)
	}
	// An unknown task in the rows: nothing is stored.
	err = s.PutResultsStates(ctx, []Result{{TaskID: "nope", AgentID: "a1", State: ResultOK}},
		[]TaskStateChange{{ID: other.ID, State: TaskDone}})
	wantErr(t, err, ErrNotFound, "nope")
	if got, _ := s.GetTask(ctx, other.ID); got.State != TaskRunning {
		t.Fatalf("task of a rolled back write: %s, want running", got.State)
	}
	err = s.PutResultsStates(ctx, nil, []TaskStateChange{{ID: other.ID, State: "bogus"}})
	wantErr(t, err, ErrInvalid, "bogus")
}
