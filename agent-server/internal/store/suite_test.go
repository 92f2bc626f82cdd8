package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
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

func sampleAgent(id string) Agent {
	return Agent{
		ID: id, Type: "exec-agent", Version: "1.2.3", IP: "10.0.0.1", MAC: "AA:BB:CC:00:11:22",
		HostName: "host-" + id, OS: "linux", Platform: "debian", PlatformVersion: "12", KernelVersion: "6.1.0",
		Arch: "amd64", CPU: "Xeon", CPUCore: 8, Memory: 16 << 30,
		Labels: map[string]string{"env": "prod"}, Facts: json.RawMessage(`{"boot":1}`),
		ConnectedAt: t0, LastSeen: t0,
	}
}

func sameAgent(t *testing.T, got, want Agent) {
	t.Helper()
	want.FirstSeen, want.LastSeen, want.ConnectedAt = utc(want.FirstSeen), utc(want.LastSeen), utc(want.ConnectedAt)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("agent\n got %s\nwant %s", gj, wj)
	}
}

func testAgentUpsertGet(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	a := sampleAgent("a1")
	must(t, s.UpsertAgent(ctx, a))
	got, err := s.GetAgent(ctx, "a1")
	must(t, err)
	a.FirstSeen = t0
	sameAgent(t, got, a)

	// Reconnect later: FirstSeen stays, the rest is replaced, nil labels
	// and facts keep the stored ones.
	b := sampleAgent("a1")
	b.Version, b.IP, b.Labels, b.Facts = "2.0.0", "10.0.0.2", nil, nil
	b.FirstSeen = t0.Add(time.Hour) // ignored for an existing agent
	b.ConnectedAt, b.LastSeen = t0.Add(time.Hour), t0.Add(time.Hour)
	must(t, s.UpsertAgent(ctx, b))
	got, err = s.GetAgent(ctx, "a1")
	must(t, err)
	want := b
	want.FirstSeen, want.Labels, want.Facts = t0, a.Labels, a.Facts
	sameAgent(t, got, want)

	// Non-nil labels replace.
	b.Labels = map[string]string{"role": "db"}
	must(t, s.UpsertAgent(ctx, b))
	got, _ = s.GetAgent(ctx, "a1")
	if !maps.Equal(got.Labels, b.Labels) {
		t.Fatalf("labels %v, want %v", got.Labels, b.Labels)
	}
	if l, _, _ := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "env", Op: LabelExists}}}); len(l) != 0 {
		t.Fatalf("old label still selectable: %v", l)
	}

	// A new agent without times gets the clock.
	must(t, s.UpsertAgent(ctx, Agent{ID: "bare"}))
	got, _ = s.GetAgent(ctx, "bare")
	if !got.FirstSeen.Equal(utc(t0)) || !got.LastSeen.Equal(utc(t0)) || !got.ConnectedAt.IsZero() || got.Labels != nil {
		t.Fatalf("bare agent %+v", got)
	}

	_, err = s.GetAgent(ctx, "nope")
	wantErr(t, err, ErrNotFound, "nope")
	for _, tc := range []struct {
		a    Agent
		want string
	}{
		{Agent{}, "empty agent id"},
		{Agent{ID: "x", Labels: map[string]string{"bad key": "v"}}, `key has character ' '`},
		{Agent{ID: "x", Labels: map[string]string{"k": "a,b"}}, `value has character ','`},
		{Agent{ID: "x", Facts: json.RawMessage(`{`)}, "facts is not valid JSON"},
		{Agent{ID: strings.Repeat("é", 129)}, "agent id longer than 128 characters"},
		{Agent{ID: "x", HostName: strings.Repeat("h", 256)}, "host_name longer than 255 characters"},
	} {
		wantErr(t, s.UpsertAgent(ctx, tc.a), ErrInvalid, tc.want)
	}
}

func testAgentTouch(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	var ids []string
	for i := range 1200 { // more than one batch
		id := fmt.Sprintf("a%04d", i)
		ids = append(ids, id)
		a := Agent{ID: id, LastSeen: t0}
		must(t, s.UpsertAgent(ctx, a))
	}
	later := t0.Add(90 * time.Second)
	must(t, s.TouchAgents(ctx, append(ids, "unknown"), later))
	for _, id := range []string{"a0000", "a0600", "a1199"} {
		a, err := s.GetAgent(ctx, id)
		must(t, err)
		if !a.LastSeen.Equal(utc(later)) || !a.FirstSeen.Equal(utc(t0)) {
			t.Fatalf("%s: last %v first %v", id, a.LastSeen, a.FirstSeen)
		}
	}
	// Never backwards.
	must(t, s.TouchAgents(ctx, ids[:1], t0))
	if a, _ := s.GetAgent(ctx, ids[0]); !a.LastSeen.Equal(utc(later)) {
		t.Fatalf("last_seen went back to %v", a.LastSeen)
	}
	must(t, s.TouchAgents(ctx, nil, later))
}

