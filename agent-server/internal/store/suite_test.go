package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newConfig gives a Config on a fresh, empty database of one backend.
type newConfig func(t testing.TB) Config

// t0 is the suite's clock: a time with nanoseconds, in a non-UTC zone.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 3*3600))

func openStore(t testing.TB, cfg Config) Store {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runSuite runs every store test against one backend.
func runSuite(t *testing.T, nc newConfig) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store, cfg Config)
	}{
		{"AgentUpsertGet", testAgentUpsertGet},
		{"AgentTouch", testAgentTouch},
		{"AgentList", testAgentList},
		{"AgentLabels", testAgentLabels},
		{"AgentDelete", testAgentDelete},
		{"TaskCreateGetList", testTaskCreateGetList},
		{"TaskStateTransitions", testTaskStateTransitions},
		{"TaskDelete", testTaskDelete},
		{"Results", testResults},
		{"ResultTransitions", testResultTransitions},
		{"ResultByPID", testResultByPID},
		{"ResultsListPaging", testResultsListPaging},
		{"PutResults10k", testPutResults10k},
		{"Output", testOutput},
		{"OutputBigChunks", testOutputBigChunks},
		{"Audit", testAudit},
		{"AuditScan", testAuditScan},
		{"APITokens", testAPITokens},
		{"MatchLabelsAgreesWithSQL", testMatchLabelsSQL},
		{"Metrics", testMetrics},
		{"Usage", testUsage},
		{"Times", testTimes},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Reopen", testReopen},
		{"SecretsAndAcks", testSecretsAndAcks},
		{"PingClose", testPingClose},
		{"Prometheus", testPrometheus},
		{"HotWritesPrepared", testHotWritesPrepared},
		{"CombinedWrites", testCombinedWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := nc(t)
			cfg.OutputCap = 1000
			tc.fn(t, openStore(t, cfg), cfg)
		})
	}
}

func wantErr(t *testing.T, err, sentinel error, contains string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v, want %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testTimes(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	at := time.Date(2031, 12, 31, 23, 59, 59, 999999999, time.FixedZone("Y", -7*3600))
	must(t, s.UpsertAgent(ctx, Agent{ID: "a", ConnectedAt: at, LastSeen: at}))
	a, _ := s.GetAgent(ctx, "a")
	want := time.Date(2032, 1, 1, 6, 59, 59, 999999000, time.UTC)
	for _, got := range []time.Time{a.FirstSeen, a.LastSeen, a.ConnectedAt} {
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("time %v (%v), want %v UTC, microseconds kept", got, got.Location(), want)
		}
	}
}

func testConcurrentWriters(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindFleet})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%02d", w, i)
				err := errors.Join(
					s.UpsertAgent(ctx, Agent{ID: id, Labels: map[string]string{"w": fmt.Sprint(w)}}),
					s.TouchAgents(ctx, []string{id, "w0-00"}, t0.Add(time.Duration(i)*time.Second)),
					s.PutResults(ctx, []Result{{TaskID: task.ID, AgentID: id, State: ResultRunning}}),
					s.PutResults(ctx, []Result{{TaskID: task.ID, AgentID: id, State: ResultOK}}),
					s.PutMetrics(ctx, []Metric{{AgentID: "shared", Category: CategoryUsage, Time: t0.Add(time.Duration(i) * time.Second), Data: json.RawMessage(`{}`)}}),
				)
				if _, e := s.AppendAudit(ctx, AuditEntry{Actor: "w", Action: "x", Target: id}); e != nil {
					err = errors.Join(err, e)
				}
				if _, e := s.AppendOutput(ctx, task.ID, id, []byte("out")); e != nil {
					err = errors.Join(err, e)
				}
				if _, _, e := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "w", Value: "1"}}}); e != nil {
					err = errors.Join(err, e)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, n, _ := s.ListAgents(ctx, AgentFilter{}); n != workers*each {
		t.Fatalf("%d agents, want %d", n, workers*each)
	}
	if _, n, _ := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "w", Value: "3"}}}); n != each {
		t.Fatalf("%d agents of worker 3, want %d", n, each)
	}
	if sum, _ := s.CountResults(ctx, task.ID); sum.OK != workers*each {
		t.Fatalf("summary %+v", sum)
	}
	if _, n, _ := s.ListAudit(ctx, AuditFilter{}); n != workers*each {
		t.Fatalf("%d audit entries", n)
	}
	if m, _ := s.GetMetric(ctx, "shared", CategoryUsage); !m.Time.Equal(utc(t0.Add((each - 1) * time.Second))) {
		t.Fatalf("latest usage at %v", m.Time)
	}
}

