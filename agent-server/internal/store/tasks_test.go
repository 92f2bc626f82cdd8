package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func testTaskCreateGetList(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, err := s.CreateTask(ctx, Task{Kind: KindExec, Spec: json.RawMessage(`{"cmd":"true"}`), CreatedBy: "ops"})
	must(t, err)
	if len(task.ID) != 20 || task.State != TaskPending || !task.CreatedAt.Equal(utc(t0)) {
		t.Fatalf("created %+v", task)
	}
	got, err := s.GetTask(ctx, task.ID)
	must(t, err)
	if got.ID != task.ID || got.Kind != KindExec || string(got.Spec) != `{"cmd":"true"}` || got.CreatedBy != "ops" ||
		!got.CreatedAt.Equal(task.CreatedAt) || !got.StartedAt.IsZero() || got.Summary != (Summary{}) {
		t.Fatalf("got %+v, want %+v", got, task)
	}
	_, err = s.CreateTask(ctx, Task{ID: task.ID, Kind: KindExec})
	wantErr(t, err, ErrConflict, task.ID)
	for _, tc := range []struct {
		t    Task
		want string
	}{
		{Task{Kind: "shell"}, `task kind "shell"`},
		{Task{Kind: KindFleet, State: "stuck"}, `task state "stuck"`},
		{Task{Kind: KindFleet, Spec: json.RawMessage(`nope`)}, "task spec is not valid JSON"},
		{Task{Kind: KindFleet, ID: strings.Repeat("t", 65)}, "task id longer than 64 characters"},
	} {
		_, err := s.CreateTask(ctx, tc.t)
		wantErr(t, err, ErrInvalid, tc.want)
	}
	_, err = s.GetTask(ctx, "missing")
	wantErr(t, err, ErrNotFound, "missing")

	// Ten more, one second apart, alternating kind and creator.
	for i := range 10 {
		_, err := s.CreateTask(ctx, Task{ID: fmt.Sprintf("t%02d", i), Kind: []TaskKind{KindFleet, KindScript}[i%2],
			CreatedBy: []string{"alice", "bob"}[i%2], CreatedAt: t0.Add(time.Duration(i+1) * time.Second)})
		must(t, err)
	}
	must(t, s.UpdateTaskState(ctx, "t03", TaskRunning, t0, ""))
	must(t, s.UpdateTaskState(ctx, "t04", TaskDone, t0, ""))
	taskIDs := func(ts []Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		f     TaskFilter
		total int
		ids   []string
	}{
		{"newest first", TaskFilter{Paging: Paging{Size: 3}}, 11, []string{"t09", "t08", "t07"}},
		{"last page", TaskFilter{Paging: Paging{Page: 4, Size: 3}}, 11, []string{"t00", task.ID}},
		{"beyond", TaskFilter{Paging: Paging{Page: 5, Size: 3}}, 11, nil},
		{"kind", TaskFilter{Kind: KindScript}, 5, []string{"t09", "t07", "t05", "t03", "t01"}},
		{"kinds", TaskFilter{Kinds: []TaskKind{KindFleet, KindExec}, Paging: Paging{Size: 3}}, 6, []string{"t08", "t06", "t04"}},
		{"kinds and kind", TaskFilter{Kinds: []TaskKind{KindLayout}, Kind: KindExec}, 1, []string{task.ID}},
		{"kinds of nothing", TaskFilter{Kinds: []TaskKind{KindUpgrade}}, 0, nil},
		{"creator", TaskFilter{CreatedBy: "alice", Paging: Paging{Size: 2}}, 5, []string{"t08", "t06"}},
		{"unfinished", TaskFilter{States: []TaskState{TaskRunning, TaskPending}, Kind: KindScript}, 5, []string{"t09", "t07", "t05", "t03", "t01"}},
		{"running", TaskFilter{States: []TaskState{TaskRunning}}, 1, []string{"t03"}},
		{"done", TaskFilter{States: []TaskState{TaskDone}}, 1, []string{"t04"}},
	} {
		got, total, err := s.ListTasks(ctx, tc.f)
		must(t, err)
		if total != tc.total || !slices.Equal(taskIDs(got), tc.ids) {
			t.Fatalf("%s: total %d ids %v, want %d %v", tc.name, total, taskIDs(got), tc.total, tc.ids)
		}
	}
}