func testAgentList(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	for i := range 30 {
		a := Agent{
			ID: fmt.Sprintf("agent-%02d", i), Type: []string{"exec-agent", "metrics-agent"}[i%2],
			OS: []string{"linux", "windows", "linux"}[i%3], Platform: []string{"debian", "windows", "centos"}[i%3],
			IP: fmt.Sprintf("192.168.%d.%d", i/10, i), MAC: fmt.Sprintf("aa:bb:cc:dd:ee:%02x", i),
			HostName: fmt.Sprintf("Web%02d", (i*7)%30),
			Labels:   map[string]string{"env": []string{"prod", "dev"}[i%2], "rack": fmt.Sprint(i % 3)},
		}
		if i == 7 {
			a.Labels = nil
			a.ID = "x_y%7"
		}
		must(t, s.UpsertAgent(ctx, a))
	}
	ids := func(as []Agent) []string {
		out := []string{}
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	sel := func(s string) []LabelMatch {
		m, err := ParseSelector(s)
		must(t, err)
		return m
	}
	cases := []struct {
		name      string
		f         AgentFilter
		total     int
		first     string // first id of the page, "" for an empty page
		n         int    // page length
		wantIDs   []string
		wantError string
		sorted    string // "none": the page is not in id order
	}{
		{name: "all default page", f: AgentFilter{}, total: 30, first: "agent-00", n: 20},
		{name: "page 2", f: AgentFilter{Paging: Paging{Page: 2}}, total: 30, first: "agent-21", n: 10},
		{name: "page beyond end", f: AgentFilter{Paging: Paging{Page: 4, Size: 10}}, total: 30, n: 0},
		{name: "huge page", f: AgentFilter{Paging: Paging{Page: math.MaxInt, Size: 10}}, total: 30, n: 0},
		{name: "page 0 is 1", f: AgentFilter{Paging: Paging{Page: 0, Size: 5}}, total: 30, first: "agent-00", n: 5},
		{name: "negative page is 1", f: AgentFilter{Paging: Paging{Page: -3, Size: 5}}, total: 30, first: "agent-00", n: 5},
		{name: "negative size is default", f: AgentFilter{Paging: Paging{Size: -1}}, total: 30, n: 20, first: "agent-00"},
		{name: "size above max is max", f: AgentFilter{Paging: Paging{Size: 1 << 30}}, total: 30, n: 30, first: "agent-00"},
		{name: "type", f: AgentFilter{Type: "metrics-agent"}, total: 15, n: 15, first: "agent-01"},
		{name: "os and platform", f: AgentFilter{OS: "linux", Platform: "centos"}, total: 10, n: 10, first: "agent-02"},
		{name: "type is exact", f: AgentFilter{Type: "exec"}, total: 0},
		{name: "keyword ip", f: AgentFilter{Keyword: "168.2."}, total: 10, n: 10, first: "agent-20"},
		{name: "keyword mac any case", f: AgentFilter{Keyword: "EE:1D"}, total: 1, n: 1, first: "agent-29"},
		{name: "keyword id", f: AgentFilter{Keyword: "ENT-0"}, total: 9, n: 9, first: "agent-00"},
		{name: "keyword percent is literal", f: AgentFilter{Keyword: "%"}, wantIDs: []string{"x_y%7"}, total: 1, n: 1, first: "x_y%7"},
		{name: "keyword underscore is literal", f: AgentFilter{Keyword: "x_"}, total: 1, n: 1, first: "x_y%7"},
		{name: "keyword escape char", f: AgentFilter{Keyword: "!"}, total: 0},
		{name: "keyword injection", f: AgentFilter{Keyword: "' OR 1=1 --"}, total: 0},
		{name: "ids", f: AgentFilter{IDs: []string{"agent-05", "agent-03", "nope"}}, wantIDs: []string{"agent-03", "agent-05"}, total: 2, n: 2, first: "agent-03"},
		{name: "ids and type", f: AgentFilter{IDs: []string{"agent-05", "agent-04"}, Type: "exec-agent"}, total: 1, n: 1, first: "agent-04"},
		{name: "label eq", f: AgentFilter{Labels: sel("env=dev")}, total: 14, n: 14, first: "agent-01"},
		{name: "label eq and", f: AgentFilter{Labels: sel("env=prod, rack=0")}, wantIDs: []string{"agent-00", "agent-06", "agent-12", "agent-18", "agent-24"}, total: 5, n: 5, first: "agent-00"},
		{name: "label neq includes unlabelled", f: AgentFilter{Labels: sel("env!=prod")}, total: 15, n: 15, first: "agent-01"},
		{name: "label exists", f: AgentFilter{Labels: sel("rack")}, total: 29, n: 20, first: "agent-00"},
		{name: "label not exists", f: AgentFilter{Labels: sel("!rack")}, wantIDs: []string{"x_y%7"}, total: 1, n: 1, first: "x_y%7"},
		{name: "label value injection", f: AgentFilter{Labels: []LabelMatch{{Key: "env", Op: LabelEq, Value: "x' OR '1'='1"}}}, total: 0},
		{name: "label bad op", f: AgentFilter{Labels: []LabelMatch{{Key: "env", Op: 99}}}, wantError: "label operator 99"},
		{name: "too many ids", f: AgentFilter{IDs: make([]string, MaxFilterIDs+1)}, wantError: "more than 20000 ids"},
		{name: "keyword and labels", f: AgentFilter{Keyword: "agent-1", Labels: sel("rack=1")}, wantIDs: []string{"agent-10", "agent-13", "agent-16", "agent-19"}, total: 4, n: 4, first: "agent-10"},
		{name: "keyword host name any case", f: AgentFilter{Keyword: "wEB2"}, total: 10, n: 10, first: "agent-03"},
		{name: "sort host name", f: AgentFilter{Sort: "host_name", Paging: Paging{Size: 3}}, wantIDs: []string{"agent-00", "agent-13", "agent-26"}, total: 30, n: 3, first: "agent-00", sorted: "none"},
		{name: "sort host name descending", f: AgentFilter{Sort: "-host_name", Paging: Paging{Size: 2}}, wantIDs: []string{"agent-17", "agent-04"}, total: 30, n: 2, first: "agent-17", sorted: "none"},
		{name: "sort ties by id", f: AgentFilter{Sort: "os", Paging: Paging{Size: 3}}, wantIDs: []string{"agent-00", "agent-02", "agent-03"}, total: 30, n: 3, first: "agent-00"},
		{name: "sort id descending", f: AgentFilter{Sort: "-id", Paging: Paging{Size: 1}}, total: 30, n: 1, first: "x_y%7", sorted: "none"},
		{name: "sort unknown key", f: AgentFilter{Sort: "labels"}, wantError: `sort key "labels"`},
		{name: "sort injection", f: AgentFilter{Sort: "id; DROP TABLE agents"}, wantError: "sort key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, total, err := s.ListAgents(ctx, tc.f)
			if tc.wantError != "" {
				wantErr(t, err, ErrInvalid, tc.wantError)
				return
			}
			must(t, err)
			if total != tc.total {
				t.Fatalf("total %d, want %d (%v)", total, tc.total, ids(got))
			}
			if len(got) != tc.n {
				t.Fatalf("page has %d agents, want %d: %v", len(got), tc.n, ids(got))
			}
			if tc.n > 0 && got[0].ID != tc.first {
				t.Fatalf("first %s, want %s", got[0].ID, tc.first)
			}
			if tc.wantIDs != nil && !slices.Equal(ids(got), tc.wantIDs) {
				t.Fatalf("ids %v, want %v", ids(got), tc.wantIDs)
			}
			if tc.sorted == "" && !slices.IsSorted(ids(got)) {
				t.Fatalf("not ordered by id: %v", ids(got))
			}
		})
	}
}

