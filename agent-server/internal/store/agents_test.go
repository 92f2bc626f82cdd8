package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

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