func testTaskStateTransitions(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	steps := []struct {
		state   TaskState
		at      time.Time
		msg     string
		wantErr error
		errText string
	}{
		{TaskPending, t0, "", nil, ""},
		{TaskRunning, t0.Add(1 * time.Second), "", nil, ""},
		{TaskRunning, t0.Add(2 * time.Second), "", nil, ""}, // resume: StartedAt kept
		{TaskPending, t0, "", ErrConflict, "task is running"},
		{"paused", t0, "", ErrInvalid, `task state "paused"`},
		{TaskCancelled, t0.Add(3 * time.Second), "cancelled by alice", nil, ""},
		{TaskRunning, t0, "", ErrConflict, "task is cancelled"},
		{TaskDone, t0, "", ErrConflict, "task is cancelled"},
		{TaskCancelled, t0, "", ErrConflict, "task is cancelled"},
	}
	task, err := s.CreateTask(ctx, Task{Kind: KindFleet})
	must(t, err)
	for i, st := range steps {
		err := s.UpdateTaskState(ctx, task.ID, st.state, st.at, st.msg)
		if st.wantErr == nil {
			if err != nil {
				t.Fatalf("step %d (%s): %v", i, st.state, err)
			}
			continue
		}
		wantErr(t, err, st.wantErr, st.errText)
	}
	got, _ := s.GetTask(ctx, task.ID)
	if got.State != TaskCancelled || !got.StartedAt.Equal(utc(t0.Add(time.Second))) ||
		!got.FinishedAt.Equal(utc(t0.Add(3*time.Second))) || got.Msg != "cancelled by alice" {
		t.Fatalf("final task %+v", got)
	}
	wantErr(t, s.UpdateTaskState(ctx, "nope", TaskRunning, t0, ""), ErrNotFound, "nope")
	// Straight from pending to failed; zero time means now.
	t2, _ := s.CreateTask(ctx, Task{Kind: KindLayout})
	must(t, s.UpdateTaskState(ctx, t2.ID, TaskFailed, time.Time{}, "bad archive"))
	got, _ = s.GetTask(ctx, t2.ID)
	if got.State != TaskFailed || !got.FinishedAt.Equal(utc(t0)) || !got.StartedAt.IsZero() || got.Msg != "bad archive" {
		t.Fatalf("failed task %+v", got)
	}
}