func testAgentLabels(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	must(t, s.UpsertAgent(ctx, Agent{ID: "a"}))
	must(t, s.UpsertAgent(ctx, Agent{ID: "b", Labels: map[string]string{"env": "prod"}}))
	must(t, s.SetAgentLabels(ctx, "a", map[string]string{"env": "prod", "zone": "eu-1/a"}))
	got, _, err := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "env", Value: "prod"}}})
	must(t, err)
	if len(got) != 2 || got[0].Labels["zone"] != "eu-1/a" {
		t.Fatalf("after set: %+v", got)
	}
	must(t, s.SetAgentLabels(ctx, "a", map[string]string{"zone": "us"}))
	got, _, _ = s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "env", Value: "prod"}}})
	if len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("after replace: %+v", got)
	}
	// Same labels again is fine (MySQL reports matched rows).
	must(t, s.SetAgentLabels(ctx, "a", map[string]string{"zone": "us"}))
	must(t, s.SetAgentLabels(ctx, "a", nil))
	a, _ := s.GetAgent(ctx, "a")
	if len(a.Labels) != 0 {
		t.Fatalf("after clear: %v", a.Labels)
	}
	wantErr(t, s.SetAgentLabels(ctx, "zz", map[string]string{"k": "v"}), ErrNotFound, "zz")
	wantErr(t, s.SetAgentLabels(ctx, "a", map[string]string{"": "v"}), ErrInvalid, "empty key")
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many[fmt.Sprint("k", i)] = "v"
	}
	wantErr(t, s.SetAgentLabels(ctx, "a", many), ErrInvalid, "more than 64")
}

func testAgentDelete(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	must(t, s.UpsertAgent(ctx, sampleAgent("a")))
	must(t, s.PutMetrics(ctx, []Metric{{AgentID: "a", Category: CategoryStatic, Time: t0, Data: json.RawMessage(`{}`)}}))
	must(t, s.AddUsage(ctx, []Metric{{AgentID: "a", Time: t0, Data: json.RawMessage(`{}`)}}))
	must(t, s.DeleteAgent(ctx, "a"))
	_, err := s.GetAgent(ctx, "a")
	wantErr(t, err, ErrNotFound, "a")
	wantErr(t, s.DeleteAgent(ctx, "a"), ErrNotFound, "delete agent a")
	if ms, _ := s.GetMetrics(ctx, "a"); len(ms) != 0 {
		t.Fatalf("metrics left: %v", ms)
	}
	if h, _ := s.UsageHistory(ctx, "a", time.Time{}); len(h) != 0 {
		t.Fatalf("usage left: %v", h)
	}
	// Labels went too: a new agent of the same id starts clean.
	must(t, s.UpsertAgent(ctx, Agent{ID: "a"}))
	if l, _, _ := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "env", Op: LabelExists}}}); len(l) != 0 {
		t.Fatalf("labels left: %v", l)
	}
}

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