func testReopen(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	must(t, s.UpsertAgent(ctx, sampleAgent("a")))
	task, _ := s.CreateTask(ctx, Task{Kind: KindFleet, Spec: json.RawMessage(`{"x":1}`)})
	must(t, s.UpdateTaskState(ctx, task.ID, TaskRunning, t0, ""))
	must(t, s.PutResults(ctx, []Result{{TaskID: task.ID, AgentID: "a", State: ResultOK, OutputHead: []byte("hi")}}))
	if _, err := s.AppendOutput(ctx, task.ID, "a", []byte("hello world")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "ops", Action: "task.create", Target: task.ID}); err != nil {
		t.Fatal(err)
	}
	must(t, s.PutMetrics(ctx, []Metric{{AgentID: "a", Category: CategoryStatic, Time: t0, Data: json.RawMessage(`{}`)}}))
	must(t, s.Close())

	s2 := openStore(t, cfg) // migrations run again: nothing to do
	a, err := s2.GetAgent(ctx, "a")
	must(t, err)
	want := sampleAgent("a")
	want.FirstSeen = t0
	sameAgent(t, a, want)
	tk, err := s2.GetTask(ctx, task.ID)
	must(t, err)
	if tk.State != TaskRunning || tk.Summary.OK != 1 || string(tk.Spec) != `{"x":1}` {
		t.Fatalf("task after reopen %+v", tk)
	}
	if out, _, err := s2.ReadOutput(ctx, task.ID, "a", 6, -1); err != nil || string(out) != "world" {
		t.Fatalf("output after reopen %q %v", out, err)
	}
	if _, n, _ := s2.ListAudit(ctx, AuditFilter{}); n != 1 {
		t.Fatalf("audit after reopen: %d", n)
	}
	if _, err := s2.GetMetric(ctx, "a", CategoryStatic); err != nil {
		t.Fatal(err)
	}
	// The stream continues where it was.
	if n, err := s2.AppendOutput(ctx, task.ID, "a", []byte("!")); err != nil || n != 1 {
		t.Fatalf("append after reopen %d %v", n, err)
	}
	if n, _ := s2.OutputSize(ctx, task.ID, "a"); n != 12 {
		t.Fatalf("size %d", n)
	}
}

func testPingClose(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	must(t, s.Ping(ctx))
	must(t, s.Close())
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
	if _, err := s.GetAgent(ctx, "a"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAgent after Close: %v", err)
	}
}

func testPrometheus(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	s.Close()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s = openStore(t, cfg)
	must(t, s.UpsertAgent(ctx, Agent{ID: "a"}))
	if _, err := s.GetAgent(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "agent_server_store_duration_seconds"); n != 2 {
		t.Fatalf("%d series, want 2 (upsert_agent, get_agent)", n)
	}
	// A second store on the same registry is refused, not a panic.
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second store on one registry: %v", err)
	}
	must(t, s.Close())
	if n := testutil.CollectAndCount(reg); n != 0 {
		t.Fatalf("%d series left after Close", n)
	}
}

// testHotWritesPrepared runs the one-row writes of the exec and metrics
// paths and checks that each found its prepared statement: a change to
// one of their SQL texts that hotWrites does not follow shows up here.
func testHotWritesPrepared(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	now := time.Now()
	task, err := s.CreateTask(ctx, Task{Kind: KindExec, State: TaskPending})
	must(t, err)
	must(t, s.UpdateTaskState(ctx, task.ID, TaskPending, now, ""))
	must(t, s.UpdateTaskState(ctx, task.ID, TaskRunning, now, ""))
	r := Result{TaskID: task.ID, AgentID: "a1", State: ResultRunning, StartedAt: now}
	must(t, s.PutResults(ctx, []Result{r}))
	r.State, r.EndedAt = ResultOK, now
	must(t, s.PutResults(ctx, []Result{r}))
	must(t, s.UpdateTaskState(ctx, task.ID, TaskDone, now, ""))
	must(t, s.PutMetrics(ctx, []Metric{{AgentID: "a1", Category: "usage", Time: now, Data: []byte(`{}`)}}))
	// The exec path's combined writes and its audit entry.
	t2, err := s.CreateTaskResults(ctx, Task{Kind: KindExec, State: TaskRunning}, []Result{{AgentID: "a1", State: ResultRunning, StartedAt: now}})
	must(t, err)
	must(t, s.PutResultsStates(ctx, []Result{{TaskID: t2.ID, AgentID: "a1", State: ResultOK, StartedAt: now, EndedAt: now}},
		[]TaskStateChange{{ID: t2.ID, State: TaskDone, At: now}}))
	_, err = s.AppendAudit(ctx, AuditEntry{Actor: "op", Action: "POST /api/exec/{id}/run", Target: "a1", Status: 200})
	must(t, err)
	if got, err := s.GetResult(ctx, task.ID, "a1"); err != nil || got.State != ResultOK {
		t.Fatalf("result %+v, %v", got, err)
	}
	if n := s.(*sqlStore).cold.Load(); n != 0 {
		t.Errorf("%d hot writes ran unprepared", n)
	}
}