func testTaskDelete(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	must(t, s.PutResults(ctx, []Result{{TaskID: task.ID, AgentID: "a", State: ResultOK}}))
	if _, err := s.AppendOutput(ctx, task.ID, "a", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	must(t, s.DeleteTask(ctx, task.ID))
	_, err := s.GetTask(ctx, task.ID)
	wantErr(t, err, ErrNotFound, task.ID)
	_, err = s.GetResult(ctx, task.ID, "a")
	wantErr(t, err, ErrNotFound, task.ID)
	if n, _ := s.OutputSize(ctx, task.ID, "a"); n != 0 {
		t.Fatalf("output left: %d bytes", n)
	}
	wantErr(t, s.DeleteTask(ctx, task.ID), ErrNotFound, task.ID)
}

func testResults(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindFleet})
	wantErr(t, s.PutResults(ctx, []Result{{TaskID: "ghost", AgentID: "a", State: ResultPending}}), ErrNotFound, "ghost")
	wantErr(t, s.PutResults(ctx, []Result{{TaskID: task.ID, AgentID: "a", State: "done"}}), ErrInvalid, `result state "done"`)
	wantErr(t, s.PutResults(ctx, []Result{{TaskID: task.ID, State: ResultOK}}), ErrInvalid, "without task or agent id")
	must(t, s.PutResults(ctx, nil))

	full := Result{TaskID: task.ID, AgentID: "a", State: ResultFailed, ExitCode: 2, PID: 4242,
		StartedAt: t0, EndedAt: t0.Add(1500 * time.Millisecond), Msg: "exit status 2",
		OutputHead: []byte("head\x00\xff"), OutputTail: []byte("tail"), Dropped: 100, OutputBytes: 110}
	must(t, s.PutResults(ctx, []Result{full,
		{TaskID: task.ID, AgentID: "b", State: ResultRunning},
		{TaskID: task.ID, AgentID: "c", State: ResultPending}}))
	got, err := s.GetResult(ctx, task.ID, "a")
	must(t, err)
	full.StartedAt, full.EndedAt = utc(full.StartedAt), utc(full.EndedAt)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(full)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("result\n got %s\nwant %s", gj, wj)
	}
	if r, _ := s.GetResult(ctx, task.ID, "c"); r.OutputHead != nil || !r.StartedAt.IsZero() {
		t.Fatalf("pending result %+v", r)
	}
	_, err = s.GetResult(ctx, task.ID, "zz")
	wantErr(t, err, ErrNotFound, "zz")
	sum, err := s.CountResults(ctx, task.ID)
	must(t, err)
	want := Summary{Total: 3, Failed: 1, Running: 1, Pending: 1}
	if sum != want {
		t.Fatalf("summary %+v, want %+v", sum, want)
	}
	tk, _ := s.GetTask(ctx, task.ID)
	if tk.Summary != want {
		t.Fatalf("task summary %+v, want %+v", tk.Summary, want)
	}
	ts, _, _ := s.ListTasks(ctx, TaskFilter{})
	if len(ts) != 1 || ts[0].Summary != want {
		t.Fatalf("listed summary %+v", ts)
	}
	if sum, _ := s.CountResults(ctx, "ghost"); sum != (Summary{}) {
		t.Fatalf("summary of no task %+v", sum)
	}
}

// testResultByPID: the result of an agent's pid that started last.
func testResultByPID(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	old, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	cur, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	must(t, s.PutResults(ctx, []Result{
		{TaskID: old.ID, AgentID: "a", State: ResultOK, PID: 7, StartedAt: t0},
		{TaskID: old.ID, AgentID: "b", State: ResultOK, PID: 7, StartedAt: t0.Add(time.Hour)},
	}))
	must(t, s.PutResults(ctx, []Result{{TaskID: cur.ID, AgentID: "a", State: ResultRunning, PID: 7, StartedAt: t0.Add(time.Minute)}}))
	for _, tt := range []struct {
		agent string
		pid   int
		task  string // "": ErrNotFound
	}{
		{"a", 7, cur.ID}, {"b", 7, old.ID}, {"a", 8, ""}, {"c", 7, ""}, {"", 7, ""}, {"a", 0, ""},
	} {
		r, err := s.ResultByPID(ctx, tt.agent, tt.pid)
		if tt.task == "" {
			wantErr(t, err, ErrNotFound, fmt.Sprintf("pid %d", tt.pid))
			continue
		}
		if err != nil || r.TaskID != tt.task || r.AgentID != tt.agent || r.PID != tt.pid {
			t.Errorf("ResultByPID(%q, %d) = %s/%s pid %d, %v; want task %s", tt.agent, tt.pid, r.TaskID, r.AgentID, r.PID, err, tt.task)
		}
	}
}