func testOutput(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	task, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	var all []byte
	for i := range 9 { // 9 chunks of 100 bytes
		p := bytes.Repeat([]byte{byte('a' + i)}, 100)
		n, err := s.AppendOutput(ctx, task.ID, "a", p)
		must(t, err)
		if n != 100 {
			t.Fatalf("kept %d of 100", n)
		}
		all = append(all, p...)
	}
	// Cap is 1000: 100 more fit, then 50 of 150, then nothing.
	p := bytes.Repeat([]byte("z"), 150)
	if n, err := s.AppendOutput(ctx, task.ID, "a", p[:100]); err != nil || n != 100 {
		t.Fatalf("at cap-100: kept %d, %v", n, err)
	}
	all = append(all, p[:100]...)
	if n, err := s.AppendOutput(ctx, task.ID, "a", p); err != nil || n != 0 {
		t.Fatalf("at cap: kept %d, %v", n, err)
	}
	if n, err := s.AppendOutput(ctx, task.ID, "a", nil); err != nil || n != 0 {
		t.Fatalf("empty append: %d, %v", n, err)
	}
	if size, err := s.OutputSize(ctx, task.ID, "a"); err != nil || size != cfg.OutputCap {
		t.Fatalf("size %d, %v; want %d", size, err, cfg.OutputCap)
	}
	// Another stream of the same task, partly over the cap.
	n, err := s.AppendOutput(ctx, task.ID, "b", bytes.Repeat([]byte("b"), 1200))
	if err != nil || n != 1000 {
		t.Fatalf("over cap in one go: kept %d, %v", n, err)
	}
	_, err = s.AppendOutput(ctx, "ghost", "a", []byte("x"))
	wantErr(t, err, ErrNotFound, "ghost")

	// At an offset: what the stream holds already is skipped (a retried or
	// replayed append), the rest appended; a gap or a negative offset is
	// refused.
	for _, tc := range []struct {
		off  int64
		p    string
		kept int
		want string
		err  error
	}{
		{0, "hello", 5, "hello", nil},
		{0, "hello", 5, "hello", nil},            // replayed whole
		{3, "lo, world", 9, "hello, world", nil}, // overlaps the end
		{12, "!", 1, "hello, world!", nil},       // at the end
		{20, "gap", 0, "hello, world!", ErrInvalid},
		{-1, "x", 0, "hello, world!", ErrInvalid},
	} {
		n, err := s.AppendOutputAt(ctx, task.ID, "c", tc.off, []byte(tc.p))
		if tc.err != nil {
			wantErr(t, err, tc.err, "offset")
		} else {
			must(t, err)
		}
		if n != tc.kept {
			t.Errorf("AppendOutputAt(%d, %q) kept %d, want %d", tc.off, tc.p, n, tc.kept)
		}
		b, _, err := s.ReadOutput(ctx, task.ID, "c", 0, -1)
		must(t, err)
		if string(b) != tc.want {
			t.Errorf("after AppendOutputAt(%d, %q): %q, want %q", tc.off, tc.p, b, tc.want)
		}
	}
	// The cap holds for appends at an offset too.
	must(t, func() error {
		_, err := s.AppendOutputAt(ctx, task.ID, "d", 0, bytes.Repeat([]byte("d"), 990))
		return err
	}())
	if n, err := s.AppendOutputAt(ctx, task.ID, "d", 980, bytes.Repeat([]byte("d"), 30)); err != nil || n != 20 {
		t.Errorf("at the cap: kept %d, %v; want 10 skipped + 10 appended", n, err)
	}

	for _, tc := range []struct {
		name        string
		off, length int64
		want        []byte
	}{
		{"all", 0, -1, all},
		{"all by length", 0, 1000, all},
		{"more than there is", 0, 5000, all},
		{"inside one chunk", 110, 20, all[110:130]},
		{"across chunks", 150, 420, all[150:570]},
		{"chunk boundary", 200, 100, all[200:300]},
		{"tail", 990, -1, all[990:]},
		{"last byte", 999, 1, all[999:]},
		{"at end", 1000, 10, []byte{}},
		{"beyond end", 5000, 10, []byte{}},
		{"zero length", 10, 0, []byte{}},
	} {
		got, total, err := s.ReadOutput(ctx, task.ID, "a", tc.off, tc.length)
		must(t, err)
		if total != 1000 || !bytes.Equal(got, tc.want) || got == nil {
			t.Fatalf("%s: total %d, %d bytes %q…, want %d bytes", tc.name, total, len(got), got[:min(len(got), 10)], len(tc.want))
		}
	}
	_, _, err = s.ReadOutput(ctx, task.ID, "a", -1, 10)
	wantErr(t, err, ErrInvalid, "negative offset -1")
	_, _, err = s.ReadOutput(ctx, "ghost", "a", 0, 10)
	wantErr(t, err, ErrNotFound, "ghost")
	got, total, err := s.ReadOutput(ctx, task.ID, "nobody", 0, -1)
	if err != nil || total != 0 || len(got) != 0 {
		t.Fatalf("stream without output: %q %d %v", got, total, err)
	}
}

func testOutputBigChunks(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	cfg.OutputCap = -1 // unbounded
	s.Close()
	s = openStore(t, cfg)
	task, _ := s.CreateTask(ctx, Task{Kind: KindExec})
	big := make([]byte, 2*maxChunk+12345) // split into three rows
	for i := range big {
		big[i] = byte(i * 7)
	}
	n, err := s.AppendOutput(ctx, task.ID, "a", big)
	if err != nil || n != len(big) {
		t.Fatalf("kept %d of %d: %v", n, len(big), err)
	}
	got, total, err := s.ReadOutput(ctx, task.ID, "a", maxChunk-10, 20)
	must(t, err)
	if total != int64(len(big)) || !bytes.Equal(got, big[maxChunk-10:maxChunk+10]) {
		t.Fatalf("range across the split: total %d, %v", total, got)
	}
	got, _, _ = s.ReadOutput(ctx, task.ID, "a", 0, -1)
	if !bytes.Equal(got, big) {
		t.Fatalf("whole stream differs")
	}
}

func testAudit(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	entries := []AuditEntry{
		{Time: t0, Actor: "alice", Action: "exec.run", Target: "a1", RequestID: "r1", Result: "ok", Detail: json.RawMessage(`{"cmd":"ls"}`)},
		{Time: t0.Add(time.Second), Actor: "bob", Action: "task.create", Target: "t1", RequestID: "r2", Result: "ok"},
		{Time: t0.Add(time.Second), Actor: "alice", Action: "exec.kill", Target: "a1", RequestID: "r3", Result: "agent went away"},
		{Time: t0.Add(2 * time.Second), Actor: "alice", Action: "exec.run", Target: "a2", RequestID: "r4", Result: "ok"},
		{Actor: "carol", Action: "labels.set", Target: "a2", RequestID: "r5", Result: "ok"}, // time now = t0
	}
	var ids []int64
	for _, e := range entries {
		id, err := s.AppendAudit(ctx, e)
		must(t, err)
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) || ids[0] == ids[1] {
		t.Fatalf("ids %v", ids)
	}
	_, err := s.AppendAudit(ctx, AuditEntry{Action: "x", Detail: json.RawMessage(`{]`)})
	wantErr(t, err, ErrInvalid, "audit detail is not valid JSON")
	reqs := func(es []AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.RequestID)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		f     AuditFilter
		total int
		want  []string
	}{
		{"newest first, ties by id", AuditFilter{}, 5, []string{"r4", "r3", "r2", "r5", "r1"}},
		{"page 2", AuditFilter{Paging: Paging{Page: 2, Size: 2}}, 5, []string{"r2", "r5"}},
		{"beyond", AuditFilter{Paging: Paging{Page: 9, Size: 2}}, 5, nil},
		{"actor", AuditFilter{Actor: "alice"}, 3, []string{"r4", "r3", "r1"}},
		{"action", AuditFilter{Action: "exec.run"}, 2, []string{"r4", "r1"}},
		{"target", AuditFilter{Target: "a2"}, 2, []string{"r4", "r5"}},
		{"since inclusive", AuditFilter{Since: t0.Add(time.Second)}, 3, []string{"r4", "r3", "r2"}},
		{"until exclusive", AuditFilter{Until: t0.Add(time.Second)}, 2, []string{"r5", "r1"}},
		{"window", AuditFilter{Since: t0.Add(time.Second), Until: t0.Add(2 * time.Second), Actor: "alice"}, 1, []string{"r3"}},
		{"actor injection", AuditFilter{Actor: "alice' OR '1'='1"}, 0, nil},
	} {
		got, total, err := s.ListAudit(ctx, tc.f)
		must(t, err)
		if total != tc.total || !slices.Equal(reqs(got), tc.want) {
			t.Fatalf("%s: total %d %v, want %d %v", tc.name, total, reqs(got), tc.total, tc.want)
		}
	}
	got, _, _ := s.ListAudit(ctx, AuditFilter{Action: "exec.run", Paging: Paging{Size: 1, Page: 2}})
	e := got[0]
	if e.ID != ids[0] || !e.Time.Equal(utc(t0)) || e.Actor != "alice" || e.Target != "a1" || string(e.Detail) != `{"cmd":"ls"}` || e.Result != "ok" {
		t.Fatalf("entry %+v", e)
	}
}

// testAuditScan: the agent, remote and status columns round-trip, the
// agent filter works, and ScanAudit walks the log by id, oldest first.
func testAuditScan(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	for i := range 7 {
		_, err := s.AppendAudit(ctx, AuditEntry{Time: t0.Add(time.Duration(7-i) * time.Second), Actor: "ops", Action: "GET /api/file/{id}/download",
			Target: "a1", Agent: fmt.Sprintf("a%d", i%2), Remote: "127.0.0.1:5000", Status: 200 + i, RequestID: fmt.Sprint("r", i), Result: "ok"})
		must(t, err)
	}
	_, err := s.AppendAudit(ctx, AuditEntry{Action: "x", Agent: strings.Repeat("a", 129)})
	wantErr(t, err, ErrInvalid, "agent longer than 128")
	var seen []string
	var after int64
	for {
		page, err := s.ScanAudit(ctx, AuditFilter{}, after, 3)
		must(t, err)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.ID <= after {
				t.Fatalf("scan went back: %d after %d", e.ID, after)
			}
			after = e.ID
			seen = append(seen, e.RequestID)
		}
	}
	if fmt.Sprint(seen) != "[r0 r1 r2 r3 r4 r5 r6]" {
		t.Fatalf("scan order %v (ids, not times, order it)", seen)
	}
	page, err := s.ScanAudit(ctx, AuditFilter{Agent: "a1", Since: t0.Add(3 * time.Second)}, 0, 100)
	must(t, err)
	if len(page) != 2 || page[0].RequestID != "r1" || page[1].RequestID != "r3" {
		t.Fatalf("filtered scan %+v", page)
	}
	if e := page[0]; e.Agent != "a1" || e.Remote != "127.0.0.1:5000" || e.Status != 201 || e.Target != "a1" {
		t.Fatalf("entry %+v", e)
	}
	list, total, err := s.ListAudit(ctx, AuditFilter{Agent: "a0"})
	must(t, err)
	if total != 4 || len(list) != 4 {
		t.Fatalf("agent filter: %d %d", total, len(list))
	}
}

// TestAuditAppendOnly: the Store has no method that could change or remove
// audit entries, whatever their name.
func TestAuditAppendOnly(t *testing.T) {
	st := reflect.TypeFor[Store]()
	for i := range st.NumMethod() {
		name := st.Method(i).Name
		if strings.Contains(name, "Audit") && name != "AppendAudit" && name != "ListAudit" && name != "ScanAudit" {
			t.Errorf("Store.%s: the audit log is append-only; review this method", name)
		}
	}
}