func testResultTransitions(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindFleet})
	steps := []struct {
		put  ResultState
		code int
		want ResultState
	}{
		{ResultPending, 0, ResultPending},
		{ResultRunning, 0, ResultRunning},
		{ResultLost, 0, ResultLost},           // agent dropped
		{ResultRunning, 0, ResultRunning},     // it came back still running
		{ResultOK, 0, ResultOK},               // journaled outcome
		{ResultRunning, 9, ResultOK},          // a late progress report is ignored
		{ResultPending, 9, ResultOK},          // so is a stale pending
		{ResultLost, 9, ResultOK},             // and lost
		{ResultTimedOut, 137, ResultTimedOut}, // a final outcome replaces a final outcome
		{ResultSkipped, 0, ResultSkipped},
	}
	for i, st := range steps {
		must(t, s.PutResults(ctx, []Result{{TaskID: task.ID, AgentID: "a", State: st.put, ExitCode: st.code, Msg: fmt.Sprint("step ", i)}}))
		got, err := s.GetResult(ctx, task.ID, "a")
		must(t, err)
		if got.State != st.want {
			t.Fatalf("step %d: put %s, state %s, want %s", i, st.put, got.State, st.want)
		}
		if st.put == st.want && (got.Msg != fmt.Sprint("step ", i) || got.ExitCode != st.code) {
			t.Fatalf("step %d: row not replaced: %+v", i, got)
		}
		if st.put != st.want && (got.ExitCode == 9 || got.Msg == fmt.Sprint("step ", i)) {
			t.Fatalf("step %d: ignored report changed the row: %+v", i, got)
		}
	}
	// The same agent twice in one batch: the later wins.
	must(t, s.PutResults(ctx, []Result{
		{TaskID: task.ID, AgentID: "b", State: ResultRunning},
		{TaskID: task.ID, AgentID: "b", State: ResultOK, ExitCode: 0},
	}))
	if r, _ := s.GetResult(ctx, task.ID, "b"); r.State != ResultOK {
		t.Fatalf("batch order: %s", r.State)
	}
}

func testResultsListPaging(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindFleet})
	var rs []Result
	for i := range 25 {
		rs = append(rs, Result{TaskID: task.ID, AgentID: fmt.Sprintf("a%02d", 24-i), State: []ResultState{ResultOK, ResultFailed, ResultLost}[i%3]})
	}
	must(t, s.PutResults(ctx, rs))
	got, total, err := s.ListResults(ctx, task.ID, ResultFilter{Paging: Paging{Page: 3, Size: 10}})
	must(t, err)
	if total != 25 || len(got) != 5 || got[0].AgentID != "a20" || got[4].AgentID != "a24" {
		t.Fatalf("page 3: total %d, %d results from %v", total, len(got), got)
	}
	got, total, _ = s.ListResults(ctx, task.ID, ResultFilter{Paging: Paging{Page: 4, Size: 10}})
	if total != 25 || len(got) != 0 || got == nil {
		t.Fatalf("page 4: total %d, %v", total, got)
	}
	got, total, _ = s.ListResults(ctx, task.ID, ResultFilter{States: []ResultState{ResultFailed, ResultLost}})
	if total != 16 || len(got) != 16 {
		t.Fatalf("failed+lost: total %d len %d", total, len(got))
	}
	for _, r := range got {
		if r.State == ResultOK {
			t.Fatalf("filter let through %+v", r)
		}
	}
	if _, total, _ := s.ListResults(ctx, "ghost", ResultFilter{}); total != 0 {
		t.Fatalf("ghost task has %d results", total)
	}
}

func tenK(taskID string) []Result {
	rs := make([]Result, 10000)
	for i := range rs {
		rs[i] = Result{TaskID: taskID, AgentID: fmt.Sprintf("agent-%05d", i), State: ResultOK, PID: 1000 + i,
			StartedAt: t0, EndedAt: t0.Add(time.Millisecond), OutputHead: bytes.Repeat([]byte("h"), 64),
			OutputTail: bytes.Repeat([]byte("t"), 64), OutputBytes: 128}
	}
	return rs
}

func testPutResults10k(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindFleet})
	rs := tenK(task.ID)
	start := time.Now()
	must(t, s.PutResults(ctx, rs))
	took := time.Since(start)
	t.Logf("PutResults of 10,000: %v", took)
	if took > 5*time.Second && !raceEnabled {
		t.Fatalf("PutResults of 10,000 took %v, want well under 5s", took)
	}
	sum, _ := s.CountResults(ctx, task.ID)
	if sum.Total != 10000 || sum.OK != 10000 {
		t.Fatalf("summary %+v", sum)
	}
	r, _ := s.GetResult(ctx, task.ID, "agent-09999")
	if r.PID != 10999 || len(r.OutputTail) != 64 {
		t.Fatalf("last result %+v", r)
	}
}