func testAPITokens(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	hash := func(b byte) []byte { return bytes.Repeat([]byte{b}, TokenHashSize) }
	tok := APIToken{Name: "deploy", Hash: hash(1), Scopes: []string{"exec:run", "agents:read"}, Selector: "env=prod", CreatedBy: "ops", ExpiresAt: t0.Add(time.Hour)}
	got, err := s.CreateAPIToken(ctx, tok)
	must(t, err)
	if !got.CreatedAt.Equal(utc(t0)) {
		t.Fatalf("created at %v", got.CreatedAt)
	}
	_, err = s.CreateAPIToken(ctx, APIToken{Name: "deploy", Hash: hash(2), Scopes: []string{"admin"}})
	wantErr(t, err, ErrConflict, "create API token deploy")
	_, err = s.CreateAPIToken(ctx, APIToken{Name: "other", Hash: hash(1), Scopes: []string{"admin"}})
	wantErr(t, err, ErrConflict, "create API token other")
	for _, bad := range []APIToken{
		{Name: "", Hash: hash(3), Scopes: []string{"admin"}},
		{Name: strings.Repeat("n", 65), Hash: hash(3), Scopes: []string{"admin"}},
		{Name: "x", Hash: []byte("short"), Scopes: []string{"admin"}},
		{Name: "x", Hash: hash(3)},
		{Name: "x", Hash: hash(3), Scopes: []string{"a,b"}},
	} {
		_, err := s.CreateAPIToken(ctx, bad)
		wantErr(t, err, ErrInvalid, "create API token")
	}
	must2 := func(tk APIToken, err error) APIToken { t.Helper(); must(t, err); return tk }
	check := func(g APIToken) {
		t.Helper()
		if g.Name != "deploy" || !bytes.Equal(g.Hash, hash(1)) || fmt.Sprint(g.Scopes) != "[exec:run agents:read]" || g.Selector != "env=prod" ||
			g.CreatedBy != "ops" || !g.CreatedAt.Equal(utc(t0)) || !g.ExpiresAt.Equal(utc(t0.Add(time.Hour))) || !g.RevokedAt.IsZero() {
			t.Fatalf("token %+v", g)
		}
	}
	check(must2(s.GetAPIToken(ctx, "deploy")))
	check(must2(s.APITokenByHash(ctx, hash(1))))
	_, err = s.GetAPIToken(ctx, "nope")
	wantErr(t, err, ErrNotFound, "nope")
	_, err = s.APITokenByHash(ctx, hash(9))
	wantErr(t, err, ErrNotFound, "find API token")
	must2(s.CreateAPIToken(ctx, APIToken{Name: "a-first", Hash: hash(4), Scopes: []string{"admin"}}))
	list, total, err := s.ListAPITokens(ctx, Paging{})
	must(t, err)
	if total != 2 || len(list) != 2 || list[0].Name != "a-first" || list[1].Name != "deploy" || !list[0].ExpiresAt.IsZero() {
		t.Fatalf("list %d %+v", total, list)
	}
	r := must2(s.RevokeAPIToken(ctx, "deploy", t0.Add(time.Minute), "ops"))
	if !r.RevokedAt.Equal(utc(t0.Add(time.Minute))) || r.RevokedBy != "ops" {
		t.Fatalf("revoked %+v", r)
	}
	r = must2(s.RevokeAPIToken(ctx, "deploy", t0.Add(time.Hour), "other"))
	if !r.RevokedAt.Equal(utc(t0.Add(time.Minute))) || r.RevokedBy != "ops" {
		t.Fatalf("second revoke changed the first: %+v", r)
	}
	if g := must2(s.APITokenByHash(ctx, hash(1))); g.RevokedAt.IsZero() {
		t.Fatal("revocation not visible by hash")
	}
	_, err = s.RevokeAPIToken(ctx, "nope", t0, "ops")
	wantErr(t, err, ErrNotFound, "revoke API token nope")
	// A revoked token keeps its name taken.
	_, err = s.CreateAPIToken(ctx, APIToken{Name: "deploy", Hash: hash(5), Scopes: []string{"admin"}})
	wantErr(t, err, ErrConflict, "deploy")
}

func testMetrics(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	m := func(cat string, at time.Time, data string) Metric {
		return Metric{AgentID: "a", Category: cat, Time: at, Data: json.RawMessage(data)}
	}
	must(t, s.PutMetrics(ctx, []Metric{
		m(CategoryUsage, t0, `{"cpu":1}`),
		m(CategoryStatic, t0, `{"host":"h"}`),
		m(CategoryUsage, t0.Add(time.Second), `{"cpu":2}`), // same batch, newer
	}))
	got, err := s.GetMetric(ctx, "a", CategoryUsage)
	must(t, err)
	if string(got.Data) != `{"cpu":2}` || !got.Time.Equal(utc(t0.Add(time.Second))) {
		t.Fatalf("usage %+v", got)
	}
	must(t, s.PutMetrics(ctx, []Metric{m(CategoryUsage, t0, `{"cpu":0}`)})) // older: ignored
	if got, _ := s.GetMetric(ctx, "a", CategoryUsage); string(got.Data) != `{"cpu":2}` {
		t.Fatalf("older report replaced newer: %s", got.Data)
	}
	must(t, s.PutMetrics(ctx, []Metric{m(CategoryUsage, t0.Add(time.Minute), `{"cpu":3}`), m(CategoryTemps, t0, `[]`)}))
	all, err := s.GetMetrics(ctx, "a")
	must(t, err)
	var cats []string
	for _, x := range all {
		cats = append(cats, x.Category)
	}
	if !slices.Equal(cats, []string{"static", "temps", "usage"}) || string(all[2].Data) != `{"cpu":3}` {
		t.Fatalf("metrics %v %s", cats, all[2].Data)
	}
	_, err = s.GetMetric(ctx, "a", CategoryConns)
	wantErr(t, err, ErrNotFound, "conns")
	for _, tc := range []struct {
		m    Metric
		want string
	}{
		{m("cpu", t0, `{}`), `metric category "cpu"`},
		{Metric{Category: CategoryUsage, Time: t0}, "without agent id"},
		{m(CategoryUsage, time.Time{}, `{}`), "without time"},
		{m(CategoryUsage, t0, `{"a":`), "metric data is not valid JSON"},
	} {
		wantErr(t, s.PutMetrics(ctx, []Metric{tc.m}), ErrInvalid, tc.want)
	}
	if ms, err := s.GetMetrics(ctx, "nobody"); err != nil || len(ms) != 0 {
		t.Fatalf("nobody: %v %v", ms, err)
	}
}

func testUsage(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	var ms []Metric
	for i := range 10 {
		ms = append(ms, Metric{AgentID: "a", Time: t0.Add(time.Duration(i) * time.Minute), Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		ms = append(ms, Metric{AgentID: "b", Time: t0.Add(time.Duration(i) * time.Minute), Data: json.RawMessage(`{}`)})
	}
	must(t, s.AddUsage(ctx, ms))
	must(t, s.AddUsage(ctx, nil))
	h, err := s.UsageHistory(ctx, "a", t0.Add(7*time.Minute))
	must(t, err)
	if len(h) != 3 || string(h[0].Data) != `{"i":7}` || string(h[2].Data) != `{"i":9}` || h[0].Category != CategoryUsage {
		t.Fatalf("history %+v", h)
	}
	n, err := s.PruneUsage(ctx, t0.Add(5*time.Minute))
	must(t, err)
	if n != 10 {
		t.Fatalf("pruned %d, want 10", n)
	}
	h, _ = s.UsageHistory(ctx, "a", time.Time{})
	if len(h) != 5 || string(h[0].Data) != `{"i":5}` {
		t.Fatalf("after prune %+v", h)
	}
	wantErr(t, s.AddUsage(ctx, []Metric{{AgentID: "a"}}), ErrInvalid, "without time")
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

// Agent secrets and journal high-water marks survive a reopen (a server
// restart), acks never move back, and deleting the agent forgets both.
func testSecretsAndAcks(t *testing.T, s Store, cfg Config) {
	ctx := context.Background()
	if h, err := s.SecretHash(ctx, "a"); err != nil || h != nil {
		t.Fatalf("secret of an unknown agent = %x, %v; want nil, nil", h, err)
	}
	if seq, err := s.JournalAck(ctx, "a", "j1"); err != nil || seq != 0 {
		t.Fatalf("ack of an unknown journal = %d, %v; want 0, nil", seq, err)
	}
	must(t, s.UpsertAgent(ctx, sampleAgent("a")))
	must(t, s.SetSecretHash(ctx, "a", []byte{1, 2, 3}))
	must(t, s.SetSecretHash(ctx, "a", []byte{4, 5, 6})) // replaces
	must(t, s.SetJournalAck(ctx, "a", "j1", 10))
	must(t, s.SetJournalAck(ctx, "a", "j1", 7)) // behind: ignored
	must(t, s.SetJournalAck(ctx, "a", "j2", 3))
	wantErr(t, s.SetJournalAck(ctx, "a", "j1", 1<<63), ErrInvalid, "out of range")
	wantErr(t, s.SetSecretHash(ctx, strings.Repeat("x", 129), []byte{1}), ErrInvalid, "agent id longer than 128 characters")
	must(t, s.Close())

	s2 := openStore(t, cfg)
	if h, err := s2.SecretHash(ctx, "a"); err != nil || !bytes.Equal(h, []byte{4, 5, 6}) {
		t.Fatalf("secret after reopen = %x, %v", h, err)
	}
	for j, want := range map[string]uint64{"j1": 10, "j2": 3, "j3": 0} {
		if seq, err := s2.JournalAck(ctx, "a", j); err != nil || seq != want {
			t.Fatalf("ack of %s after reopen = %d, %v; want %d", j, seq, err, want)
		}
	}
	must(t, s2.SetSecretHash(ctx, "a", nil)) // operator reset
	if h, _ := s2.SecretHash(ctx, "a"); h != nil {
		t.Fatalf("secret after reset = %x", h)
	}
	must(t, s2.SetSecretHash(ctx, "a", []byte{7}))
	must(t, s2.DeleteAgent(ctx, "a"))
	if h, _ := s2.SecretHash(ctx, "a"); h != nil {
		t.Fatalf("secret after DeleteAgent = %x", h)
	}
	if seq, _ := s2.JournalAck(ctx, "a", "j1"); seq != 0 {
		t.Fatalf("ack after DeleteAgent = %d", seq)
	}
}

// The batch methods, against both backends.
func TestBatchSQLite(t *testing.T) { runBatchSuite(t, sqliteTestConfig) }

func TestBatchMySQL(t *testing.T) { runBatchSuite(t, mysqlTestConfig) }

func runBatchSuite(t *testing.T, nc newConfig) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"UpsertAgents", testUpsertAgents},
		{"UpsertAgentsMany", testUpsertAgentsMany},
		{"SetSecretHashes", testSetSecretHashes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, openStore(t, nc(t)))
		})
	}
}

func testUpsertAgents(t *testing.T, s Store) {
	ctx := context.Background()
	must(t, s.UpsertAgents(ctx, nil))
	a1, a2 := sampleAgent("a1"), sampleAgent("a2")
	a2.Labels = nil
	must(t, s.UpsertAgents(ctx, []Agent{a1, a2, {ID: "bare"}}))
	got, err := s.GetAgent(ctx, "a1")
	must(t, err)
	a1.FirstSeen = t0
	sameAgent(t, got, a1)
	got, err = s.GetAgent(ctx, "a2")
	must(t, err)
	a2.FirstSeen = t0
	sameAgent(t, got, a2)
	got, _ = s.GetAgent(ctx, "bare")
	if !got.FirstSeen.Equal(utc(t0)) || !got.LastSeen.Equal(utc(t0)) || !got.ConnectedAt.IsZero() || got.Labels != nil {
		t.Fatalf("bare agent %+v", got)
	}

	// Reconnect: FirstSeen kept, nil labels and facts kept, labels set
	// through the API kept, non-nil labels replace (also in the selector
	// table); an id listed twice ends as its last entry.
	must(t, s.SetAgentLabels(ctx, "a2", map[string]string{"team": "ops"}))
	later := t0.Add(time.Hour)
	b1 := sampleAgent("a1")
	b1.Version, b1.Labels, b1.Facts, b1.FirstSeen, b1.ConnectedAt, b1.LastSeen = "2.0.0", nil, nil, later, later, later
	b2 := sampleAgent("a2")
	b2.Labels, b2.ConnectedAt, b2.LastSeen = nil, later, later
	b1again := b1
	b1again.Version, b1again.Labels = "3.0.0", map[string]string{"role": "db"}
	must(t, s.UpsertAgents(ctx, []Agent{b1, b2, b1again}))
	got, _ = s.GetAgent(ctx, "a1")
	want := b1again
	want.FirstSeen, want.Facts = t0, a1.Facts
	sameAgent(t, got, want)
	got, _ = s.GetAgent(ctx, "a2")
	if !maps.Equal(got.Labels, map[string]string{"team": "ops"}) || !got.FirstSeen.Equal(utc(t0)) || !got.LastSeen.Equal(utc(later)) {
		t.Fatalf("a2 after reconnect: %+v", got)
	}
	for sel, want := range map[string][]string{"env": nil, "role": {"a1"}, "team": {"a2"}} {
		l, _, err := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: sel, Op: LabelExists}}})
		must(t, err)
		var ids []string
		for _, a := range l {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("agents with label %s: %v, want %v", sel, ids, want)
		}
	}

	// One bad agent fails the batch, naming it, and nothing is written.
	for _, tc := range []struct {
		a    Agent
		want string
	}{
		{Agent{}, "empty agent id"},
		{Agent{ID: "x", Labels: map[string]string{"bad key": "v"}}, `agent x: invalid: label "bad key": key has character ' '`},
		{Agent{ID: "x", Facts: json.RawMessage(`{`)}, "facts is not valid JSON"},
		{Agent{ID: strings.Repeat("é", 129)}, "agent id longer than 128 characters"},
		{Agent{ID: "x", HostName: strings.Repeat("h", 256)}, "host_name longer than 255 characters"},
	} {
		wantErr(t, s.UpsertAgents(ctx, []Agent{sampleAgent("fresh"), tc.a}), ErrInvalid, tc.want)
		if _, err := s.GetAgent(ctx, "fresh"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after a failed batch (%s): agent fresh: %v, want not found", tc.want, err)
		}
	}
}

// testUpsertAgentsMany crosses the statement batch size.
func testUpsertAgentsMany(t *testing.T, s Store) {
	ctx := context.Background()
	const n = 2*maxBatchRows + 7
	as := make([]Agent, n)
	for i := range as {
		as[i] = sampleAgent(fmt.Sprintf("m%04d", i))
		as[i].Labels = map[string]string{"i": fmt.Sprint(i), "env": "prod"}
	}
	must(t, s.UpsertAgents(ctx, as))
	must(t, s.UpsertAgents(ctx, as)) // again: all updates
	l, total, err := s.ListAgents(ctx, AgentFilter{Labels: []LabelMatch{{Key: "env", Op: LabelEq, Value: "prod"}}, Paging: Paging{Size: 1}})
	must(t, err)
	if total != n || len(l) != 1 {
		t.Fatalf("%d agents with env=prod (page %d), want %d", total, len(l), n)
	}
	got, err := s.GetAgent(ctx, "m1006")
	must(t, err)
	if got.Labels["i"] != "1006" || got.HostName != "host-m1006" {
		t.Fatalf("m1006 = %+v", got)
	}
}

func testSetSecretHashes(t *testing.T, s Store) {
	ctx := context.Background()
	must(t, s.SetSecretHashes(ctx, nil))
	must(t, s.SetSecretHash(ctx, "old", []byte{9}))
	hashes := map[string][]byte{"old": nil, "a": {1}, "b": {2, 2}}
	for i := range 2 * maxBatchRows {
		hashes[fmt.Sprintf("n%04d", i)] = []byte{byte(i)}
	}
	must(t, s.SetSecretHashes(ctx, hashes))
	must(t, s.SetSecretHashes(ctx, map[string][]byte{"a": {3}})) // replaces
	for id, want := range map[string][]byte{"old": nil, "a": {3}, "b": {2, 2}, "n0999": {byte(999 % 256)}, "none": nil} {
		if h, err := s.SecretHash(ctx, id); err != nil || !bytes.Equal(h, want) {
			t.Fatalf("secret of %s = %x, %v; want %x", id, h, err, want)
		}
	}
	wantErr(t, s.SetSecretHashes(ctx, map[string][]byte{"c": {1}, strings.Repeat("x", 129): {1}}), ErrInvalid, "agent id longer than 128 characters")
	if h, _ := s.SecretHash(ctx, "c"); h != nil {
		t.Fatalf("secret of c written by a failed batch: %x", h)
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
	if got, err := s.GetResult(ctx, task.ID, "a1"); err != nil || got.State != ResultOK {
		t.Fatalf("result %+v, %v", got, err)
	}
	if n := s.(*sqlStore).cold.Load(); n != 0 {
		t.Errorf("%d hot writes ran unprepared", n)
	}
}

// testMatchLabelsSQL: MatchLabels (the API's check of a token's selector)
// selects exactly the agents ListAgents selects for the same selector.
func testMatchLabelsSQL(t *testing.T, s Store, _ Config) {
	ctx := context.Background()
	labels := []map[string]string{
		{}, {"env": "prod"}, {"env": "dev"}, {"env": "prod", "team": "web"}, {"team": "web"}, {"env": ""}, {"env": "Prod"},
	}
	all := map[string]map[string]string{}
	for i, l := range labels {
		a := sampleAgent(fmt.Sprint("m", i))
		a.Labels = l
		must(t, s.UpsertAgent(ctx, a))
		all[a.ID] = l
	}
	for _, sel := range []string{"", "env=prod", "env!=prod", "env", "!env", "env=prod,team=web", "env=prod,!team", "team,env!=dev", "env=", "env=Prod"} {
		m, err := ParseSelector(sel)
		must(t, err)
		got, _, err := s.ListAgents(ctx, AgentFilter{Labels: m, Paging: Paging{Size: 100}})
		must(t, err)
		var sqlIDs, goIDs []string
		for _, a := range got {
			sqlIDs = append(sqlIDs, a.ID)
		}
		for _, id := range slices.Sorted(maps.Keys(all)) {
			if MatchLabels(m, all[id]) {
				goIDs = append(goIDs, id)
			}
		}
		if !slices.Equal(sqlIDs, goIDs) {
			t.Errorf("selector %q: SQL %v, MatchLabels %v", sel, sqlIDs, goIDs)
		}
	}
}
